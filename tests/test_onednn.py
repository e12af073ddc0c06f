"""oneDNN's AVX-512 crash (issue 6035): the weight gradient of a strided 1x1 convolution over
fewer than 16 channels kills TensorFlow 2.21's process on AVX-512 CPUs (../shared/notes).

Each computation that would reach that kernel runs in a subprocess, so that on an AVX-512 machine
a regression is a failing test with a name, not a dead test run; on an AVX2 machine the same tests
still check the numbers against NumPy.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from zoo import harness
from zoo.errors import BadInput
from zoo.vision import classify

REPO = Path(__file__).resolve().parent.parent


def run_isolated(script: str) -> str:
    """Run `script` in a fresh Python with two threads (the crash needs two or more); its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode} (a negative code is a signal):\n{done.stderr[-3000:]}"
    return done.stdout


# The reproducer's shapes: input (1, 28, 28, 8), a 1x1 stride-2 convolution to 16 channels.
EXPLAIN_SIDE = """
import numpy as np, keras
from keras import layers
from zoo.vision import explain
x = np.random.default_rng(0).normal(size=(1, 28, 28, 8)).astype("float32")
w = np.random.default_rng(1).normal(size=(1, 1, 8, 16)).astype("float32")
inputs = keras.Input((28, 28, 8))
conv = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)
model = keras.Model(inputs, conv(inputs))
conv.kernel.assign(w)
_, grad = explain.value_and_gradient(lambda t: keras.ops.sum(model(t, training=False)), x)
# Each output pixel reads input pixel (2i, 2j): d sum / d x there is the kernel summed over outputs.
expected = np.zeros_like(x)
expected[:, ::2, ::2, :] = w[0, 0].sum(axis=1)
print(float(np.abs(grad - expected).max()))
"""


def test_explanation_gradients_of_a_thin_strided_1x1_convolution_match_numpy():
    assert float(run_isolated(EXPLAIN_SIDE)) < 1e-5


TRAIN_SIDE = """
import numpy as np, keras, tensorflow as tf
from zoo.vision import classify
model = classify.build_model(classify.Config(widths=(8, 16), blocks=(1, 1)))
kernel = model.get_layer("stage1_block0_project_conv").kernel
x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
block_input = keras.Model(model.input, model.get_layer("stage0_block0_out").output)(x)
with tf.GradientTape() as tape:  # eager: the very Conv2DBackpropFilter call the reproducer makes
    out = model.get_layer("stage1_block0_project_conv")(model.get_layer("stage1_block0_subsample")(block_input))
    total = tf.reduce_sum(out)
grad = tape.gradient(total, kernel.value).numpy()
expected = block_input.numpy()[:, ::2, ::2, :].sum(axis=(0, 1, 2))[:, None] * np.ones((1, 16))
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, np.arange(3), batch_size=3, epochs=1, verbose=0)  # a batch of 3 crashed the strided layer
print(float(np.abs(grad[0, 0] - expected).max() / np.abs(expected).max()))
"""


def test_training_classify_with_thin_stages_computes_the_right_weight_gradient():
    assert float(run_isolated(TRAIN_SIDE)) < 1e-5


def test_subsampled_projection_is_the_strided_1x1_convolution():
    """Same function, so models and checkpoints keep their meaning."""
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 8)).astype("float32")
    strided = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)
    plain = layers.Conv2D(16, 1, use_bias=False)
    strided.build(x.shape), plain.build((2, 4, 5, 8))
    plain.kernel.assign(strided.kernel)
    subsampled = layers.MaxPooling2D(pool_size=1, strides=2)(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain(subsampled)), keras.ops.convert_to_numpy(strided(x)), atol=1e-5
    )


def _thin_strided_model() -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.Conv2D(16, 1, strides=2, name="thin_projection")(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


def test_the_layers_that_would_crash_are_found():
    assert harness.onednn_crash_layers(_thin_strided_model()) == ["thin_projection"]
    assert harness.onednn_crash_layers(classify.build_model(classify.Config(widths=(8, 16), blocks=(1, 1)))) == []


def test_training_a_model_that_would_crash_is_refused_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(harness, "_onednn_avx512", lambda: True)
    run = harness.Run(path=tmp_path, config=None)
    with pytest.raises(BadInput, match="thin_projection: a strided 1x1 convolution over fewer than 16"):
        harness.fit(run, _thin_strided_model(), np.zeros((2, 28, 28, 1)), epochs=1)
