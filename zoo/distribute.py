"""Training on several devices or machines, through TensorFlow's and Keras's own engines.

    zoo train APP --distribute mirrored [--devices N]      one machine, N devices
    zoo train APP --distribute multi-worker                 one process per machine (TF_CONFIG)
    zoo train APP --distribute multi-worker --workers N --local   N processes here, on loopback

Under TensorFlow, `mirrored` is `tf.distribute.MirroredStrategy` over N GPUs (or, without
GPUs, over N logical CPU devices) and `multi-worker` is `MultiWorkerMirroredStrategy`, which
reads the cluster from TF_CONFIG as Kubernetes TFJob and Vertex AI set it. Under
KERAS_BACKEND=jax both are `keras.distribution.DataParallel` over `jax.devices()`;
`multi-worker` first joins the processes with `keras.distribution.initialize`, which reads
KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID. Either way every replica
computes the gradient of its slice of each global batch and the engine averages them: nothing
here exchanges gradients itself.

This module picks and starts the engine (`start`) and runs a local cluster (`launch_local`);
`zoo.harness` scales the batch and learning rate, shards the input and keeps every file but
the chief's out of the run directory. Nothing heavy is imported until a run starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoo.errors import BadInput, ZooError

RESULT_FILE = "ZOO_DISTRIBUTED_RESULT"  # where a --local child that is the chief writes its result


@dataclasses.dataclass(frozen=True)
class Distribution:
    """The engine a run trains with: how many replicas in how many processes, and which one this is."""

    kind: str = "none"
    replicas: int = 1  # devices that each take a slice of every global batch
    processes: int = 1
    index: int = 0  # this process's rank; 0 is the chief
    strategy: object = None  # a tf.distribute.Strategy, or None (single device, or JAX)

    @property
    def chief(self) -> bool:
        return self.index == 0

    def scope(self):
        """Where models and optimizers must be created (TensorFlow mirrors their variables)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def record(self) -> dict:
        return {"kind": self.kind, "replicas": self.replicas, "processes": self.processes}


_current = Distribution()


def current() -> Distribution:
    """The distribution of the run in progress (single-device unless `start` said otherwise)."""
    return _current


# ------------------------------------------------------------ checking


def check(distribute: str, devices: int | None, workers: int | None, local: bool) -> None:
    """Refuse, in one line, combinations that mean nothing."""
    if local and distribute != "multi-worker":
        raise BadInput("--local: starts a local cluster, so it needs --distribute multi-worker")
    if workers is not None and not local:
        raise BadInput(
            "--workers: only with --local; on a cluster TF_CONFIG (or the JAX coordinator variables) names the workers"
        )
    if local and workers is None:
        raise BadInput("--local: pass --workers N, the number of worker processes to start")
    if devices is not None and distribute != "mirrored":
        raise BadInput(
            "--devices: only with --distribute mirrored (a multi-worker run uses every device of each worker)"
        )


