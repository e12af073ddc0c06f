"""The training harness every app shares.

A run directory holds everything about one training run:

    config.json    the app's config (hyper-parameters, preset, seed, data)
    log.csv        one row per epoch (or per evaluation step for custom loops)
    curves.png     the columns of log.csv plotted, redrawn every epoch
    tensorboard/   TensorBoard logs (when TensorFlow is installed)
    best.keras     the checkpoint with the best monitored value
    last.keras     the latest checkpoint
    model.keras    the best checkpoint without its optimizer state: the file to ship
    backup/        Keras BackupAndRestore state, for --resume
    metrics.json   the app's final evaluation
    state.json     {"finished": bool, ...}; custom loops keep their resume state here

`fit` wraps `model.fit` with those callbacks. Custom loops (RL) use the same
`Run` methods (`log`, `save_checkpoint`, `save_state`) directly.

A distributed run (`zoo train --distribute`, zoo/distribute.py) goes through the same
functions: apps build and compile their model inside `scope()`, `start_run` scales the
batch and learning rate to the global ones, and only the chief writes the run directory
(the other workers write to a scratch copy). Every file is
written atomically, so a run killed at any moment (even `kill -9`) resumes from
the last completed epoch and never finds a half-written checkpoint.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from zoo import distribute, registry
from zoo.distribute import Distribution
from zoo.errors import BadInput
from zoo.files import atomic_output, write_text_atomic

RUNS_DIR = Path("runs")


@dataclasses.dataclass
class Run:
    """One run directory and its config (a dataclass instance of the app's Config)."""

    path: Path
    config: object
    seed: int = 0
    resumed: bool = False

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj) -> Path:
        write_text_atomic(self.file(name), json.dumps(obj, indent=2, default=str) + "\n")
        return self.file(name)

    def read_json(self, name: str, default=None):
        path = self.file(name)
        return json.loads(path.read_text()) if path.exists() else default

    def write_metrics(self, metrics: dict) -> Path:
        return self.write_json("metrics.json", metrics)

    # -- state, for resume
    def save_state(self, **state) -> None:
        self.write_json("state.json", {**self.read_json("state.json", {}), **state})

    def state(self) -> dict:
        return self.read_json("state.json", {})

    def epochs_backed_up(self) -> int:
        """Epochs of `fit` that BackupAndRestore holds, so that --resume goes on after them."""
        metadata = self.file("backup") / "training_metadata.json"
        return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0

    # -- checkpoints
    def save_checkpoint(self, model: keras.Model, which: str = "last") -> Path:
        path = self.file(f"{which}.keras")
        with atomic_output(path, force=True) as tmp:
            model.save(tmp)
        return path

    # -- the epoch log
    def log_rows(self) -> list[dict]:
        path = self.file("log.csv")
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]

    def log(self, row: dict) -> None:
        """Append one row to log.csv (rewritten atomically) and redraw curves.png."""
        rows = self.log_rows() + [{k: float(v) for k, v in row.items()}]
        self._write_log(rows)
        self.plot_curves(rows)

    def truncate_log(self, first_lost_epoch: int) -> list[dict]:
        """Drop rows of epochs that a resume will run again."""
        rows = [r for r in self.log_rows() if r.get("epoch", 0) < first_lost_epoch]
        self._write_log(rows)
        return rows

    def _write_log(self, rows: list[dict]) -> None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.file("log.csv"), buffer.getvalue())

    def plot_curves(self, rows: list[dict] | None = None) -> Path | None:
        """One panel per metric, training and validation together."""
        rows = self.log_rows() if rows is None else rows
        names = [
            k
            for k in dict.fromkeys(k for r in rows for k in r)
            if k not in ("epoch", "step", "learning_rate", "time") and not k.startswith("val_")
        ]
        if not rows or not names:
            return None
        try:  # a Figure without pyplot: no backend to switch, so a notebook's own plots still show
            from matplotlib.figure import Figure
        except ImportError:  # a bare JAX machine may lack it; log.csv still has every number
            return None

        x_key = "epoch" if "epoch" in rows[0] else "step"
        fig = Figure(figsize=(4 * len(names), 3.2))
        axes = fig.subplots(1, len(names), squeeze=False)
        for ax, name in zip(axes[0], names):
            for key, style in ((name, "-"), ("val_" + name, "--")):
                points = [(r[x_key], r[key]) for r in rows if key in r and math.isfinite(r[key])]
                if points:
                    ax.plot(*zip(*points), style, label=key)
            ax.set_xlabel(x_key)
            ax.set_title(name)
            ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_output(self.file("curves.png"), force=True) as tmp:
            fig.savefig(tmp, dpi=80)
        return self.file("curves.png")


