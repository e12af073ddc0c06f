"""App specs as data: what `zoo list` and `zoo info` show, without importing Keras.

Every app ships one model card, `zoo/weights/<app>.json`. Its `app` section is
the spec: name, kind, summary, module, datasets, metrics, and per action the
shared options it takes and its own typed options (choices, min, max, default).
Its `weights` section lists the shipped `.keras` files as typed records
(`WeightsEntry`, after timm's `PretrainedCfg` and torchvision's `Weights`).
Reading JSON is all the registry does; the app module, which imports Keras and
TensorFlow, is imported only by `call`, when the app is trained, evaluated or
demoed, once `AppSpec.check_installed` has found (not imported) the packages
the card's `imports` name, or said in one line which extra installs them.
`resolve_weights` is the one place that locates a weights file.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from zoo.data.download import cache_dir
from zoo.errors import BadInput, ZooError
from zoo.files import check_input_file, sha256_file

WEIGHTS_DIR = Path(__file__).parent / "weights"
ACTIONS = ("train", "evaluate", "demo")
OPTION_TYPES = ("str", "int", "float", "path", "flag", "choice")
_CASTS = {"str": str, "int": int, "float": float, "path": Path}


@dataclass(frozen=True)
class Option:
    """One CLI option, declared as data: the card's app options and the shared ones below."""

    name: str  # the Python keyword the app function receives, e.g. "top_k" (--top-k)
    type: str = "str"  # one of OPTION_TYPES
    default: object = None
    help: str = ""
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    short: str | None = None  # e.g. "-k"
    selects_weights: bool = False  # the value picks the shipped entry whose extra[name] equals it
    argument: bool = False  # positional (an app command's FILE), not --name
    metavar: str | None = None  # what --help shows for the value (default: its type or choices)
    required: bool = False
    load: bool = False  # fixed when the model loads (`zoo.load(APP, NAME=...)`), not per call

    @property
    def at_load(self) -> bool:
        """Whether the value shapes the loaded predictor (which weights, which data) rather than one call."""
        return self.load or self.selects_weights

    def __post_init__(self):
        if self.type not in OPTION_TYPES:
            raise ZooError(f"option {self.name}: type {self.type!r} is not one of {', '.join(OPTION_TYPES)}")

    @property
    def flag(self) -> str:
        return self.name.upper() if self.argument else "--" + self.name.replace("_", "-")

    def convert(self, value):
        """The typed, checked value of `value` (a string from the command line, or already typed)."""
        if value is None and self.required:
            raise BadInput(f"{self.name.upper() if self.argument else self.flag}: required")
        if value is None or self.type == "flag":
            return bool(value) if self.type == "flag" else None
        if self.type == "choice":
            for choice in self.choices:
                if str(choice) == str(value):
                    return choice
            raise BadInput(f"{self.flag} {value}: choose one of {', '.join(map(str, self.choices))}")
        try:
            typed = _CASTS[self.type](value)
        except (TypeError, ValueError):
            raise BadInput(f"{self.flag} {value}: not {'an integer' if self.type == 'int' else 'a number'}") from None
        if self.min is not None and typed < self.min:
            raise BadInput(f"{self.flag} {value}: must be at least {self.min}")
        if self.max is not None and typed > self.max:
            raise BadInput(f"{self.flag} {value}: must be at most {self.max}")
        return typed

    def describe(self) -> str:
        """What --help adds after the option's own help: choices, range, default."""
        notes = []
        if self.choices:
            notes.append("one of " + ", ".join(map(str, self.choices)))
        if self.min is not None:
            notes.append(f">= {self.min}")
        if self.max is not None:
            notes.append(f"<= {self.max}")
        if self.default not in (None, False, ()):
            notes.append(f"default {self.default}")
        return f"{self.help} [{'; '.join(notes)}]" if notes else self.help


