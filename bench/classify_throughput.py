"""Training throughput of `zoo train classify` against a plain keras-io-style `model.fit`, same model, same batch.

    .venv/bin/python bench/classify_throughput.py [--images 2560] [--repeats 3] [--preset full|long|quick]

Three ways (four with bf16) to train a preset's model (full by default) on real Fashion-MNIST images, in one
process, measured in turn (so machine load hits each alike), best of
`--repeats` one-epoch runs after a compiling warm-up; same network, same
augmentation layers, same batch:

- baseline: the keras-io recipe: the augmentation layers first in the model,
  float32 NumPy arrays, `model.fit(x, y)`, integer labels, Adam;
- zoo pipeline + XLA: `classify.training_batches` (uint8 arrays, shuffling
  and augmentation in a parallel, prefetching tf.data pipeline) and
  `classify.compile_for_training`, the model XLA-compiled (possible because
  the preprocessing layers, which XLA cannot compile, left the model);
- zoo: exactly what `classify.train` runs: the same pipeline, the model run by
  TensorFlow's own (oneDNN) kernels, XLA off: the faster of the two on this CPU.

The fourth, the zoo path in mixed bfloat16, is tried only where the CPU has bf16 matrix
instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower, and the script says so.
Prints images per second and each ratio to the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo import harness  # noqa: E402
from zoo.data import labelled_images  # noqa: E402
from zoo.vision import classify  # noqa: E402


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def baseline(config, images, labels):
    """keras-io style: the augmentation layers first in the model, float32 NumPy arrays, integer labels."""
    model = keras.Sequential([keras.Input(images.shape[1:]), classify.augmenter(config), classify.build_model(config)])
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    x = images.astype("float32")
    return lambda n: model.fit(x[:n], labels[:n], batch_size=config.batch_size, epochs=1, verbose=0)


def zoo_path(config, images, labels, xla=False):
    """What `classify.train` runs: its tf.data pipeline and its compiled model (XLA off, as `train` has it)."""
    with harness.dtype_policy(config.precision):
        model = classify.build_model(config)
    classify.compile_for_training(model, config, steps=1000)
    model.jit_compile = xla
    one_hot = np.eye(10, dtype=np.float32)[labels]
    return lambda n: model.fit(
        classify.training_batches(images[:n], one_hot[:n], config, seed=0), epochs=1, verbose=0, shuffle=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2560, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="full", choices=list(classify.PRESETS), help="whose model to time")
    args = parser.parse_args()
    config = dataclasses.replace(classify.PRESETS[args.preset], precision="float32")
    data = labelled_images.fashion_mnist("train")
    images, labels = data.images[: args.images], data.labels[: args.images]
    contenders = {
        "baseline (keras-io fit, float32 NumPy)": baseline,
        "zoo pipeline + XLA": lambda *a: zoo_path(*a, xla=True),
        "zoo (classify.train: pipeline, XLA off)": zoo_path,
    }
    if cpu_has_bf16():
        contenders["zoo, mixed bfloat16 (the long preset's)"] = lambda c, *a: zoo_path(
            dataclasses.replace(c, precision="mixed_bfloat16"), *a
        )
    runners = {}
    for name, make in contenders.items():
        keras.utils.set_random_seed(0)
        run = make(config, images, labels)
        run(3 * config.batch_size)  # compile
        runners[name] = run
    best = {name: 0.0 for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(args.images)
            best[name] = max(best[name], args.images / (time.perf_counter() - start))
    reference = best[next(iter(best))]
    print(
        f"classify {args.preset} preset ({classify.build_model(config).count_params():,} params), "
        f"batch {config.batch_size}, "
        f"{args.images} images per epoch, best of {args.repeats}; backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs"
    )
    for name, rate in best.items():
        print(f"  {name:<42} {rate:8.0f} images/s   x{rate / reference:.2f}")
    if not cpu_has_bf16():
        print(
            "  mixed precision: not tried; this CPU has no bf16 matrix instructions (avx512_bf16/amx), "
            "so bf16 would be emulated and slower"
        )


if __name__ == "__main__":
    main()
