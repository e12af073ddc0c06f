"""One Python face for every app: `zoo.load(APP)` gives a predictor, calling it gives a typed result.

    import zoo
    zoo.apps()                                  # the cards, typed (registry.AppSpec)
    up = zoo.load("upscale", scale=4)           # the model loads once
    result = up("photo.jpg")                    # a path, a PIL image or an HxWx3 uint8 array
    results = up(["a.jpg", "b.png"])            # a list in, a list out, batched inside
    result.image                                # rich values: PIL images, arrays, audio, tables
    result.to_dict()                            # exactly what `zoo demo upscale photo.jpg --json` prints
    result.save("photo_x4.png")                 # what `zoo demo` writes

`zoo.load`'s keyword arguments are the options of `zoo demo APP`, with the same names, the
card's defaults and the same checks (`AppSpec.typed`), so a bad value is the same one-line
`BadInput` in Python as on the command line. Options that choose the model (`Option.at_load`:
`scale`, `corpus`, `env`, ...) are fixed when it loads; the others set defaults that a call
may override (`up(photo, tile=256)`). An app's own commands are methods of the same name
(`zoo.load("faces").verify(a, b)`).

Every surface stands on this module and knows no app by name: `zoo demo` (`demo` below:
parse, call, write, print), `zoo serve` and the gallery (outputs drawn by the result fields'
`show` kind), the notebooks and `zoo export`. Importing it is cheap: Keras is imported with
the app's module, by `load`. Anchors: Hugging Face's `pipeline(...)(input)` returning plain
records, timm's `create_model`, keras-hub's `from_preset`, deepface's `verify`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from zoo import registry
from zoo.errors import BadInput, ZooError
from zoo.files import check_output_path, output_for

# How a surface (zoo serve, the gallery, a notebook) shows a result field:
SHOW_KINDS = (
    "image",  # a PIL image or HxW(x3) uint8 array
    "images",  # a list of (image, caption) pairs
    "labels",  # {label: probability}
    "audio",  # (sample_rate, samples) float32 or int16
    "text",  # a string
    "table",  # a list of flat dicts, one per row
    "animation",  # (fps, frames) or a list of frames (at DEFAULT_FPS), each HxWx3 uint8
)
DEFAULT_FPS = 30
CLI_ONLY = ("output", "force")  # demo options that say where files go: result.save in Python


def shown(kind: str, *, rich: bool = False, **kwargs) -> dataclasses.Field:
    """A result field that surfaces display as `kind` (one of SHOW_KINDS).

    A rich field (an image, an array, audio samples) stays out of `to_dict()`; a plain one
    (text, labels, a table) is in it.
    """
    if kind not in SHOW_KINDS:
        raise ValueError(f"show kind {kind!r} is not one of {SHOW_KINDS}")
    kwargs.setdefault("default", None)
    return field(metadata={"show": kind, "rich": rich}, repr=not rich, compare=not rich, **kwargs)


def shown_fields(result: Result) -> list[tuple[str, str, object]]:
    """(name, show kind, value) of every field a surface displays and the result holds, in declaration order."""
    return [
        (name, kind, getattr(result, name))
        for name, kind in shown_kinds(type(result))
        if getattr(result, name) is not None
    ]


def result_type(predictor: type[Predictor]) -> type[Result]:
    """The Result class a predictor returns, read from `predict`'s return annotation (`-> list[X]` or
    `-> X`), so a surface can lay out its outputs before any call."""
    try:
        returned = typing.get_type_hints(predictor.predict).get("return")
    except NameError:  # an annotation naming something the module does not define at run time
        returned = None
    returned = typing.get_args(returned)[0] if typing.get_origin(returned) is list else returned
    if not (isinstance(returned, type) and issubclass(returned, Result)):
        raise ZooError(
            f"{predictor.__module__}.Predictor.predict: annotate its return type (-> list[X] or -> X, "
            f"X an api.Result), so surfaces can lay out its outputs"
        )
    return returned


def shown_kinds(result: type[Result]) -> list[tuple[str, str]]:
    """(name, show kind) of every field of a Result class that surfaces display, in declaration order."""
    return [(f.name, f.metadata["show"]) for f in dataclasses.fields(result) if "show" in f.metadata]


def display(kind: str, value):
    """A shown value in the one form surfaces draw, whatever form the app stored it in: image -> PIL
    image; images -> [(PIL image, caption)]; labels -> {label: float}; audio -> (rate, int16 samples);
    text -> str; table -> [{column: str, number, bool or None}] (lists joined by commas); animation ->
    (fps, [PIL image])."""
    import numpy as np
    from PIL import Image

    def picture(pixels):
        return pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels, np.uint8))

    if kind == "image":
        return picture(value)
    if kind == "images":
        return [(picture(image), str(caption)) for image, caption in value]
    if kind == "labels":
        return {str(label): float(score) for label, score in value.items()}
    if kind == "audio":
        rate, samples = value
        samples = np.asarray(samples)
        if samples.dtype != np.int16:  # float in [-1, 1]
            samples = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        return int(rate), samples
    if kind == "text":
        return str(value)
    if kind == "table":

        def cell(plain):
            return ", ".join(map(str, plain)) if isinstance(plain, list) else plain

        return [{str(column): cell(_plain(v)) for column, v in row.items()} for row in value]
    if kind == "animation":
        fps, frames = value if isinstance(value, tuple) and np.isscalar(value[0]) else (DEFAULT_FPS, value)
        return float(fps), [picture(frame) for frame in frames]
    raise ValueError(f"show kind {kind!r} is not one of {SHOW_KINDS}")


def _plain(value):
    """A JSON value: paths as strings, NumPy scalars as Python numbers, tuples as lists, NaN as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Result:
    """Base of every app's result: a dataclass of plain fields (JSON) and rich ones (`shown(..., rich=True)`)."""

    output: str | None = field(default=None, kw_only=True)  # where `save` wrote the result's file(s)

    @property
    def text(self) -> str:
        """One line for the terminal."""
        return "  ".join(f"{k}: {v}" for k, v in self.to_dict(text=False).items())

    def to_dict(self, text: bool = True) -> dict:
        """The plain fields as JSON values, `output` and the terminal line last: `zoo demo --json`'s record."""
        plain = {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not f.metadata.get("rich") and f.name != "output"
        }
        return {**plain, "output": self.output, **({"text": self.text} if text else {})}

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the result's file(s) atomically to `path`; sets `output`."""
        raise BadInput(f"{type(self).__name__}: nothing to save")


