# %% [markdown]
# # Keras and TensorFlow programming
#
# **Title:** Keras and TensorFlow programming<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Tensors and GradientTape, a training loop by hand and the same model with `model.fit`,
# a custom layer, a callback, a `tf.data` pipeline, and one model trained under TensorFlow and JAX.
#
# The two notebooks before this one wrote gradient descent and automatic differentiation from
# scratch. Keras 3 provides both, industrial-strength, over interchangeable backends
# (TensorFlow, JAX, PyTorch). This notebook climbs from tensors to `model.fit`, checking at each
# level that the higher one computes exactly what the lower one did. Every app in the zoo is
# written this way: Keras layers and `keras.ops`, so its model runs on any backend.

# %% tags=["parameters"]
# Parameters. The defaults run in well under a minute of training.
EPOCHS = 3  # epochs of the hand-written loop and of model.fit (10 reaches ~97% held out)
LEARNING_RATE = 0.3  # plain SGD: simple enough that two implementations must agree to rounding
BATCH_SIZE = 32
TARGET_ACCURACY = 0.95  # the callback stops training once the held-out accuracy reaches it

# %%
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
os.environ["KERAS_BACKEND"] = "tensorflow"  # this process's backend; the JAX run below gets its own process
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import layers, ops

start = time.perf_counter()
print("Keras", keras.__version__, "on", keras.backend.backend(), "; TensorFlow", tf.__version__)

# %% [markdown]
# ## Tensors and `GradientTape`
#
# A tensor is an n-dimensional array with a dtype, living on a device; arithmetic broadcasts
# as in NumPy. A `tf.Variable` is a tensor that can change in place (a model's weights). A
# `tf.GradientTape` records the operations on watched variables, then differentiates them in
# reverse mode: the `Tape` of `automatic_differentiation.py`, for every TensorFlow operation.

# %%
a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
b = tf.constant([10.0, 20.0])
print("a + b broadcasts b over a's rows:\n", (a + b).numpy())
print("a @ a:\n", (a @ a).numpy(), "\nshape", a.shape, "dtype", a.dtype.name)
assert np.array_equal((a @ a).numpy(), a.numpy() @ a.numpy())  # the same arithmetic as NumPy

x = tf.Variable(2.0)
with tf.GradientTape() as tape:
    y = x**3 + tf.sin(x)
dy_dx = tape.gradient(y, x)
print(f"d/dx (x³ + sin x) at x = 2: {float(dy_dx):.6f} (3x² + cos x = {12 + np.cos(2.0):.6f})")
assert abs(float(dy_dx) - (12 + np.cos(2.0))) < 1e-5

# keras.ops is the backend-agnostic face of the same operations: what zoo models are written in.
assert np.allclose(ops.convert_to_numpy(ops.matmul(a, a)), (a @ a).numpy())

# %% [markdown]
# ## The data and the model
#
# scikit-learn ships 1,797 handwritten digits, 8x8 pixels with 17 grey levels (the UCI optical
# recognition dataset). The model is a multilayer perceptron: 64 pixels, a hidden layer of 64
# ReLU units, 10 logits. Both are functions, so that the TensorFlow and the JAX runs at the
# end can use the very same code.