# The options every app shares, by action; a card lists the ones each action takes.
SHARED_OPTIONS = {
    o.name: o
    for o in (
        Option("preset", "choice", help="Hyper-parameter preset."),  # choices and default: the card's presets
        Option("epochs", "int", min=1, help="Override the preset's number of epochs."),
        Option("data", "path", help="Your own data (file or folder)."),
        Option("out", "path", help="Run directory (default: runs/<app>-<time>)."),
        Option("resume", "flag", default=False, help="Continue an interrupted run (--out, or the latest run)."),
        Option("seed", "int", default=0, help="Random seed, set once."),
        Option(
            "weights",
            "str",
            metavar="FILE|RUN|TAG",
            help="A .keras file, a run directory (its best checkpoint) or a shipped tag.",
        ),
        Option("output", "path", short="-o", help="Output file (one input) or folder (several)."),
        Option("force", "flag", default=False, help="Overwrite existing outputs."),
        # Training on several devices or machines (zoo/distribute.py); the harness takes these, not the app.
        Option(
            "distribute",
            "choice",
            default="none",
            choices=("none", "mirrored", "multi-worker"),
            help="Data-parallel training: several local devices, or a cluster (TF_CONFIG).",
        ),
        Option("devices", "int", min=1, help="With --distribute mirrored: how many local devices (default: all GPUs)."),
        Option("workers", "int", min=1, help="With --local: how many worker processes to start."),
        Option(
            "local",
            "flag",
            default=False,
            help="With --distribute multi-worker: a cluster of --workers processes on this machine (127.0.0.1).",
        ),
    )
}
DISTRIBUTION = ("distribute", "devices", "workers", "local")  # train options the harness consumes
CLI_ONLY = ("inputs", "json")  # shared parameters the CLI handles: positional INPUT..., --json
WEIGHTS_FIELDS = (
    "tag",
    "file",
    "sha256",
    "params",
    "data",
    "split",
    "metrics",
    "baseline",
    "command",
    "evaluate_command",
    "hardware",
    "wall_time",
)


@dataclass(frozen=True)
class Action:
    """What `zoo <action> <app>` (or an app command, `zoo <app> <command>`) takes: shared parameters
    by name, then the app's own options."""

    shared: tuple[str, ...]
    options: tuple[Option, ...] = ()
    help: str = ""
    inputs_optional: bool = False  # INPUT... may be left out (speech: `zoo demo speech --say 7`)

    @property
    def takes_inputs(self) -> bool:
        return "inputs" in self.shared

    def parameters(self, presets: tuple[str, ...]) -> list[Option]:
        """Every option the app function receives, shared ones first."""
        shared = [SHARED_OPTIONS[n] for n in self.shared if n not in CLI_ONLY]
        shared = [
            dataclasses.replace(o, choices=presets, default=presets[0]) if o.name == "preset" else o for o in shared
        ]
        return shared + list(self.options)


def _check_fields(record: dict, required, optional, what: str, hint: str = "") -> None:
    """A card record with every required field and no field it does not know, else one ZooError line."""
    missing = [k for k in required if k not in record]
    unknown = sorted(set(record) - set(required) - set(optional))
    if missing or unknown:
        found = "; ".join(
            filter(None, (missing and f"missing {', '.join(missing)}", unknown and f"unknown {', '.join(unknown)}"))
        )
        raise ZooError(f"{what} {record.get('tag', '?')!r}: {found}" + (f" ({hint})" if hint else ""))


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped `.keras` file with what it was trained on, how, and what it measures."""

    tag: str
    file: str
    sha256: str
    params: int
    data: str
    split: str
    metrics: dict
    baseline: dict  # {"name": ..., "metrics": {...}}
    command: str  # the exact training command
    evaluate_command: str  # the command that printed `metrics`
    hardware: str
    wall_time: str
    extra: dict = field(default_factory=dict)  # app-specific: selector values, notes, per-image numbers

    @property
    def built_by(self) -> str | None:
        """The app command that builds this file on first use (converted, too big to ship), if any."""
        return self.extra.get("built_by")

    @property
    def path(self) -> Path:
        """Shipped files live beside the cards; built ones in the cache, where their command writes them."""
        return cache_dir() / "models" / self.file if self.built_by else WEIGHTS_DIR / self.file

    @classmethod
    def from_card(cls, record: dict, card: Path) -> WeightsEntry:
        _check_fields(
            record, WEIGHTS_FIELDS, ("extra",), f"{card.name}: weights", "put app-specific fields under 'extra'"
        )
        return cls(**record)


@dataclass(frozen=True)
class PublishedWeights:
    """Weights the zoo does not ship but downloads on first use from their publisher (hash-checked,
    cached), with the publisher's own figures: `metrics` are published, never measured here."""

    tag: str  # what --weights takes
    architecture: str  # the app's name for the network that loads them (e.g. a keras.applications model)
    metrics: dict
    source: str  # who published the weights and the figures, and where
    licence: str
    default_for: str | None = None  # an alias tag that picks this entry (`imagenet`)

    @classmethod
    def from_card(cls, record: dict, card: Path) -> PublishedWeights:
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        _check_fields(record, required, ("default_for",), f"{card.name}: published weights")
        return cls(**record)