def tf_cluster(text: str | None) -> tuple[int, int]:
    """(processes, this process's rank) from TF_CONFIG; rank 0 is the chief.

    A cluster names workers and at most one chief; without a chief, worker 0 is it (the
    convention of MultiWorkerMirroredStrategy and the Keras multi-worker guide).
    """
    if not text:
        raise BadInput(
            "TF_CONFIG: not set; --distribute multi-worker reads the cluster from it "
            '({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}), '
            "or pass --workers N --local"
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        workers, chiefs = list(cluster.get("worker", [])), list(cluster.get("chief", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise BadInput(
            f"TF_CONFIG: malformed ({type(error).__name__}: {error}); expected "
            '{"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}'
        ) from None
    members = {"chief": chiefs, "worker": workers}
    if kind not in members or not 0 <= index < len(members[kind]) or len(chiefs) > 1:
        raise BadInput(
            f"TF_CONFIG: task {kind} {index} is not in the cluster ({len(chiefs)} chief, {len(workers)} workers)"
        )
    return len(chiefs) + len(workers), index if kind == "chief" else index + len(chiefs)


# ------------------------------------------------------------ starting


def start(distribute: str, devices: int | None = None) -> Distribution:
    """Build the strategy (TensorFlow) or set the distribution (JAX); before any model exists."""
    global _current
    import keras

    if distribute == "none":
        _current = Distribution()
    elif keras.backend.backend() == "tensorflow":
        _current = _start_tensorflow(distribute, devices)
    elif keras.backend.backend() == "jax":
        _current = _start_jax(distribute, devices)
    else:
        raise BadInput(
            f"--distribute {distribute}: needs KERAS_BACKEND tensorflow or jax, not {keras.backend.backend()}"
        )
    return _current


def _start_tensorflow(distribute: str, devices: int | None) -> Distribution:
    import tensorflow as tf

    if distribute == "multi-worker":
        processes, index = tf_cluster(os.environ.get("TF_CONFIG"))
        _work_around_keras_multi_worker()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return Distribution(distribute, strategy.num_replicas_in_sync, processes, index, strategy)
    strategy = tf.distribute.MirroredStrategy(_tensorflow_devices(tf, devices))
    return Distribution(distribute, strategy.num_replicas_in_sync, 1, 0, strategy)


def _tensorflow_devices(tf, count: int | None) -> list[str]:
    """N GPUs, or without GPUs the CPU split into N logical devices (a way to try it on a laptop)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if count is not None and count > len(gpus):
            raise BadInput(f"--devices {count}: this machine has {len(gpus)} GPUs")
        return [f"/gpu:{i}" for i in range(count or len(gpus))]
    count = count or 1
    try:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # TensorFlow has started: its devices are fixed for this process
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise BadInput(
                f"--devices {count}: TensorFlow already started with fewer CPU devices; "
                "run `zoo train` in a fresh process"
            ) from None
    return [f"/cpu:{i}" for i in range(count)]


def _start_jax(distribute: str, devices: int | None) -> Distribution:
    import jax
    import keras

    if distribute == "multi-worker":
        if "KERAS_DISTRIBUTION_JOB_ADDRESSES" not in os.environ:
            raise BadInput(
                "KERAS_DISTRIBUTION_JOB_ADDRESSES: not set; under JAX, --distribute multi-worker "
                "reads the coordinator from it (with _NUM_PROCESSES and _PROCESS_ID), "
                "or pass --workers N --local"
            )
        keras.distribution.initialize()  # jax.distributed.initialize with Keras's variables
    chosen = jax.devices()
    if devices is not None:
        if devices > len(chosen):
            raise BadInput(
                f"--devices {devices}: JAX sees {len(chosen)} (on a CPU, set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices})"
            )
        chosen = chosen[:devices]
    # Each process hands over its own slice of every batch (harness.ProcessShard), already sharded.
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False))
    return Distribution(distribute, len(chosen), jax.process_count(), jax.process_index())


def _work_around_keras_multi_worker() -> None:
    """Two fixes Keras 3 needs to train under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras reduces the first (x, y) batch as one nest to learn its shapes, and the per-step losses
    and metrics, which are scalars, along axis 0; collective reductions accept neither. Each fix
    keeps Keras's own code path and changes only that call.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_zoo_multi_worker", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is not None and iterator is not None:
            for _, _, batches in iterator:  # this worker's first replica has the shapes
                data_batch = tree.map_structure(
                    lambda v: self._distribute_strategy.experimental_local_results(v)[0], next(batches)
                )
                break
            iterator = None
        return maybe_symbolic_build(self, iterator, data_batch)

    maybe_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    trainer.reduce_per_replica = reduce_scalars
    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build
    trainer._zoo_multi_worker = True


# ------------------------------------------------------------ the harness's side


def scaled(config, distribution: Distribution):
    """The config with the global batch and learning rate of `distribution`, and the record of it.

    Each replica keeps the preset's batch, so the global batch is that times the replicas; the
    learning rate grows with it (the linear scaling rule, Goyal et al. 2017), so that an epoch
    of fewer, larger steps moves the weights about as far.
    """
    replicas, changes, record = distribution.replicas, {}, distribution.record()
    if hasattr(config, "batch_size"):
        changes["batch_size"] = config.batch_size * replicas
        record["batch_size"] = {"per_replica": config.batch_size, "global": changes["batch_size"]}
    if hasattr(config, "learning_rate"):
        changes["learning_rate"] = config.learning_rate * replicas
        record["learning_rate"] = {"single_device": config.learning_rate, "scaled": changes["learning_rate"]}
    return dataclasses.replace(config, **changes), record


def describe(record: dict) -> str:
    """One line for the run's output: what the distribution changed."""
    parts = [f"{record['kind']}: {record['replicas']} replicas in {record['processes']} process(es)"]
    if "batch_size" in record:
        batch = record["batch_size"]
        parts.append(f"global batch {batch['global']} ({batch['per_replica']} per replica)")
    if "learning_rate" in record:
        rate = record["learning_rate"]
        parts.append(f"learning rate {rate['scaled']:g} ({rate['single_device']:g} x {record['replicas']})")
    return "distributed " + ", ".join(parts)


# ------------------------------------------------------------ running


def train(options: dict, run_app):
    """Run `run_app()` (the app's train) as `options` say: here, or on a local cluster."""
    check(**options)
    if options["local"]:
        return launch_local(options["workers"])
    start(options["distribute"], options["devices"])
    result = run_app()
    if os.environ.get(RESULT_FILE):  # a --local child: its parent reports the run, once
        if current().chief:
            Path(os.environ[RESULT_FILE]).write_text(json.dumps(result, default=str))
        return {}
    return result


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, on 127.0.0.1 (all held open together, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def cluster_env(addresses: list[str], index: int) -> dict:
    """What a worker process needs to find the others, for the backend in use."""
    import keras

    if keras.backend.backend() == "jax":
        return {
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(addresses)),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        }
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})}