class Predictor:
    """Base of every app's predictor: the loaded model and the demo's options, checked.

    An app subclasses it as `Predictor` in its module: `__init__` loads the model (after
    `super().__init__`), `predict(inputs, **options)` returns one result per input, and
    `output_name(source)` says what `zoo demo` writes (None: nothing).
    """

    def __init__(self, spec: registry.AppSpec, options: dict):
        self.spec = spec
        self.weights = options.get("weights")
        self.options = {k: v for k, v in options.items() if k != "weights"}  # typed; the call defaults

    @property
    def takes_inputs(self) -> bool:
        return self.spec.declared("demo").takes_inputs

    def __repr__(self) -> str:
        chosen = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if self._option(k).at_load)
        return f"zoo.load({self.spec.name!r}{', ' + chosen if chosen else ''})"

    def _option(self, name: str) -> registry.Option:
        return next(o for o in self.spec.parameters("demo") if o.name == name)

    def call_options(self, overrides: dict) -> dict:
        """The loaded options with a call's overrides, typed; an option that chose the model cannot change."""
        misplaced = sorted(set(overrides) & set(CLI_ONLY))
        if misplaced:
            raise BadInput(f"{self.spec.name}: {misplaced[0]} is for `zoo demo`; in Python, result.save(path)")
        typed = self.spec.typed("demo", overrides, fill_defaults=False)
        for name, value in typed.items():
            if self._option(name).at_load and value != self.options.get(name):
                raise BadInput(
                    f"{self.spec.name}: {name} chooses the model; load another: "
                    f"zoo.load({self.spec.name!r}, {name}={value!r})"
                )
        return {**self.options, **typed}

    def __call__(self, inputs=None, /, **options):
        """The app's demo work on its natural input; a list of inputs gives a list of results."""
        options = self.call_options(options)
        if not self.takes_inputs:
            return self.predict(inputs, **options)
        if inputs is None:
            raise BadInput(f"{self.spec.name}: give an input (a path, a PIL image or an array), or a list of them")
        many = isinstance(inputs, (list, tuple))
        results = self.predict(list(inputs) if many else [inputs], **options)
        return results if many else results[0]

    def predict(self, inputs, **options):
        raise NotImplementedError

    def exportables(self) -> list:
        """The graphs `zoo export` writes (zoo.export.Exportable); an app with nothing to export says why."""
        raise BadInput(f"{self.spec.name}: has no exportable graph")

    def export(
        self,
        format: str,
        output: str | Path,
        quantize: str | None = None,
        calibration: str | Path | None = None,
        force: bool = False,
    ) -> dict:
        """`zoo export`: the model as a SavedModel, ONNX or LiteRT file, re-measured in its runtime (zoo.export)."""
        from zoo import export

        return export.export(self, format, output, quantize, calibration, force)

    def output_name(self, source: Path | None) -> str | None:
        """The file `zoo demo` writes for `source` when -o is not given; None if it writes none."""
        return None

    def target(self, source: Path | None, output: Path | None, many: bool, force: bool) -> Path | None:
        """Where `zoo demo` writes the result for `source`, checked before any work (None: nothing)."""
        name = self.output_name(source)
        if name is None:
            if output is not None:
                raise BadInput(f"-o {output}: `zoo demo {self.spec.name}` writes no file with these options")
            return None
        return check_output_path(output_for(source, output, name, many), force)


def apps(pattern: str = "*") -> list[registry.AppSpec]:
    """The apps' cards, typed, filtered by a wildcard over names and kinds (`zoo.apps("vis*")`)."""
    return registry.find(pattern)


def load(app: str, weights: str | Path | None = None, **options) -> Predictor:
    """The app's predictor, its model loaded once: `weights` is a tag, a .keras file, a run
    directory or None (the card's default); `options` are `zoo demo APP`'s."""
    spec = registry.get(app)
    misplaced = sorted(set(options) & set(CLI_ONLY + ("inputs",)))
    if misplaced:
        raise BadInput(f"{app}: {misplaced[0]} is for `zoo demo`; in Python, call the predictor and result.save(path)")
    typed = spec.typed("demo", {**options, "weights": None if weights is None else str(weights)})
    predictor = registry.load_module(spec).Predictor
    return predictor(spec, {k: v for k, v in typed.items() if k not in CLI_ONLY})


def demo(
    spec: registry.AppSpec,
    *,
    output: Path | None = None,
    force: bool = False,
    inputs: list[Path] | None = None,
    **options,
) -> list[dict]:
    """`zoo demo APP`: load, check every output, call, write, and return the `--json` records."""
    predictor = load(spec.name, options.pop("weights", None), **options)
    sources = list(inputs) if predictor.takes_inputs else [None]
    targets = [predictor.target(source, output, len(sources) > 1, force) for source in sources]
    results = predictor(sources) if predictor.takes_inputs else predictor()
    results = results if isinstance(results, list) else [results]
    for result, target in zip(results, targets):
        if target is not None:
            result.save(target, force)
    return [result.to_dict() for result in results]