# %%
def digits_data():
    """Digits as float32 pixels in [0, 1]: 1,347 for training, 450 held out, in a fixed shuffled order."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x, y = (digits.data[order] / 16).astype("float32"), digits.target[order].astype("int32")
    return (x[:1347], y[:1347]), (x[1347:], y[1347:])


def make_model():
    import keras

    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


(x_train, y_train), (x_test, y_test) = digits_data()
fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for ax, image, label in zip(axes, x_train, y_train):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(str(label))
    ax.axis("off")
plt.show()

keras.utils.set_random_seed(0)
model = make_model()
model.summary()
initial_weights = model.get_weights()

# %% [markdown]
# ## A training loop by hand
#
# One step: run the model under a tape, compute the loss, ask the tape for the gradient of the
# loss with respect to every trainable weight, and let the optimiser apply it. `tf.function`
# compiles the step into a graph (the Python runs once, to trace it).

# %%
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = keras.optimizers.SGD(LEARNING_RATE)


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(gradients, model.trainable_variables)
    return loss


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


loop_losses = []
for epoch in range(EPOCHS):
    starts = range(0, len(x_train), BATCH_SIZE)
    batch_losses = [float(train_step(x_train[i : i + BATCH_SIZE], y_train[i : i + BATCH_SIZE])) for i in starts]
    batch_sizes = [len(x_train[i : i + BATCH_SIZE]) for i in starts]
    loop_losses.append(np.average(batch_losses, weights=batch_sizes))  # the mean over examples, as fit reports
    print(f"epoch {epoch + 1}: mean training loss {loop_losses[-1]:.4f}")
loop_weights = model.get_weights()
loop_accuracy = accuracy(model, x_test, y_test)
print(f"held-out accuracy after {EPOCHS} epochs: {loop_accuracy:.3f}")
assert loop_losses[-1] < loop_losses[0] and loop_accuracy > 0.9

# %% [markdown]
# ## The same model with `model.fit`
#
# `compile` names the loss, the optimiser and the metrics; `fit` runs the loop above (batches,
# tape, optimiser, metrics, callbacks). Started from the same initial weights, with the same
# batches in the same order, it must end at the same weights.


# %%
def train_with_fit(initial_weights, epochs, learning_rate, batch_size):
    """The digits model trained by model.fit with plain SGD, unshuffled: returns (epoch losses, weights)."""
    import keras

    (x_train, y_train), _ = digits_data()
    model = make_model()
    model.set_weights(initial_weights)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()


fit_losses, fit_weights = train_with_fit(initial_weights, EPOCHS, LEARNING_RATE, BATCH_SIZE)
largest = max(np.abs(w1 - w2).max() for w1, w2 in zip(loop_weights, fit_weights))
print("model.fit's epoch losses:", np.round(fit_losses, 4), " the loop's:", np.round(loop_losses, 4))
print(f"largest weight difference between the hand-written loop and model.fit: {largest:.1e}")
assert largest < 1e-4
assert np.allclose(fit_losses, loop_losses, rtol=1e-4)

# %% [markdown]
# ## A custom layer
#
# A layer owns weights (made in `build`, once the input shape is known) and computes in `call`
# with `keras.ops`, so it runs on every backend; `get_config` lets a saved model rebuild it.
# Here is `Dense` from scratch, the lecture's $x w + b$, checked against Keras's own `Dense`
# and through a save and load.


# %%
@keras.saving.register_keras_serializable(package="notebook")
class Affine(layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, keras.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation)}


custom = keras.Sequential([keras.Input((64,)), Affine(64, activation="relu"), Affine(10)])
custom.set_weights(loop_weights)  # the trained weights of the Dense model above
assert np.allclose(custom.predict(x_test, verbose=0), model.predict(x_test, verbose=0), atol=1e-5)

saved = Path(tempfile.mkdtemp()) / "affine.keras"
custom.save(saved)
reloaded = keras.saving.load_model(saved)
assert np.array_equal(reloaded.predict(x_test, verbose=0), custom.predict(x_test, verbose=0))
print(f"Affine reproduces Dense; saved and reloaded from {saved.name}: {saved.stat().st_size / 1e3:.0f} kB")

# %% [markdown]
# ## A callback
#
# Callbacks are hooks into `fit`'s loop: at the start and end of training, of each epoch and of
# each batch. This one stops training as soon as the held-out accuracy reaches a target, and
# records the learning curve as it goes.


# %%
class StopAtAccuracy(keras.callbacks.Callback):
    def __init__(self, target):
        super().__init__()
        self.target, self.curve = target, []

    def on_epoch_end(self, epoch, logs=None):
        self.curve.append(logs["val_accuracy"])
        if logs["val_accuracy"] >= self.target:
            print(f"epoch {epoch + 1}: held-out accuracy {logs['val_accuracy']:.3f} reached {self.target}; stopping")
            self.model.stop_training = True


keras.utils.set_random_seed(1)
model = make_model()
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_fn, metrics=["accuracy"])
stopper = StopAtAccuracy(TARGET_ACCURACY)
history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=30, callbacks=[stopper], verbose=0)
print(f"trained {len(stopper.curve)} of 30 epochs; curve: {np.round(stopper.curve, 3)}")
assert stopper.curve[-1] >= TARGET_ACCURACY and len(stopper.curve) < 30
assert len(history.history["loss"]) == len(stopper.curve)  # fit stopped where the callback said

# %% [markdown]
# ## A `tf.data` pipeline
#
# `tf.data` builds the input as a chain of transformations that run in parallel with training:
# here, shuffle each epoch, augment (shift each digit by up to one pixel, in a `map` run on
# several threads), batch, and prefetch the next batch while the model trains on this one.
# The augmentation makes the model robust to shifts, which we measure on shifted test digits.


# %%
def shift(image, label):
    image = tf.reshape(image, (8, 8, 1))
    image = tf.image.resize_with_crop_or_pad(image, 10, 10)  # pad to 10x10, then cut a random 8x8
    image = tf.image.random_crop(image, (8, 8, 1))
    return tf.reshape(image, (64,)), label


pipeline = (
    tf.data.Dataset.from_tensor_slices((x_train, y_train))
    .shuffle(len(x_train), seed=0)
    .map(shift, num_parallel_calls=tf.data.AUTOTUNE)
    .batch(BATCH_SIZE)
    .prefetch(tf.data.AUTOTUNE)
)

shifted_test = np.roll(x_test.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64)  # every digit one pixel right
keras.utils.set_random_seed(2)
augmented = make_model()
augmented.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_fn, metrics=["accuracy"])
augmented.fit(pipeline, epochs=8, verbose=0)
plain = make_model()
plain.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_fn, metrics=["accuracy"])
plain.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=8, verbose=0)
for name, trained in (("plain arrays", plain), ("tf.data with shifts", augmented)):
    print(
        f"{name:>20}: held out {accuracy(trained, x_test, y_test):.3f}, "
        f"shifted one pixel {accuracy(trained, shifted_test, y_test):.3f}"
    )
assert accuracy(augmented, shifted_test, y_test) > accuracy(plain, shifted_test, y_test)

# %% [markdown]
# ## One model, two backends
#
# A Keras 3 model written with Keras layers and `keras.ops` runs on TensorFlow, JAX or PyTorch.
# The backend is chosen once per process (`KERAS_BACKEND`), so the JAX run is a child process
# running the very functions defined above (their source, read by `inspect.getsource`), from the
# same initial weights. TensorFlow and JAX compile the same mathematics into different kernels,
# so the results agree to float32 rounding, not bit for bit.

# %%
workdir = Path(tempfile.mkdtemp())
np.savez(workdir / "initial.npz", *initial_weights)
child = "\n\n".join(inspect.getsource(function) for function in (digits_data, make_model, train_with_fit))
child += f"""

