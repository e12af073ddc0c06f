"""`zoo` with a tiny upscale preset, for the distribution tests: run as a subprocess, because the
devices a process trains on are fixed when TensorFlow starts.

    python distribute_job.py BATCH RATE SLEEP zoo-arguments...

BATCH and RATE are the preset's (per-replica) batch and learning rate; SLEEP (seconds per
step, 0 for none) stretches epochs so that a kill lands mid-epoch. `--local` re-runs this same command line
in each worker, so the workers train the tiny preset too.
"""

import sys
import time

import keras

import cli
from zoo.vision import upscale


class Slow(keras.callbacks.Callback):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


def main(batch: str, rate: str, sleep: str, *argv: str) -> int:
    upscale.PRESETS["quick"] = upscale.Config(
        epochs=3, steps_per_epoch=4, features=8, blocks=1, patch=16, batch_size=int(batch), learning_rate=float(rate)
    )
    if float(sleep):
        fit = upscale.harness.fit
        upscale.harness.fit = lambda *a, **k: fit(*a, callbacks=[Slow(float(sleep))], **k)
    return cli.main(list(argv))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
