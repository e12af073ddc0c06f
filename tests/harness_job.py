"""A tiny training job for the harness tests, run as a subprocess so it can be killed.

python harness_job.py RUN_DIR [--resume]
"""

import dataclasses
import sys
import time

import keras
import numpy as np

from zoo import harness


@dataclasses.dataclass
class Config:
    epochs: int = 6
    units: int = 8


class SlowBatches(keras.callbacks.Callback):
    """Stretch each epoch to about a second, so a kill lands mid-epoch."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)


def main(out: str, resume: bool) -> None:
    run = harness.start_run("job", Config(), out, resume, seed=1)
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(run.config.units, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    harness.fit(
        run, model, x, validation=(x, y), y=y, epochs=run.config.epochs, batch_size=16, callbacks=[SlowBatches()]
    )
    harness.best_model(run)


if __name__ == "__main__":
    main(sys.argv[1], "--resume" in sys.argv)