@dataclass(frozen=True)
class AppSpec:
    name: str
    kind: str
    summary: str
    module: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]  # keys every weights entry's metrics hold
    model_names: tuple[str, ...]  # fnmatch patterns of the keras.Model names this app builds
    presets: tuple[str, ...]
    actions: dict[str, Action]
    commands: dict[str, Action] = field(default_factory=dict)  # the app's own: `zoo faces enroll`
    weights: tuple[WeightsEntry, ...] = ()
    default_weights: str | None = None
    training: str = "harness"  # "harness" (model.fit, --distribute applies) or "own-loop" (RL)
    examples: tuple[dict, ...] = ()  # bundled demo calls: inputs and options (zoo.data.examples)
    extra: str | None = None  # the pyproject extra with the app's own packages (None: the core suffices)
    imports: tuple[str, ...] = ()  # import names from `extra` the app cannot run without (none: it is optional)
    published: tuple[PublishedWeights, ...] = ()  # downloaded from their publisher, not shipped
    card_path: Path | None = None

    def published_entry(self, tag: str) -> PublishedWeights | None:
        """The published weights `--weights tag` names (their tag or their alias), if any."""
        return next((p for p in self.published if tag in (p.tag, p.default_for)), None)

    @property
    def missing(self) -> list[str]:
        """The declared import names that are not installed; found, never imported (no TensorFlow)."""
        return [name for name in self.imports if importlib.util.find_spec(name) is None]

    def check_installed(self) -> None:
        """One line naming the extra to install when the app's packages are missing, before its module imports."""
        if self.missing:
            raise BadInput(f"{self.name} needs the {self.extra} extra: pip install 'keras-zoo[{self.extra}]'")

    def entry(self, tag: str | None = None) -> WeightsEntry:
        """The shipped entry `tag`, or the default one when None."""
        if not self.weights:
            raise BadInput(
                f"{self.name}: no shipped weights yet; train with `zoo train {self.name}` and pass --weights"
            )
        tag = tag or self.default_weights or self.weights[0].tag
        for entry in self.weights:
            if entry.tag == tag:
                return entry
        raise BadInput(f"{self.name}: no shipped weights tagged {tag!r} (have: {', '.join(self.tags)})")

    @property
    def tags(self) -> list[str]:
        return [e.tag for e in self.weights]

    def declared(self, action: str) -> Action:
        """A shared action (train, evaluate, demo) or one of the app's own commands."""
        found = self.actions.get(action) or self.commands.get(action)
        if found is None:
            raise BadInput(f"{self.name}: `{action}` does not apply to this app")
        return found

    def parameters(self, action: str) -> list[Option]:
        return self.declared(action).parameters(self.presets)

    def defaults(self, action: str) -> dict:
        return {o.name: o.default for o in self.parameters(action)}

    def owns_model(self, model_name: str) -> bool:
        return any(fnmatch.fnmatch(model_name, pattern) for pattern in self.model_names)

    def typed(self, action: str, values: dict, fill_defaults: bool = True) -> dict:
        """`values` typed and checked against the action's options (card defaults filled in), or BadInput.

        The one place option values are checked: the CLI, `zoo.load` and `zoo serve` all come here.
        """
        parameters = {o.name: o for o in self.parameters(action)}
        accepted = set(parameters) | ({"inputs"} if self.declared(action).takes_inputs else set())
        unknown = sorted(set(values) - accepted)
        harness_only = [name for name in DISTRIBUTION if name in unknown]
        if harness_only and self.training == "own-loop":  # RL: the harness's engines cannot drive its loop
            raise BadInput(
                f"{self.name}: trains in its own loop, not through the harness's model.fit, so "
                f"--{harness_only[0]} does not apply (train it on one machine)"
            )
        if unknown:
            flags = ", ".join("--" + n.replace("_", "-") for n in unknown)
            raise BadInput(
                f"{self.name}: `zoo {action}` takes no {flags} (it takes: "
                f"{', '.join(o.flag for o in parameters.values())})"
            )
        chosen = parameters if fill_defaults else {n: parameters[n] for n in values if n in parameters}
        typed = {name: option.convert(values.get(name, option.default)) for name, option in chosen.items()}
        if "inputs" in values:
            typed["inputs"] = values["inputs"]
        return typed