def _latest_run(app: str) -> Path:
    runs = sorted(RUNS_DIR.glob(f"{app}-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise BadInput(f"--resume: no earlier run of {app} under {RUNS_DIR}/ (pass --out DIR)")
    return runs[-1]


def start_run(
    app: str, config, out: Path | None = None, resume: bool = False, seed: int = 0, epochs: int | None = None
) -> Run:
    """Create (or reopen, with `resume`) a run directory and set the seed once.

    On resume the saved config wins, so a resumed run is the run that was
    started; only `epochs` may be raised to train longer. A distributed run
    trains with the global batch and learning rate (`distribute.scaled`),
    recorded in config.json; only its chief writes the run directory.
    """
    distribution = distribute.current()
    record = None
    if resume:
        path = Path(out) if out else _latest_run(app)
        app, config, seed, record = _saved_config(path, app, type(config), distribution, seed)
    else:
        path = Path(out) if out else RUNS_DIR / f"{app}-{time.strftime('%Y%m%d-%H%M%S')}"
        if distribution.kind != "none":
            config, record = distribute.scaled(config, distribution)
        if distribution.chief and path.exists() and any(path.iterdir()):
            raise BadInput(f"{path}: run directory exists and is not empty (pass --resume to continue it)")
    if epochs is not None and hasattr(config, "epochs"):
        config = dataclasses.replace(config, epochs=epochs)
    if not distribution.chief:
        path = _worker_copy(path, resume)
    path.mkdir(parents=True, exist_ok=True)
    run = Run(path=path, config=config, seed=seed, resumed=resume)
    run.write_json(
        "config.json",
        {"app": app, "seed": seed, **dataclasses.asdict(config), **({"distribution": record} if record else {})},
    )
    if record and distribution.chief:
        print(distribute.describe(record), flush=True)
    keras.utils.set_random_seed(seed)
    return run


def _saved_config(path: Path, app: str, config_type: type, distribution: Distribution, seed: int = 0):
    """(app, config, seed, distribution record) of the run to resume, which must resume as it started
    (its saved app name too: `upscale-x4`, whatever --scale the resuming command was given)."""
    if not (path / "config.json").exists():
        raise BadInput(f"{path}: not a run directory to resume (no config.json)")
    saved = json.loads((path / "config.json").read_text())
    seed = saved.pop("seed", seed)
    app = saved.pop("app", app)
    record = saved.pop("distribution", None)
    trained, now = record or Distribution().record(), distribution.record()
    if (trained["replicas"], trained["processes"]) != (now["replicas"], now["processes"]):
        raise BadInput(
            f"{path}: trained on {trained['replicas']} replica(s) in {trained['processes']} process(es), "
            f"not {now['replicas']} in {now['processes']}; resume it with the same --distribute, "
            "or its global batch would change"
        )
    if distribution.chief:
        for leftover in path.glob(".*.*"):  # temporary files of writes that a kill -9 cut short
            if leftover.is_file():
                leftover.unlink()
    unknown = sorted(set(saved) - {field.name for field in dataclasses.fields(config_type)})
    if unknown:  # saved by an older version of the app, whose config had other fields
        raise BadInput(
            f"{path}: saved with settings this version does not know ({', '.join(unknown)}); start a new run"
        )
    return app, config_type(**saved), seed, record


def _worker_copy(path: Path, resume: bool) -> Path:
    """A non-chief worker's own scratch run directory (the Keras multi-worker guide's choice).

    Every worker writes checkpoints and backups, but only the chief's are kept. On resume the
    worker starts from a copy of the chief's directory, so that BackupAndRestore brings every
    worker back to the same epoch (on a cluster, the run directory must be on shared storage).
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"zoo-worker{distribute.current().index}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if resume:
        shutil.copytree(path, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    return scratch


def scope():
    """Where an app builds and compiles its model: the distribution's (mirrored variables), if any."""
    return distribute.current().scope()


class EpochSeeded(keras.utils.PyDataset):
    """Training batches whose randomness is a function of (seed, epoch, ...) alone.

    A run resumed at epoch k then draws exactly the batches it would have drawn, and
    batches made in worker threads need no shared random generator.
    """

    def __init__(self, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.seed, self.epoch = seed, 0
        self._order_epoch, self._order = None, None

    def on_epoch_end(self):
        self.epoch += 1

    def rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, *keys])

    def shuffled(self, count: int) -> np.ndarray:
        """This epoch's permutation of range(count), drawn once per epoch."""
        if self._order_epoch != self.epoch:
            self._order_epoch, self._order = self.epoch, self.rng().permutation(count)
        return self._order


class ProcessShard(keras.utils.PyDataset):
    """This process's slice of every global batch, for multi-process JAX (`keras.distribution`
    lays out each process's rows on its own devices; tf.distribute shards its input itself)."""

    def __init__(self, batches: keras.utils.PyDataset, distribution: Distribution):
        super().__init__()
        self.batches, self.index, self.count = batches, distribution.index, distribution.processes

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return keras.tree.map_structure(lambda a: np.array_split(a, self.count)[self.index], self.batches[index])

    def on_epoch_end(self):
        self.batches.on_epoch_end()


class _AtomicCheckpoint(keras.callbacks.Callback):
    """Save `last.keras` every epoch and `best.keras` when `monitor` improves."""

    def __init__(self, run: Run, monitor: str, mode: str, best: float | None):
        super().__init__()
        self.run, self.monitor, self.sign = run, monitor, (1 if mode == "min" else -1)
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or self.sign * value < self.sign * self.best):
            self.best = float(value)
            self.run.save_checkpoint(self.model, "best")
        self.run.save_checkpoint(self.model, "last")


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, run: Run):
        super().__init__()
        self.run, self.started = run, time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.run.log(
            {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}, "time": time.time() - self.started}
        )


