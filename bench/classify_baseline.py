"""The baselines on the classify model card: the common Keras tutorials' models, trained here on Fashion-MNIST.

    .venv/bin/python bench/classify_baseline.py

- keras-io "Simple MNIST convnet": two 3x3 convolutions (32, 64) with max
  pooling, dropout 0.5, softmax; Adam, batch 128, 15 epochs, a tenth held out;
- the TensorFlow beginner tutorial's MLP: 128 ReLU units; Adam, 10 epochs.

Same data as `zoo evaluate classify`: Debian's Fashion-MNIST, test accuracy on
the 10,000 test images. Prints each accuracy with its training wall time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from zoo.data import labelled_images  # noqa: E402


def convnet() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ])


def mlp() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])


def main() -> None:
    keras.utils.set_random_seed(0)
    train, test = labelled_images.fashion_mnist("train"), labelled_images.fashion_mnist("test")
    x_train, x_test = train.images.astype("float32") / 255.0, test.images.astype("float32") / 255.0
    for name, build, epochs, extra in (("keras-io simple convnet", convnet, 15, {"validation_split": 0.1}),
                                       ("TensorFlow beginner MLP", mlp, 10, {})):
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x_train, train.labels, batch_size=128 if extra else 32, epochs=epochs, verbose=0, **extra)
        seconds = time.perf_counter() - start
        accuracy = model.evaluate(x_test, test.labels, verbose=0)[1]
        print(f"{name}: test accuracy {accuracy:.4f} ({epochs} epochs, {seconds:.0f} s training, "
              f"{model.count_params():,} params)", flush=True)


if __name__ == "__main__":
    main()