def _action(declared: dict) -> Action:
    options = tuple(Option(**{**o, "choices": tuple(o.get("choices", ()))}) for o in declared.get("options", ()))
    return Action(
        tuple(declared.get("shared", ())), options, declared.get("help", ""), declared.get("inputs_optional", False)
    )


def _spec_from_card(path: Path) -> AppSpec:
    card = json.loads(path.read_text())
    app = card["app"]
    if app.get("imports") and not app.get("extra"):
        raise ZooError(f"{path.name}: app.imports {app['imports']} need app.extra, the extra that installs them")
    actions = {name: _action(a) for name, a in app.get("actions", {}).items()}
    commands = {name: _action(c) for name, c in app.get("commands", {}).items()}
    return AppSpec(
        name=app["name"],
        kind=app["kind"],
        summary=app["summary"],
        module=app["module"],
        datasets=tuple(app.get("datasets", ())),
        metrics=tuple(app.get("metrics", ())),
        model_names=tuple(app.get("model_names", ())),
        presets=tuple(app.get("presets", ("quick", "full"))),
        actions=actions,
        commands=commands,
        weights=tuple(WeightsEntry.from_card(w, path) for w in card.get("weights", ())),
        default_weights=app.get("default_weights"),
        training=app.get("training", "harness"),
        examples=tuple(app.get("examples", ())),
        extra=app.get("extra"),
        imports=tuple(app.get("imports", ())),
        published=tuple(PublishedWeights.from_card(p, path) for p in card.get("published_weights", ())),
        card_path=path,
    )


