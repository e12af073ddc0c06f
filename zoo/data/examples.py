"""Bundled demo inputs, named on the model cards: what the gallery, the contract test and the
notebooks run each app on, with no per-app code in any of them.

A card's `app.examples` is a list of demo calls, each `{"inputs": [SOURCE, ...], "options": {...}}`.
A SOURCE names real data that ships offline, written as a file the way a user would pass it:

    photo:NAME            a photo from the wheels (zoo.data.photos: chelsea, coffee, astronaut, ...)
    shrunk:NAME:S         that photo shrunk S times with Pillow's bicubic (the degradation upscale inverts)
    fashion-mnist:CLASS   the first Fashion-MNIST test image of class index CLASS (Debian's package)
    scene:SPLIT:INDEX     a generated captioning scene (zoo.data.captions; SPLIT test or unseen)
    face:NAME             a photo of a known person (zoo.data.faces.packaged_photos)
    asterisk:WORD         Debian's asterisk prompt of a digit, 0-9 or oh (a WAV, copied as it is)

Cheap: no Keras. Each writer imports only the data module it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.errors import ZooError


def _photo(name: str) -> tuple[np.ndarray, str]:
    from zoo.data.photos import photo

    return photo(name), name


def _shrunk(name: str, scale: str) -> tuple[np.ndarray, str]:
    photo, _ = _photo(name)
    factor = int(scale)
    high = photo[: photo.shape[0] // factor * factor, : photo.shape[1] // factor * factor]
    low = Image.fromarray(high).resize((high.shape[1] // factor, high.shape[0] // factor), Image.BICUBIC)
    return np.asarray(low), f"{name}_low{factor}"


def _fashion_mnist(class_index: str) -> tuple[np.ndarray, str]:
    from zoo.data.labelled_images import fashion_mnist

    test = fashion_mnist("test")
    index = int(np.flatnonzero(test.labels == int(class_index))[0])
    return test.images[index][:, :, 0], f"fashion_test{index:05d}"


def _scene(split: str, index: str) -> tuple[np.ndarray, str]:
    from zoo.data.captions import scenes

    images, _ = scenes(split, count=int(index) + 1, image_size=224)
    return images[int(index)], f"scene_{split}{index}"


def _face(name: str) -> tuple[np.ndarray, str]:
    from zoo.data.faces import packaged_photos

    return packaged_photos()[name], name


def _asterisk(word: str) -> tuple[bytes, str]:
    from zoo.data.audio import ASTERISK_DIGITS

    return (ASTERISK_DIGITS / f"{word}.wav").read_bytes(), f"asterisk_{word}.wav"


SOURCES: dict[str, Callable[..., tuple[np.ndarray | bytes, str]]] = {
    "photo": _photo,
    "shrunk": _shrunk,
    "fashion-mnist": _fashion_mnist,
    "scene": _scene,
    "face": _face,
    "asterisk": _asterisk,
}


def write_input(source: str, folder: Path) -> Path:
    """Write one SOURCE in `folder` (pixels as a PNG, a file's bytes as they are); its path."""
    kind, *arguments = source.split(":")
    if kind not in SOURCES:
        raise ZooError(f"example input {source!r}: unknown kind {kind!r} (have: {', '.join(SOURCES)})")
    pixels, stem = SOURCES[kind](*arguments)
    if isinstance(pixels, bytes):
        path = Path(folder) / stem
        path.write_bytes(pixels)
        return path
    path = Path(folder) / f"{stem}.png"
    Image.fromarray(pixels).save(path)
    return path


def write(example: dict, folder: Path) -> tuple[list[Path], dict]:
    """(input files written in `folder`, demo options) of one of a card's examples."""
    return [write_input(s, folder) for s in example.get("inputs", ())], dict(example.get("options", {}))
