"""Multi-worker training here: examples per second with 1 and 2 local workers, and what the
gradient all-reduce costs per step.

Each worker is a fresh process with TF_CONFIG on loopback ports, as `zoo train ...
--distribute multi-worker --workers N --local` starts them, and trains the upscale quick
preset's model under `zoo.distribute` (MultiWorkerMirroredStrategy, Keras `fit`) on fixed
batches, per-replica batch 16; each worker gets its share of the cores. Separately, each
2-worker process times a bare all-reduce of one gradient's worth of float32 (the model's
trainable variables' shapes), which is the communication every step adds.

On one 2-core machine two workers cannot be faster than one: they split the same cores, and
add the all-reduce. What the script shows is that the machinery works and its overhead is
measured: a cluster's speed-up is then (compute per step) / (compute / N + all-reduce).

    .venv/bin/python bench/distributed.py [--steps 20]
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
PER_REPLICA_BATCH = 16


def measure(steps: int) -> dict:
    """Runs in each worker: seconds per training step, and per bare all-reduce of the gradients."""
    import tensorflow as tf

    workers = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
    threads = max(1, os.cpu_count() // workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import numpy as np

    from zoo import distribute
    from zoo.vision import upscale

    distribution = distribute.start("multi-worker")
    config = upscale.PRESETS["quick"]
    global_batch = PER_REPLICA_BATCH * distribution.replicas
    rng = np.random.default_rng(0)
    low = rng.random((global_batch, config.patch, config.patch, 1), np.float32)
    high = rng.random((global_batch, config.patch * config.scale, config.patch * config.scale, 1), np.float32)
    batches = tf.data.Dataset.from_tensors((low, high)).repeat()
    with distribution.scope():
        model = upscale.build_model(config)
        model.compile(optimizer="adam", loss="mean_absolute_error")
    model.fit(batches, steps_per_epoch=3, epochs=1, verbose=0)  # trace and compile
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    step = (time.perf_counter() - started) / steps
    return {
        "workers": workers,
        "global_batch": global_batch,
        "seconds_per_step": step,
        "examples_per_second": global_batch / step,
        "allreduce_seconds": allreduce_seconds(distribution.strategy, model, steps),
        "gradient_mib": sum(int(np.prod(v.shape)) for v in model.trainable_variables) * 4 / 2**20,
    }


def allreduce_seconds(strategy, model, repeats: int) -> float:
    """Seconds per all-reduce (sum) of tensors shaped like the model's gradients, across workers."""
    import tensorflow as tf

    gradients = [tf.ones(v.shape) for v in model.trainable_variables]

    @tf.function
    def reduce():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("SUM", gradients))

    reduce()
    started = time.perf_counter()
    for _ in range(repeats):
        result = reduce()
    tf.nest.map_structure(lambda t: strategy.experimental_local_results(t)[0].numpy(), result)
    return (time.perf_counter() - started) / repeats


def run_cluster(workers: int, steps: int) -> dict:
    """Start `workers` processes on loopback; the chief's measurement."""
    from zoo import distribute

    addresses = [f"127.0.0.1:{port}" for port in distribute.free_ports(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", "--steps", str(steps)],
            env={**env, **distribute.cluster_env(addresses, index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for index in range(workers)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    if any(p.returncode for p in processes):
        sys.exit(f"a worker failed: exit codes {[p.returncode for p in processes]}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def report(one: dict, two: dict) -> None:
    print(
        f"{os.cpu_count()} cores; upscale quick model, {one['gradient_mib']:.2f} MiB of gradients; "
        f"{PER_REPLICA_BATCH} examples per replica per step\n"
    )
    print("| workers | global batch | s/step | examples/s | all-reduce s/step |")
    print("|---|---|---|---|---|")
    for r in (one, two):
        print(
            f"| {r['workers']} | {r['global_batch']} | {r['seconds_per_step']:.3f} | "
            f"{r['examples_per_second']:.1f} | {r['allreduce_seconds'] * 1000:.2f} ms |"
        )
    overhead = two["allreduce_seconds"] / two["seconds_per_step"]
    print(
        f"\nall-reduce: {two['allreduce_seconds'] * 1000:.2f} ms per step between 2 processes, "
        f"{overhead:.1%} of a 2-worker step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one worker of a cluster
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.steps)))
    else:
        report(run_cluster(1, args.steps), run_cluster(2, args.steps))


if __name__ == "__main__":
    main()