@functools.cache
def all_specs() -> tuple[AppSpec, ...]:
    """Every app, sorted by kind then name; two cards may not claim one name."""
    specs = [_spec_from_card(p) for p in sorted(WEIGHTS_DIR.glob("*.json"))]
    by_name: dict[str, AppSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise ZooError(
                f"{spec.card_path.name} and {by_name[spec.name].card_path.name} both define app {spec.name!r}"
            )
        by_name[spec.name] = spec
    return tuple(sorted(specs, key=lambda s: (s.kind, s.name)))


def find(pattern: str = "*") -> list[AppSpec]:
    """Apps whose name or kind matches a shell-style wildcard, e.g. `vis*`."""
    return [s for s in all_specs() if fnmatch.fnmatch(s.name, pattern) or fnmatch.fnmatch(s.kind, pattern)]


def get(name: str) -> AppSpec:
    by_name = {s.name: s for s in all_specs()}
    if name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(name, by_name, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; apps: {', '.join(by_name)}"
    raise BadInput(f"unknown app {name!r}{hint}")


def load_module(spec: AppSpec) -> ModuleType:
    """Import the app's module: the moment Keras and TensorFlow get imported, once its extra is known installed."""
    spec.check_installed()
    return importlib.import_module(spec.module)


def load_keras_objects(spec: AppSpec) -> None:
    """Import what registers the app's custom Keras layers, which its saved models need: its module, and
    the Keras half that a module importing Keras lazily names in `KERAS_HALF` (upscale)."""
    half = getattr(load_module(spec), "KERAS_HALF", None)
    if half:
        importlib.import_module(half)


def call(app: str, action: str, **values):
    """Run an app's action: card defaults filled in, every value typed and checked, then the app function.

    `demo` runs through the app's predictor (`zoo.api.demo`), as the CLI, the gallery and `zoo serve` do;
    so does an app command that is a method of its predictor (`zoo faces verify` is
    `zoo.load("faces", weights=...).verify(...)`), which returns the result's record.
    """
    spec = get(app)
    typed = spec.typed(action, values)
    if "inputs" in typed:
        typed["inputs"] = [Path(p) for p in typed["inputs"]]
    if action == "demo":
        from zoo import api

        return api.demo(spec, **typed)
    module, method = load_module(spec), action.replace("-", "_")
    if action in spec.commands and hasattr(getattr(module, "Predictor", None), method):
        from zoo import api

        return getattr(api.load(app, typed.pop("weights", None)), method)(**typed).to_dict()
    function = getattr(module, method)
    if "distribute" not in typed:
        return function(**typed)
    from zoo import distribute  # the harness's engines; the app never sees these options

    options = {name: typed.pop(name) for name in DISTRIBUTION}
    return distribute.train(options, lambda: function(**typed))


# ------------------------------------------------------------------ weights


def resolve_weights(app: str, weights: str | Path | None = None, **selectors) -> Path:
    """`--weights` (a .keras file, a run directory, a shipped tag, or None) -> a verified path.

    With no file, the shipped entry is the tag given, else the one whose `extra` agrees with
    every selector that is not None (e.g. scale=3), the default one first; its sha256 must be
    the card's.
    """
    spec = get(app)
    if weights is not None and (Path(weights).exists() or str(weights) not in spec.tags):
        return _user_weights(Path(weights))
    return _verified(spec, shipped_entry(spec, weights, **selectors))


def shipped_entry(spec: AppSpec, tag: str | None = None, **selectors) -> WeightsEntry:
    """The shipped entry `resolve_weights` picks, its file not looked at (a built one may not exist yet)."""
    app = spec.name
    chosen = {k: v for k, v in selectors.items() if v is not None}
    entries = [spec.entry(str(tag))] if tag is not None else list(spec.weights)
    matching = [e for e in entries if all(e.extra.get(k) == v for k, v in chosen.items())]
    if not matching:
        wanted = ", ".join(f"{k}={v}" for k, v in chosen.items())
        have = "; ".join(f"{e.tag} ({', '.join(f'{k}={e.extra.get(k)}' for k in chosen)})" for e in entries)
        raise BadInput(
            f"{app}: no shipped weights for {wanted} (have: {have or 'none'}); train with "
            f"`zoo train {app}` and pass --weights runs/<run>"
        )
    return next((e for e in matching if e.tag == spec.default_weights), matching[0])


def _user_weights(weights: Path) -> Path:
    if weights.is_dir():
        for name in ("best.keras", "last.keras"):
            if (weights / name).exists():
                return weights / name
        raise BadInput(f"{weights}: run directory has no best.keras or last.keras checkpoint")
    check_input_file(weights)
    if weights.suffix != ".keras":
        raise BadInput(f"{weights}: expected a .keras file, a run directory or a shipped tag")
    return weights


class NotBuilt(BadInput):
    """A weights file that its app builds on first use (`entry.built_by`) and that is not built yet."""

    def __init__(self, spec: AppSpec, entry: WeightsEntry):
        super().__init__(f"{entry.path}: not built yet; `zoo {spec.name} {entry.built_by}` builds it")
        self.path = entry.path


def _verified(spec: AppSpec, entry: WeightsEntry) -> Path:
    """The entry's file, its sha256 checked; a built file is checked by its weights' sha256 when
    it loads (a .keras zip differs at every save), by `harness.load_model`."""
    if entry.built_by:
        if not entry.path.exists():
            raise NotBuilt(spec, entry)
        return entry.path
    if not entry.path.exists():
        raise BadInput(
            f"{entry.path}: shipped weights {spec.name}/{entry.tag} are missing; reinstall, or train "
            f"with `zoo train {spec.name}` and pass --weights"
        )
    if sha256_of(entry.path) != entry.sha256:
        raise BadInput(f"{entry.path}: sha256 differs from the model card's; the file is damaged or was replaced")
    return entry.path


@functools.cache
def _sha256_cached(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def sha256_of(path: Path) -> str:
    """sha256 of a file, hashed once per process while the file is unchanged."""
    stat = Path(path).stat()
    return _sha256_cached(Path(path), stat.st_mtime_ns, stat.st_size)


def app_of_model(model_name: str) -> AppSpec | None:
    """The app whose card claims a keras.Model of this name, if any."""
    return next((s for s in all_specs() if s.owns_model(model_name)), None)
