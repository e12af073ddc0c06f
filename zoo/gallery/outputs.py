"""What the gallery shows of each app: fresh `zoo demo` outputs on bundled inputs, cached.

Each app has a `Showcase`: `inputs` writes the bundled inputs into a folder
(cheap: no Keras) and returns the demo options; `make` runs the demo through
`registry.call` and returns a record for the page (file names relative to
its folder, numbers, text). The record and its files are cached under
`$ZOO_CACHE/gallery/<app>/<key>/`, where the key hashes the input files, the
options, the card's sha256 of every weights file of the app (which the build
checks against the files first) and this module's source, so a rebuild that
changes none of them imports no Keras at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo import registry
from zoo.data.download import cache_dir

RECORD = "record.json"
CROP = 96  # side, in high-resolution pixels, of the upscale crops shown side by side


@dataclass(frozen=True)
class Showcase:
    inputs: Callable[[Path], dict]  # folder -> demo options (JSON); writes the bundled input files there
    make: Callable[[Path, Path, dict], dict]  # (inputs folder, output folder, options) -> record for the page


def _save(rgb: np.ndarray, path: Path) -> str:
    Image.fromarray(rgb).save(path)
    return path.name


# ------------------------------------------------------------------ upscale


def _upscale_inputs(folder: Path) -> dict:
    """A held-out photo (Chelsea the cat) shrunk 2x with Pillow's bicubic, the degradation the model inverts."""
    from skimage import data  # one photo of zoo.data.photos' held-out set, without loading the others

    photo = data.chelsea()
    high = photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]
    low = np.asarray(Image.fromarray(high).resize((high.shape[1] // 2, high.shape[0] // 2), Image.BICUBIC))
    _save(high, folder / "original.png")
    _save(low, folder / "low.png")
    return {"scale": 2}


def _upscale_make(inputs: Path, out: Path, options: dict) -> dict:
    [result] = registry.call("upscale", "demo", inputs=[inputs / "low.png"], output=out / "model.png", force=True,
                             scale=options["scale"])
    high = np.asarray(Image.open(inputs / "original.png"))
    low = Image.open(inputs / "low.png")
    size = (high.shape[1], high.shape[0])
    versions = {"input (pixels enlarged)": np.asarray(low.resize(size, Image.NEAREST)),
                "bicubic": np.asarray(low.resize(size, Image.BICUBIC)),
                "model": np.asarray(Image.open(out / "model.png")), "original": high}
    top, left = high.shape[0] // 2 - CROP // 2, high.shape[1] // 2 - CROP // 2  # the cat's face
    crops = [{"label": label, "file": _save(np.ascontiguousarray(image[top: top + CROP, left: left + CROP]),
                                            out / f"crop_{i}.png")}
             for i, (label, image) in enumerate(versions.items())]
    shutil.copy(inputs / "low.png", out / "low.png")
    return {"picture": "model.png", "scale": result["scale"], "input": "low.png", "output": "model.png",
            "input_size": result["input_size"], "output_size": result["output_size"], "crops": crops}


# ----------------------------------------------------------------- classify

CLASSIFY_EXAMPLES = 4


def _classify_inputs(folder: Path) -> dict:
    """The first Fashion-MNIST test image of a few classes, as the PNG files a user would pass."""
    from zoo.data.labelled_images import fashion_mnist

    test = fashion_mnist("test")
    firsts = [int(np.flatnonzero(test.labels == c)[0]) for c in range(0, 10, 10 // CLASSIFY_EXAMPLES)]
    truth = {}
    for index in firsts[:CLASSIFY_EXAMPLES]:
        name = f"test{index:05d}.png"
        Image.fromarray(test.images[index][:, :, 0]).save(folder / name)
        truth[name] = test.class_names[test.labels[index]]
    return {"truth": truth}


def _classify_make(inputs: Path, out: Path, options: dict) -> dict:
    from zoo.data.images import read_image
    from zoo.vision import explain  # what `zoo explain classify IMAGE --method integrated-gradients` runs

    names = sorted(options["truth"])
    results = registry.call("classify", "demo", inputs=[inputs / n for n in names], output=out, force=True,
                            top=3, explain=True)
    explainable = explain.load("classify")
    examples = []
    for name, result in zip(names, results):
        shutil.copy(inputs / name, out / name)
        heatmap, seen, _ = explain.saliency(explainable, read_image(inputs / name), "integrated-gradients")
        examples.append({"input": name, "gradcam": Path(result["explanation"]).name, "truth": options["truth"][name],
                         "integrated_gradients": _save(explain.overlay(seen, heatmap), out / f"{Path(name).stem}_ig.png"),
                         "top": result["top"]})
    return {"picture": examples[0]["gradcam"], "examples": examples}


# --------------------------------------------------------------- captioning


def _captioning_inputs(folder: Path) -> dict:
    """Generated scenes, one of a seen colour/shape mix and two of the combinations held out of training."""
    from zoo.data.captions import scenes

    references = {}
    for split, count in (("test", 1), ("unseen", 2)):
        images, captions = scenes(split, count=count, image_size=224)
        for i, (image, refs) in enumerate(zip(images, captions)):
            name = f"{split}{i}.png"
            _save(image, folder / name)
            references[name] = refs[0]
    return {"references": references}


def _captioning_make(inputs: Path, out: Path, options: dict) -> dict:
    names = sorted(options["references"])
    results = registry.call("captioning", "demo", inputs=[inputs / n for n in names], output=out, force=True)
    examples = []
    for name, result in zip(names, results):
        shutil.copy(inputs / name, out / name)
        words = result["caption"].split()
        maps = [{"word": w, "file": Path(p).name} for w, p in zip(words, result["attention_maps"])]
        examples.append({"input": name, "caption": result["caption"], "reference": options["references"][name],
                         "beams": result["beams"], "maps": maps})
    return {"picture": examples[0]["input"], "examples": examples}


# -------------------------------------------------------------------- music


def _music_inputs(folder: Path) -> dict:
    return {"bars": 8, "seed": 0, "temperature": 1.0}


def _music_make(inputs: Path, out: Path, options: dict) -> dict:
    [result] = registry.call("music", "demo", output=out / "song.mid", force=True, **options)
    return {"picture": "song.png", "midi": "song.mid", "wav": "song.wav", "piano_roll": "song.png",
            "seconds": result["seconds"], "renderer": result["renderer"], "options": options}


# ----------------------------------------------------------------------- rl


def _rl_inputs(folder: Path) -> dict:
    return {"env": "CartPole-v1", "seed": 0}


def _rl_make(inputs: Path, out: Path, options: dict) -> dict:
    [result] = registry.call("rl", "demo", output=out / "episode.gif", force=True, **options)
    return {"picture": "episode.gif", "gif": "episode.gif", "env": result["env"], "algo": result["algo"],
            "return": result["return"], "steps": result["steps"], "seed": result["seed"]}


# ---------------------------------------------------------------- recommend

RECOMMEND_QUERIES = ({"user": "1"}, {"likes": "Star Wars,Toy Story"}, {"similar_to": "Fargo"})


def _recommend_inputs(folder: Path) -> dict:
    return {"queries": list(RECOMMEND_QUERIES)}


def _recommend_make(inputs: Path, out: Path, options: dict) -> dict:
    lists = []
    for query in options["queries"]:
        rows = registry.call("recommend", "demo", top=5, **query)
        flag, value = next(iter(query.items()))
        lists.append({"command": f"zoo demo recommend --{flag.replace('_', '-')} '{value}' --top 5",
                      "lines": [r["text"] for r in rows]})
    return {"lists": lists}


# -------------------------------------------------------------------- faces


def _faces_inputs(folder: Path) -> dict:
    """Two of the photos of known people that ship in wheels (an astronaut, Grace Hopper)."""
    from zoo.data.faces import packaged_photos

    photos = packaged_photos()
    for name in ("astronaut", "grace_hopper"):
        _save(photos[name], folder / f"{name}.png")
    return {"photos": ["astronaut.png", "grace_hopper.png"]}


def _faces_make(inputs: Path, out: Path, options: dict) -> dict:
    examples = []
    for name in options["photos"]:
        target = out / f"{Path(name).stem}_faces.png"
        results = registry.call("faces", "demo", inputs=[inputs / name], output=target, force=True)
        found = [f"{r['name']} at {r['box']}" for r in results if r["box"] is not None]
        examples.append({"output": target.name, "found": found or ["no face found"]})
    return {"picture": examples[0]["output"], "examples": examples}


SHOWCASES = {
    "upscale": Showcase(_upscale_inputs, _upscale_make),
    "classify": Showcase(_classify_inputs, _classify_make),
    "captioning": Showcase(_captioning_inputs, _captioning_make),
    "music": Showcase(_music_inputs, _music_make),
    "rl": Showcase(_rl_inputs, _rl_make),
    "recommend": Showcase(_recommend_inputs, _recommend_make),
    "faces": Showcase(_faces_inputs, _faces_make),
}


# -------------------------------------------------------------------- cache


def default_cache() -> Path:
    return cache_dir() / "gallery"


def cache_key(app: str, inputs: Path, options: dict) -> str:
    """sha256 of everything the outputs depend on: inputs, options, weights, this module's code."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(json.dumps([app, options], sort_keys=True).encode())
    for entry in registry.get(app).weights:
        digest.update(entry.sha256.encode())
    for path in sorted(inputs.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _one_builder(app_folder: Path):
    """One process at a time makes an app's outputs; another waits, then finds them made."""
    app_folder.mkdir(parents=True, exist_ok=True)
    with open(app_folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def showcase(app: str, cache: Path) -> tuple[Path, dict, bool]:
    """(folder, record, fresh): the app's cached outputs, made first if the cache lacks them."""
    with _one_builder(cache / app), tempfile.TemporaryDirectory(dir=cache / app) as scratch:
        inputs = Path(scratch) / "inputs"
        inputs.mkdir()
        options = SHOWCASES[app].inputs(inputs)
        folder = cache / app / cache_key(app, inputs, options)
        if (folder / RECORD).exists():
            return folder, json.loads((folder / RECORD).read_text()), False
        made = Path(scratch) / "outputs"
        made.mkdir()
        record = SHOWCASES[app].make(inputs, made, options)
        (made / RECORD).write_text(json.dumps(record, indent=2))
        shutil.rmtree(folder, ignore_errors=True)  # a folder without its record is an interrupted one
        made.rename(folder)  # the record arrives with its files, or not at all
    return folder, record, True
