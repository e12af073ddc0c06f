"""What the gallery shows of each app: its predictor's results on the card's examples, cached.

Nothing here names an app. For each of the card's examples (`app.examples`: bundled inputs and
demo options), `showcase` writes the inputs (`zoo.data.examples.write`), loads the predictor as
a Python user does (`zoo.load(app, **options)`) and calls it; each result's shown fields
(`api.shown_kinds`) are written by show kind, as files (image: PNG, images: PNGs, audio: WAV,
animation: GIF) or as data (labels, text, table), into the record the page is drawn from.

The record and its files are cached under `$ZOO_CACHE/gallery/<app>/<key>/`, where the key
hashes the card's examples, the input files written from them, the card's sha256 of every
weights file of the app (which the build checks against the files first), and the source of
this module, of the app's module and of every zoo module it imports, transitively: a change to
the app's drawing code makes fresh outputs. A rebuild that changes none of them imports no Keras.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import shlex
import shutil
import tempfile
import wave
from pathlib import Path

from PIL import Image

from zoo import api, registry
from zoo.data import examples
from zoo.data.download import cache_dir
from zoo.data.images import IMAGE_SUFFIXES
from zoo.data.music import write_wav  # 16-bit samples as a WAV file (NumPy only)

RECORD = "record.json"
PACKAGE = Path(__file__).resolve().parents[1]  # zoo/
NOT_CALLED = {"weights", *api.CLI_ONLY}  # chosen at load, or where `zoo demo` writes
SMALL = 128  # pictures under this many pixels a side are shown enlarged, pixels visible


# ------------------------------------------------------------- shown values


def write_animation(shown: tuple[float, list], path: Path) -> Path:
    """An animation (`api.display`'s (fps, frames)) as a looping GIF."""
    fps, frames = shown
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path


def field_record(name: str, kind: str, value, folder: Path, stem: str) -> dict:
    """One shown field for the page: its files written in `folder` (named from `stem`), or its data."""
    shown = api.display(kind, value)
    record = {"name": name.replace("_", " "), "kind": kind}
    if kind == "image":
        shown.save(folder / f"{stem}.png")
        return {**record, "file": f"{stem}.png", "small": max(shown.size) < SMALL}
    if kind == "images":
        files = []
        for i, (image, caption) in enumerate(shown):
            image.save(folder / f"{stem}_{i}.png")
            files.append({"file": f"{stem}_{i}.png", "caption": caption, "small": max(image.size) < SMALL})
        return {**record, "files": files}
    if kind == "audio":
        rate, samples = shown
        write_wav(folder / f"{stem}.wav", rate, samples)
        return {**record, "file": f"{stem}.wav", "seconds": round(len(samples) / rate, 2)}
    if kind == "animation":
        write_animation(shown, folder / f"{stem}.gif")
        return {**record, "file": f"{stem}.gif", "small": max(shown[1][0].size) < SMALL}
    if kind == "labels":
        return {**record, "labels": sorted(shown.items(), key=lambda item: -item[1])}
    if kind == "table":
        headers = list(dict.fromkeys(key for row in shown for key in row))
        return {**record, "headers": headers, "rows": [[row.get(key, "") for key in headers] for row in shown]}
    return {**record, "text": shown}


def input_record(path: Path) -> dict:
    """How the page shows an input file: a picture, a sound, or a link."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return {"kind": "image", "small": max(Image.open(path).size) < SMALL}
    if path.suffix.lower() == ".wav":
        with wave.open(str(path)) as sound:
            return {"kind": "audio", "seconds": round(sound.getnframes() / sound.getframerate(), 2)}
    return {"kind": "file"}


def picture(record: dict) -> str | None:
    """The file the index shows for an app: its first output image or animation, else its first input
    picture, else the first picture of a row of them."""
    results = [result for example in record["examples"] for result in example["results"]]
    fields = [f for result in results for f in result["fields"]]
    pictures = [f["file"] for f in fields if f["kind"] in ("image", "animation")]
    pictures += [r["input"]["file"] for r in results if r["input"] and r["input"]["kind"] == "image"]
    pictures += [f["files"][0]["file"] for f in fields if f["kind"] == "images" and f["files"]]
    return pictures[0] if pictures else None


# ----------------------------------------------------------------- examples


def command(app: str, inputs: list[str], options: dict) -> str:
    """The `zoo demo` command line of an example, as a user would type it."""
    words = ["zoo", "demo", app, *inputs]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        words += [] if value is False else [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


def write_inputs(spec: registry.AppSpec, inputs: Path) -> list[tuple[list[Path], dict]]:
    """(input files, demo options) of each of the card's examples, its files in a folder of its own (no Keras)."""
    written = []
    for i, example in enumerate(spec.examples):
        (inputs / str(i)).mkdir(parents=True)
        written.append(examples.write(example, inputs / str(i)))
    return written


def make(spec: registry.AppSpec, written: list[tuple[list[Path], dict]], out: Path) -> dict:
    """Run every example through the app's predictor, as a Python user would; the record for the page."""
    at_load = {o.name for o in spec.parameters("demo") if o.at_load}
    loaded: dict[str, api.Predictor] = {}  # one predictor per choice of load-time options
    made = []
    for i, (files, options) in enumerate(written):
        key = json.dumps({k: v for k, v in options.items() if k in at_load}, sort_keys=True)
        if key not in loaded:
            loaded[key] = api.load(spec.name, **options)
        predictor = loaded[key]
        # Every per-call option given, the card's default where the example names none: a reused
        # predictor keeps the options it was loaded with as its call defaults.
        call = {k: v for k, v in spec.typed("demo", options).items() if k not in at_load | NOT_CALLED}
        results = predictor([str(f) for f in files], **call) if predictor.takes_inputs else [predictor(**call)]
        shown_inputs = []
        for file in files:
            shutil.copy(file, out / f"ex{i}_{file.name}")
            shown_inputs.append({"file": f"ex{i}_{file.name}", "name": file.name, **input_record(file)})
        rows = []
        for j, result in enumerate(results):
            fields = [
                field_record(name, kind, value, out, f"ex{i}_{j}_{name}")
                for name, kind, value in api.shown_fields(result)
            ]
            text = result.text.replace(f"{files[j].parent}/", "") if files else result.text  # not the scratch path
            rows.append({"input": shown_inputs[j] if shown_inputs else None, "text": text, "fields": fields})
        made.append({"command": command(spec.name, [f.name for f in files], options), "results": rows})
    record = {"examples": made}
    return {**record, "picture": picture(record)}


# -------------------------------------------------------------------- cache


def default_cache() -> Path:
    return cache_dir() / "gallery"


def _module_file(module: str) -> Path | None:
    """The file of a zoo module, found by path (finding it by import would import its package, maybe Keras)."""
    parts = module.split(".")
    if parts[0] != "zoo":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(modules: list[str]) -> list[str]:
    """The modules and every package above them, whose `__init__` runs when they are imported."""
    return [".".join(name.split(".")[:n]) for name in modules for n in range(1, name.count(".") + 2)]


def module_path(module: str) -> Path:
    """The file of a module, found without importing it (an app module imports Keras)."""
    return Path(importlib.util.find_spec(module).origin)


def module_files(module: str) -> list[Path]:
    """The module's file; for a package, its `__init__.py` and then its other modules, which an app
    package may import only when needed (upscale's Keras half): all of them are the app's code."""
    path = module_path(module)
    if path.name != "__init__.py":
        return [path]
    return [path] + sorted(p for p in path.parent.glob("*.py") if p.name != "__init__.py")


def source_files(module: str) -> list[Path]:
    """The module's file and those of every zoo module it imports, transitively (read, not imported)."""
    found, todo = set(), [file for file in map(_module_file, _with_packages([module])) if file is not None]
    todo += module_files(module)  # an app package's modules, imported statically or not
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        parts = ("zoo",) + path.relative_to(PACKAGE).parent.parts  # the package `from . import x` means
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                above = parts[: len(parts) - node.level + 1] if node.level else ()
                base = ".".join(above + ((node.module,) if node.module else ()))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            todo += [file for file in map(_module_file, _with_packages(names)) if file is not None]
    return sorted(found)


def cache_key(spec: registry.AppSpec, inputs: Path) -> str:
    """sha256 of everything the outputs depend on: examples, inputs, weights, code."""
    digest = hashlib.sha256(json.dumps([spec.name, spec.examples], sort_keys=True).encode())
    for path in [Path(__file__).resolve()] + source_files(spec.module):
        digest.update(path.read_bytes())
    for entry in spec.weights:
        digest.update(entry.sha256.encode())
    for path in sorted(p for p in inputs.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(inputs)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _one_builder(app_folder: Path):
    """One process at a time makes an app's outputs; another waits, then finds them made."""
    app_folder.mkdir(parents=True, exist_ok=True)
    with open(app_folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def showcase(spec: registry.AppSpec, cache: Path) -> tuple[Path, dict, bool]:
    """(folder, record, fresh): the app's cached outputs, made first if the cache lacks them."""
    with _one_builder(cache / spec.name), tempfile.TemporaryDirectory(dir=cache / spec.name) as scratch:
        inputs = Path(scratch) / "inputs"
        written = write_inputs(spec, inputs)
        folder = cache / spec.name / cache_key(spec, inputs)
        if (folder / RECORD).exists():
            return folder, json.loads((folder / RECORD).read_text()), False
        made = Path(scratch) / "outputs"
        made.mkdir()
        record = make(spec, written, made)
        (made / RECORD).write_text(json.dumps(record, indent=2))
        shutil.rmtree(folder, ignore_errors=True)  # a folder without its record is an interrupted one
        made.rename(folder)  # the record arrives with its files, or not at all
    return folder, record, True
