"""The baselines on the classify model card, trained here on Fashion-MNIST beside the zoo's quick preset.

    .venv/bin/python bench/classify_baseline.py      # about 15 minutes on 2 cores

- zoo quick preset: `zoo train classify --preset quick` (through registry.call),
  its test accuracy at the end of its run;
- keras-io "Simple MNIST convnet": two 3x3 convolutions (32, 64) with max
  pooling, dropout 0.5, softmax; Adam, batch 128, 15 epochs, a tenth held out;
  test accuracy after every epoch (evaluation time not counted);
- the TensorFlow beginner tutorial's MLP: 128 ReLU units; Adam, 10 epochs.

Same data as `zoo evaluate classify`: Debian's Fashion-MNIST, test accuracy on
the 10,000 test images, all in one process, one after the other. Prints each
accuracy with its training wall time, then time to accuracy: how long the
convnet trains before it first matches the quick preset's accuracy, against
the quick preset's whole run (the ratio is the quick preset's lead).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.data import labelled_images  # noqa: E402


def convnet() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


class TestAccuracyPerEpoch(keras.callbacks.Callback):
    """(training seconds so far, test accuracy) after each epoch; the evaluation's own time is not counted."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test, self.curve, self.training = x_test, y_test, [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.training += time.perf_counter() - self.started
        self.curve.append((self.training, self.model.evaluate(self.x_test, self.y_test, verbose=0)[1]))


def zoo_quick() -> tuple[float, float]:
    """(test accuracy, wall seconds) of the CLI's own quick run, test evaluation included."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = registry.call("classify", "train", preset="quick", out=Path(tmp) / "quick")
        return result["accuracy"], time.perf_counter() - start


def main() -> None:
    quick_accuracy, quick_seconds = zoo_quick()
    print(f"zoo quick preset: test accuracy {quick_accuracy:.4f} ({quick_seconds:.0f} s, whole command)", flush=True)
    keras.utils.set_random_seed(0)
    train, test = labelled_images.fashion_mnist("train"), labelled_images.fashion_mnist("test")
    x_train, x_test = train.images.astype("float32") / 255.0, test.images.astype("float32") / 255.0
    curve = TestAccuracyPerEpoch(x_test, test.labels)
    for name, build, epochs, extra in (
        ("keras-io simple convnet", convnet, 15, {"validation_split": 0.1, "callbacks": [curve]}),
        ("TensorFlow beginner MLP", mlp, 10, {}),
    ):
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x_train, train.labels, batch_size=128 if extra else 32, epochs=epochs, verbose=0, **extra)
        seconds = curve.training if extra else time.perf_counter() - start
        accuracy = model.evaluate(x_test, test.labels, verbose=0)[1]
        print(
            f"{name}: test accuracy {accuracy:.4f} ({epochs} epochs, {seconds:.0f} s training, "
            f"{model.count_params():,} params)",
            flush=True,
        )
    matched = next(((t, epoch) for epoch, (t, a) in enumerate(curve.curve, 1) if a >= quick_accuracy), None)
    if matched is None:
        print(
            f"time to {quick_accuracy:.2%}: zoo quick {quick_seconds:.0f} s; the convnet never got there "
            f"in 15 epochs ({curve.training:.0f} s): lead > {curve.training / quick_seconds:.2f}x"
        )
    else:
        print(
            f"time to {quick_accuracy:.2%}: zoo quick {quick_seconds:.0f} s, convnet {matched[0]:.0f} s "
            f"(epoch {matched[1]}): lead {matched[0] / quick_seconds:.2f}x"
        )


if __name__ == "__main__":
    main()