def _tensorboard(run: Run) -> list[keras.callbacks.Callback]:
    """TensorBoard needs TensorFlow's summary writer; JAX-only machines go without."""
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(run.file("tensorboard")))]


def onednn_crash_layers(model: keras.Model) -> list[str]:
    """Trainable 1x1 convolutions with a stride and fewer than 16 input channels.

    oneDNN's AVX-512 kernel for their weight gradient writes past its workspace and kills the
    process (oneDNN issue 6035, TensorFlow 2.21 CPU builds); subsampling first, then a stride-1
    1x1 convolution, computes the same function and trains safely.
    """
    return [
        layer.name
        for layer in _all_layers(model)
        if isinstance(layer, keras.layers.Conv2D)
        and layer.trainable
        and tuple(layer.kernel_size) == (1, 1)
        and max(layer.strides) > 1
        and layer.input.shape[-1] < 16
    ]


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _onednn_avx512() -> bool:
    """True where TensorFlow runs oneDNN's AVX-512 kernels: the only place that crash happens."""
    if keras.backend.backend() != "tensorflow" or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def check_trainable_here(model: keras.Model) -> None:
    """Refuse, with a one-line reason, a model whose training would crash this process."""
    crashing = onednn_crash_layers(model) if _onednn_avx512() else []
    if crashing:
        raise BadInput(
            f"layer {crashing[0]}: a strided 1x1 convolution over fewer than 16 channels crashes "
            "TensorFlow's oneDNN on this AVX-512 CPU (oneDNN issue 6035); widen its input to 16 "
            "channels, subsample before a stride-1 convolution, or set TF_ENABLE_ONEDNN_OPTS=0"
        )


def fit(
    run: Run,
    model: keras.Model,
    train,
    validation=None,
    epochs: int = 1,
    monitor: str = "val_loss",
    mode: str = "min",
    callbacks: list | None = None,
    **fit_kwargs,
) -> keras.callbacks.History:
    """`model.fit` with the harness's logs, checkpoints and resume."""
    check_trainable_here(model)
    backup = run.file("backup")
    rows = run.truncate_log(run.epochs_backed_up()) if run.resumed else []
    previous = [r[monitor] for r in rows if monitor in r]
    best = (min if mode == "min" else max)(previous) if previous else None
    all_callbacks = [
        *(callbacks or []),
        _AtomicCheckpoint(run, monitor, mode, best),
        _EpochLog(run),
        *_tensorboard(run),
        # Last, so an epoch counts as done only once its checkpoints and log row exist.
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
    ]
    # A progress bar on a terminal; one line per epoch in logs and CI.
    fit_kwargs.setdefault("verbose", "auto" if sys.stdout.isatty() else 2)
    if isinstance(train, EpochSeeded):
        # Its order is already a function of (seed, epoch); Keras's shuffle would draw from the global
        # generator, whose state differs between a plain, a resumed and a distributed run.
        fit_kwargs.setdefault("shuffle", False)
    history = model.fit(
        _this_process_share(train), validation_data=validation, epochs=epochs, callbacks=all_callbacks, **fit_kwargs
    )
    run.save_state(finished=True, epochs=epochs)
    return history