import numpy as np, keras
initial = np.load("{workdir / "initial.npz"}")
losses, weights = train_with_fit([initial[k] for k in initial.files], {EPOCHS}, {LEARNING_RATE}, {BATCH_SIZE})
np.savez("{workdir / "jax.npz"}", np.array(losses), *weights)
print("trained under", keras.backend.backend())
"""
(workdir / "child.py").write_text(child)
run = subprocess.run(
    [sys.executable, workdir / "child.py"], env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True
)
assert run.returncode == 0, run.stderr[-2000:]
print(run.stdout.strip())

jax_result = np.load(workdir / "jax.npz")
jax_losses, *jax_weights = (jax_result[k] for k in jax_result.files)
largest = max(np.abs(w1 - w2).max() for w1, w2 in zip(fit_weights, jax_weights))
print("epoch losses, TensorFlow:", np.round(fit_losses, 6), " JAX:", np.round(jax_losses, 6))
print(f"largest weight difference after {EPOCHS} epochs: {largest:.1e}")
assert np.allclose(jax_losses, fit_losses, rtol=1e-4)
assert largest < 1e-3
print(f"ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## What to take away
#
# - `GradientTape` is reverse-mode AD; a training step is tape, loss, gradient, optimiser.
# - `model.fit` is that loop with batching, metrics and callbacks, and computes the same numbers.
# - Layers own weights and compute with `keras.ops`; callbacks hook into the loop; `tf.data`
#   feeds it in parallel.
# - Written this way, a model is backend-agnostic: the zoo's apps train under TensorFlow or JAX
#   (`KERAS_BACKEND=jax zoo train ...`). Next, the per-app notebooks (`app_*.py`) read those apps.
