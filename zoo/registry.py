"""App specs as data: what `zoo list` and `zoo info` show, without importing Keras.

Every app ships one model card, `zoo/weights/<app>.json`. Its `app` section is
the spec (name, kind, summary, module, datasets, metrics, the app's own CLI
options); its `weights` section lists the shipped `.keras` files with their
measured metrics. Reading JSON is all the registry does; the app module, which
imports Keras and TensorFlow, is imported only by `load_module`, when the app
is trained, evaluated or demoed.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from zoo.errors import BadInput

WEIGHTS_DIR = Path(__file__).parent / "weights"
ACTIONS = ("train", "evaluate", "demo")


@dataclass(frozen=True)
class Option:
    """One app-specific CLI option, declared as data in the model card."""

    name: str  # python keyword the app function receives, e.g. "top_k"
    type: str = "str"  # str | int | float | path | flag | choice
    default: object = None
    help: str = ""
    choices: tuple = ()
    short: str | None = None  # e.g. "-k"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class AppSpec:
    name: str
    kind: str
    summary: str
    module: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    presets: tuple[str, ...] = ("quick", "full")
    demo_inputs: str = "files"  # files: one or more INPUT paths; none: no positional input
    options: dict[str, tuple[Option, ...]] = field(default_factory=dict)
    weights: tuple[dict, ...] = ()
    card_path: Path | None = None

    def weights_entry(self, tag: str | None = None) -> dict:
        """The card entry of shipped weights `tag` (the first one when None)."""
        if not self.weights:
            raise BadInput(f"{self.name}: no shipped weights yet; train with `zoo train {self.name}` and pass --weights")
        if tag is None:
            return self.weights[0]
        for entry in self.weights:
            if entry["tag"] == tag:
                return entry
        tags = ", ".join(e["tag"] for e in self.weights)
        raise BadInput(f"{self.name}: no shipped weights tagged {tag!r} (have: {tags})")

    def weights_path(self, tag: str | None = None) -> Path:
        return WEIGHTS_DIR / self.weights_entry(tag)["file"]


def _spec_from_card(path: Path) -> AppSpec:
    card = json.loads(path.read_text())
    app = card["app"]
    options = {
        action: tuple(Option(**{**o, "choices": tuple(o.get("choices", ()))}) for o in app.get("options", {}).get(action, ()))
        for action in ACTIONS
    }
    return AppSpec(
        name=app["name"],
        kind=app["kind"],
        summary=app["summary"],
        module=app["module"],
        datasets=tuple(app.get("datasets", ())),
        metrics=tuple(app.get("metrics", ())),
        presets=tuple(app.get("presets", ("quick", "full"))),
        demo_inputs=app.get("demo_inputs", "files"),
        options=options,
        weights=tuple(card.get("weights", ())),
        card_path=path,
    )


@functools.cache
def all_specs() -> tuple[AppSpec, ...]:
    specs = [_spec_from_card(p) for p in sorted(WEIGHTS_DIR.glob("*.json"))]
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
    """Import the app's module: the moment Keras and TensorFlow get imported."""
    return importlib.import_module(spec.module)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