def _this_process_share(train):
    """The training input this process feeds. tf.distribute shards any input per worker itself
    (a generator has no files, so by data: each worker keeps its slice of every global batch);
    multi-process JAX expects each process to hand over its own slice."""
    distribution = distribute.current()
    if distribution.strategy is not None or distribution.processes == 1:
        return train
    if not isinstance(train, keras.utils.PyDataset):
        raise BadInput(
            "--distribute multi-worker under JAX: this app's training data are arrays, which "
            "each process would feed whole; use TensorFlow, or one host with several devices"
        )
    return ProcessShard(train, distribution)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute in `name` ("mixed_bfloat16": bf16 maths, float32 weights)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def in_float32(model: keras.Model) -> keras.Model:
    """The model with every layer computing in float32 (same weights): a mixed-precision run's
    file to ship, so that it predicts the same on any CPU, with or without bf16 instructions."""
    if all(layer.dtype_policy.name == "float32" for layer in _all_layers(model)):
        return model
    copy = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})
    )
    copy.set_weights(model.get_weights())
    return copy


def start_from(model: keras.Model, donor: keras.Model, source: str) -> list[str]:
    """Copy into `model` the weights of each layer of the same name in `donor` (`--init source`: a
    shipped tag, a .keras file or a run): pretraining on a large corpus, then fine-tuning on a small
    one. Layers that the donor lacks (in music, the voice layers of a one-voice model) keep their fresh start."""
    donor = {layer.name: layer for layer in donor.layers}
    copied = []
    for layer in model.layers:
        if layer.name not in donor or not layer.weights:
            continue
        theirs = donor[layer.name].get_weights()
        shapes, wanted = [w.shape for w in theirs], [tuple(w.shape) for w in layer.weights]
        if shapes != wanted:
            raise BadInput(
                f"--init {source}: its layer {layer.name} has weights of shapes {shapes}, this preset's "
                f"{wanted}; use the preset that model was trained with"
            )
        layer.set_weights(theirs)
        copied.append(layer.name)
    return copied


def best_model(run: Run) -> keras.Model:
    """The run's best checkpoint, also written as `model.keras`: in float32, without optimizer
    state, a third of the size, and what `zoo/weights/` ships (copied as is, so its sha256 is
    reproducible)."""
    model = in_float32(load_model(run.file("best.keras")))
    run.save_checkpoint(model, "model")
    return model


def load_model(path: Path, app: str | None = None) -> keras.Model:
    """Load a .keras file with safe_mode=True, turning a bad file into one line.

    A zoo file's own app module is imported first, for its custom layers. With `app`, a file
    whose model another app's card claims is refused by name
    ("upscale_x2.keras: an upscale model, not a classify one") before anything is built.
    """
    owner = registry.app_of_model(_model_name(path))
    if app and owner is not None and owner.name != app:
        raise BadInput(f"{path}: {_article(owner.name)} model, not {_article(app)} one")
    if owner is not None:
        registry.load_keras_objects(owner)  # registers the custom layers its file needs
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # a corrupt zip, a foreign model, unsafe lambdas: all mean "bad file" here
        raise BadInput(f"{path}: not a loadable .keras model ({type(error).__name__}: {str(error)[:120]})") from None
    built = [e for e in registry.get(app).weights if e.built_by and e.path == Path(path)] if app else []
    if built and weights_sha256(model) != built[0].sha256:
        raise BadInput(
            f"{path}: its weights differ from the model card's (sha256); rebuild it with "
            f"`zoo {app} {built[0].built_by} --force`"
        )
    return model


def weights_sha256(model: keras.Model) -> str:
    """sha256 of the weights themselves (float32, in order): stable across saves, unlike a .keras zip's."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
    return digest.hexdigest()


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _model_name(path: Path) -> str:
    """The model's name from the file's config.json, read without building anything ("" if unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("config.json")).get("config", {}).get("name", ""))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return ""
