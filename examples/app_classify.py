# %% [markdown]
# # Image classification: the `classify` app
#
# **Title:** Image classification: the `classify` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Classify Fashion-MNIST test images with the shipped ResNet and see why (Grad-CAM), read
# `zoo/vision/classify.py`, train a small one for a minute and measure it beside the baseline.
#
# The `classify` app is a ResNet in miniature trained on Fashion-MNIST (70,000 greyscale 28x28
# pictures of ten kinds of garment, from Zalando). This notebook runs the shipped model through
# `zoo.load`, asks it what it looked at, reads the module's key parts (quoted from the running
# source), trains a small version, and ends with the full recipe and the card's numbers.

# %% tags=["parameters"]
# Parameters. The defaults train for about a minute on a 2-core CPU.
TRAINING_IMAGES = 38_400  # of the 55,000 training images, one epoch (the quick preset: 2 epochs of 55,000)
TEST_IMAGES = 2_000  # of the 10,000 test images to measure on (the card's numbers use all of them)

# %%
import dataclasses
import inspect
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib.pyplot as plt
import numpy as np

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.data import labelled_images
from zoo.vision import classify  # the app's module, which this notebook reads

start = time.perf_counter()
spec = zoo.apps("classify")[0]
print(spec.summary)

# %% [markdown]
# ## The shipped model on test images
#
# Fashion-MNIST's 10,000 test images were never seen in training. `zoo.load("classify")` loads
# the default file (checked against the card's sha256); calling it on images returns, for
# each, the most probable classes and, with `explain=True`, a Grad-CAM overlay of where the
# evidence for the top class was.

# %%
test = labelled_images.fashion_mnist("test")
classifier = zoo.load("classify", top=3, explain=True)
picked = [int(np.flatnonzero(test.labels == c)[0]) for c in range(10)]  # the first test image of each class
results = classifier([test.images[i][..., 0] for i in picked])

fig, axes = plt.subplots(2, 10, figsize=(16, 3.8))
for column, (i, result) in enumerate(zip(picked, results)):
    axes[0, column].imshow(test.images[i][..., 0], cmap="gray")
    axes[0, column].set_title(
        f"{test.class_names[test.labels[i]]}\n→ {result.top[0]['label']} {result.top[0]['probability']:.0%}", fontsize=8
    )
    axes[1, column].imshow(result.gradcam)
    for ax in axes[:, column]:
        ax.axis("off")
plt.suptitle("first test image of each class: the truth, the top guess; below, Grad-CAM for that guess")
plt.show()
print(results[0].to_dict())
correct = sum(r.top[0]["label"] == test.class_names[test.labels[i]] for i, r in zip(picked, results))
assert correct >= 8  # the card's per-class accuracies are 81-100%

# %%
shipped_metrics = classify.classification_metrics(classifier.model, test.subset(np.arange(TEST_IMAGES)))
print(f"shipped model, first {TEST_IMAGES} test images: accuracy {shipped_metrics['accuracy']:.2%}")
assert shipped_metrics["accuracy"] > 0.92

# %% [markdown]
# ## How it works: reading `zoo/vision/classify.py`
#
# **The network** is a stem, residual blocks (two 3x3 convolutions with batch normalisation
# and a shortcut) and global average pooling, then one dense layer. Pixels come in as 0-255
# and are rescaled inside the model, so a saved file needs no preprocessing recipe beside it.

# %%
print(inspect.getsource(classify.residual_block))
print(inspect.getsource(classify.build_model))

# %% [markdown]
# **The class names travel inside the model**, in a pass-through layer whose config holds
# them, with the image convention (light garments on black) and whether the model learnt
# mirror images, in which case predictions average the image and its mirror:

# %%
print(inspect.getsource(classify.ClassLabels))
print(inspect.getsource(classify.predict_probabilities))

# %% [markdown]
# **Training** runs on a parallel `tf.data` pipeline whose augmentations are Keras
# preprocessing layers, with AdamW on a one-cycle schedule and label smoothing:

# %%
print(inspect.getsource(classify.training_batches))
print(inspect.getsource(classify.compile_for_training))

# %% [markdown]
# ## Train a small one
#
# The quick preset's model and recipe on two thirds of the training images for one epoch, then
# the same test images as above.

# %%
import keras  # noqa: E402  (already loaded by zoo.load; named here where the notebook uses it)

config = dataclasses.replace(classify.PRESETS["quick"], epochs=1)
config, train_set, validation_set, _ = classify.load_data(config, seed=0)
train_set = train_set.subset(np.arange(TRAINING_IMAGES))
one_hot = np.eye(len(config.class_names), dtype=np.float32)  # label smoothing needs one-hot targets
keras.utils.set_random_seed(0)
small = classify.build_model(config)
classify.compile_for_training(small, config, steps=-(-TRAINING_IMAGES // config.batch_size))
t0 = time.perf_counter()
batches = classify.training_batches(train_set.images, one_hot[train_set.labels], config, seed=0)
small.fit(batches, epochs=1, shuffle=False, verbose=2)  # the batches come shuffled
print(f"{small.count_params():,} parameters, trained on {TRAINING_IMAGES:,} images in {time.perf_counter() - t0:.0f} s")

small_metrics = classify.classification_metrics(small, test.subset(np.arange(TEST_IMAGES)))
baseline = spec.entry().baseline
print(f"{'small, just trained':>40}: {small_metrics['accuracy']:.2%}")
print(f"{'shipped (long preset)':>40}: {shipped_metrics['accuracy']:.2%}")
print(f"{'baseline from the card, all 10,000':>40}: {baseline['metrics']['accuracy']:.2%} ({baseline['name']})")
assert 0.8 < small_metrics["accuracy"] < shipped_metrics["accuracy"]

# %%
per_class = small_metrics["per_class_accuracy"]
plt.barh(list(per_class), list(per_class.values()), label="small, just trained")
plt.barh(list(per_class), list(shipped_metrics["per_class_accuracy"].values()), fill=False, label="shipped")
plt.xlabel(f"accuracy on the first {TEST_IMAGES} test images")
plt.legend()
plt.show()  # shirts against T-shirts, pullovers and coats: where both models lose most

# %% [markdown]
# ## The full recipe and the card's numbers
#
# The model card (`zoo/weights/classify.json`; `zoo.apps()` in Python, `zoo info classify` on
# the command line) records, for each shipped file, the command that trained it, the machine,
# the wall time and what `zoo evaluate` measured on all 10,000 test images beside the baseline.

# %%
zoo_cli(["info", "classify"])
card_accuracy = spec.entry().metrics["accuracy"]
print(f"the card: {card_accuracy:.2%} on 10,000; this notebook: {shipped_metrics['accuracy']:.2%} on {TEST_IMAGES:,}")
assert abs(card_accuracy - shipped_metrics["accuracy"]) < 0.02  # a subset's accuracy, near the whole set's
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo train classify                       # the quick preset, about 3 minutes on 2 CPU cores
#     zoo train classify --preset long         # the shipped file's recipe (see the card's command)
#     zoo evaluate classify --weights runs/classify-fashion-mnist-...
#     zoo demo classify shoe.jpg --top 3 --explain -o shoe_cam.png
#     zoo train classify --data DIR            # your own DIR/<class>/*.jpg
