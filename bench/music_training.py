"""Training speed of the music LSTM under each Keras backend, same model, same batches.

The shipped music weights were trained with `KERAS_BACKEND=jax` on the CPU:
JAX compiles the whole recurrence (a `lax.scan`) into one XLA program, where
TensorFlow's LSTM on a CPU steps a while loop op by op. This script times
`train_on_batch` on the full preset's model, under TensorFlow (the baseline)
and JAX, each in a fresh process, in the same run, and prints tokens per
second and the ratio.

    .venv/bin/python bench/music_training.py [--batches 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(batches: int) -> dict:
    """Runs in the child process: tokens per second of `train_on_batch` under this process's backend."""
    import keras
    import numpy as np

    from zoo.audio import music

    config = music.PRESETS["full"]
    model = music.build_model(config)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.context)
    inputs = {
        "tokens": rng.integers(1, music.VOCAB_SIZE, shape).astype("int32"),
        "positions": rng.integers(0, music.music_data.POSITIONS, shape).astype("int32"),
    }
    targets = rng.integers(1, music.VOCAB_SIZE, shape).astype("int32")
    for _ in range(2):  # compile, then one more to settle
        model.train_on_batch(inputs, targets)
    start = time.perf_counter()
    for _ in range(batches):
        model.train_on_batch(inputs, targets)
    seconds = (time.perf_counter() - start) / batches
    return {
        "backend": keras.backend.backend(),
        "seconds_per_batch": seconds,
        "tokens_per_second": config.batch_size * config.context / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4, help="timed batches per backend")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.batches)))
        return
    results = []
    for backend in ("tensorflow", "jax"):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, __file__, "--child", "--batches", str(args.batches)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    baseline = results[0]["tokens_per_second"]
    print(f"music full preset LSTM, train_on_batch, {os.cpu_count()} CPUs:")
    for result in results:
        print(
            f"  {result['backend']:<11} {result['seconds_per_batch']:6.2f} s/batch "
            f"{result['tokens_per_second']:8.0f} tokens/s   x{result['tokens_per_second'] / baseline:.2f}"
        )


if __name__ == "__main__":
    main()
