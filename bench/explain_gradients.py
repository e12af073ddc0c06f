"""Explanation gradients: the compiled step `zoo.vision.explain` uses against an eager GradientTape.

    .venv/bin/python bench/explain_gradients.py [--steps 64]

`explain.compiled_gradient` runs the tape inside a `tf.function`, which prunes the model's
weight gradients that nothing asks for (the ones whose oneDNN AVX-512 kernel crashes for thin
strided 1x1 convolutions, oneDNN issue 6035). This measures what that costs or saves against
the eager tape the project used before: the gradient of a channel's mean activation with
respect to a batch of 4 images, `--steps` times, on the shipped Fashion-MNIST classifier (whose
projections have 24 or more channels, so the eager path is safe to time on any CPU).
Prints seconds per step for each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo.vision import classify, explain  # noqa: E402


def eager_value_and_gradient(fn, x):
    """The pre-fix path: an eager tape, which also computes every weight gradient."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return float(y), tape.gradient(y, x).numpy()


def per_step(step, x, steps: int) -> float:
    step(x)  # trace or warm up
    started = time.perf_counter()
    for _ in range(steps):
        step(x)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    model = classify.load(None)
    features = keras.Model(model.input, model.get_layer("stage2_block0_out").output)

    def objective(images):
        return keras.ops.sum(keras.ops.mean(features(images, training=False), axis=(1, 2))[:, 0])

    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype(np.float32)
    compiled = explain.compiled_gradient(objective)
    np.testing.assert_allclose(compiled(x)[1], eager_value_and_gradient(objective, x)[1], rtol=1e-4, atol=1e-4)
    eager_s = per_step(lambda v: eager_value_and_gradient(objective, v), x, args.steps)
    compiled_s = per_step(compiled, x, args.steps)
    print(f"eager tape (baseline): {eager_s * 1000:.2f} ms/step")
    print(f"compiled (zoo):        {compiled_s * 1000:.2f} ms/step   {eager_s / compiled_s:.2f}x the baseline's speed")


if __name__ == "__main__":
    main()