def worker_command(argv: list[str]) -> list[str]:
    """This process's own command line without --local and --workers N: what each worker runs."""
    if "--local" not in argv:
        raise ZooError(
            "--local: re-runs this process's command line, which does not ask for it; "
            "start the cluster from the `zoo` command"
        )
    command, args = [], iter(argv)
    for arg in args:
        if arg == "--workers":
            next(args, None)  # and its value
        elif arg != "--local" and not arg.startswith("--workers="):
            command.append(arg)
    return command


def launch_local(workers: int) -> dict:
    """The same `zoo train` in `workers` processes here, joined on loopback ports; the chief's result.

    The chief's output is this command's; the others' goes to a log that a failure quotes.
    If one process fails, the rest would wait for it forever in a collective: they are killed.
    """
    command = [sys.executable, *worker_command(sys.orig_argv[1:])]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    with tempfile.TemporaryDirectory(prefix="zoo-cluster-") as folder:
        result = Path(folder) / "result.json"
        processes, logs = [], []
        try:
            for index in range(workers):
                logs.append(None if index == 0 else open(Path(folder) / f"worker-{index}.log", "w"))
                # TMPDIR: the workers' scratch run directories go too when this folder does, even
                # those of a worker killed before it could clean up.
                env = {**os.environ, **cluster_env(addresses, index), RESULT_FILE: str(result), "TMPDIR": folder}
                processes.append(
                    subprocess.Popen(command, env=env, stdout=logs[-1], stderr=subprocess.STDOUT if logs[-1] else None)
                )
            _wait_all(processes, logs)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for log in filter(None, logs):
                log.close()
        return json.loads(result.read_text())


def _wait_all(processes: list[subprocess.Popen], logs: list) -> None:
    """Return once every process has exited 0; raise as soon as one fails."""
    while True:
        codes = [p.poll() for p in processes]
        failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            index, code = failed[0]
            if code < 0:
                raise ZooError(f"worker {index} was killed (signal {-code}); stopped the others")
            said = Path(logs[index].name).read_text().strip().splitlines()[-1:] if logs[index] else []
            raise (BadInput if code == 2 else ZooError)(
                f"worker {index} exited with {code}{': ' + said[0] if said else ''}; stopped the others"
            )
        if all(code == 0 for code in codes):
            return
        time.sleep(0.2)
