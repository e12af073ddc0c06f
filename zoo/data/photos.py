"""Natural photos for super-resolution and demos.

Offline: 16 real photos that ship inside the scikit-image, scikit-learn and
matplotlib wheels, split by photo into 12 for training and 4 held out (a cat,
coffee, a temple roof, a portrait: fur, gloss, fine lines, skin). With
internet: DIV2K and BSDS500 through the catalog's hash-checked downloads.
Any folder of photos works too (`--data DIR`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import catalog
from zoo.data.images import read_folder
from zoo.errors import BadInput, warn

HELD_OUT = ("chelsea", "coffee", "china", "grace_hopper")


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg")


def _matplotlib(name: str) -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data(f"{name}.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


_SOURCES = {
    **{
        n: _skimage
        for n in (
            "astronaut",
            "rocket",
            "hubble_deep_field",
            "retina",
            "immunohistochemistry",
            "stereo_motorcycle",
            "camera",
            "brick",
            "grass",
            "gravel",
            "moon",
            "chelsea",
            "coffee",
        )
    },
    "china": _sklearn,
    "flower": _sklearn,
    "grace_hopper": _matplotlib,
}


def to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]


def sample_photos(split: str = "train") -> dict[str, np.ndarray]:
    """The offline photos of one split ("train", "test" or "all") as RGB uint8 arrays."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all, not {split!r}")
    names = [n for n in _SOURCES if split == "all" or (n in HELD_OUT) == (split == "test")]
    return {name: photo(name) for name in names}


def photo(name: str) -> np.ndarray:
    """One offline photo by name, RGB uint8."""
    if name not in _SOURCES:
        raise BadInput(f"no offline photo named {name!r} (have: {', '.join(_SOURCES)})")
    return to_rgb(_SOURCES[name](name))


def folder_photos(folder: Path, min_side: int = 1) -> dict[str, np.ndarray]:
    """Every readable photo in a folder; unreadable files are skipped with one warning."""
    photos, skipped = {}, []
    for path, image in read_folder(folder, min_side=min_side):
        if isinstance(image, BadInput):
            skipped.append(path.name)
        else:
            photos[str(path.relative_to(folder))] = image
    if skipped:
        warn(f"{folder}: skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:5])}")
    if not photos:
        raise BadInput(f"{folder}: no readable photos ({len(skipped)} image files, none readable)")
    return photos


def div2k(split: str = "train") -> dict[str, np.ndarray]:
    """DIV2K high-resolution photos (downloaded once, hash-checked)."""
    return folder_photos(Path(catalog.fetch(f"div2k-{'train' if split == 'train' else 'valid'}")))


def bsds500(split: str = "train") -> dict[str, np.ndarray]:
    """BSDS500 photos of one split: train, val or test."""
    root = Path(catalog.fetch("bsds500"))
    return folder_photos(root / "BSR" / "BSDS500" / "data" / "images" / split)
