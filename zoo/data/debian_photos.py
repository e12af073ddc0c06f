"""Real photographs from Debian's wallpaper packages: training photos and a texture test set.

Only the files that are photographs are listed (the packages also hold drawings and renders),
each with its package and licence, so a model card can name every training source. Two
packages are never read here: `mate-backgrounds` and `opencv-doc` are kept for independent
evaluation.

Every photo is read at a working resolution: shrunk (Lanczos, antialiased) so that its longer
side is at most `WORKING_SIDE`, which removes most JPEG artefacts of the 4-6K originals and
keeps a training set of ~30 photos in a few hundred MB.

The texture set is four photos of the lomiri packages held out of training (leaves, bark and
feathers, a mossy stream, a mottled surface); from each, the 480x480 window with the most
gradient energy is kept, so the set measures fine texture rather than sky. `apt-get install
lomiri-wallpapers-16.04 lomiri-wallpapers-20.04` provides it (the Makefile does).

Cheap to import: Pillow and NumPy only.
"""

from __future__ import annotations

import dataclasses
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.errors import BadInput, warn

WORKING_SIDE = 2048
TEXTURE_WINDOW = 480  # divisible by 2, 3 and 4
RESERVED_FOR_EVALUATION = ("mate-backgrounds", "opencv-doc")  # never read by this module


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    licence: str
    folder: str
    photos: tuple[str, ...]  # file names (lomiri) or wallpaper names (plasma: NAME/contents/images/*)


LOMIRI_16 = Package(
    "lomiri-wallpapers-16.04",
    "CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 (per file, debian/copyright)",
    "/usr/share/backgrounds",
    (
        "Bridge_by_Sander_Klootwijk.jpg",
        "Dragonfly_by_Bolly.jpg",
        "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg",
        "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg",
        "analogpattern_by_Peter_Nerlich.jpg",
        "free_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg",
        "sunset_by_Aitzol_Berasategi.jpg",
    ),
)
LOMIRI_20 = Package(
    "lomiri-wallpapers-20.04", "CC-BY-SA-3.0", "/usr/share/backgrounds", ("Kleiber_by_Lukas_Baubkus.jpg",)
)
PLASMA = Package(
    "plasma-workspace-wallpapers",
    "LGPL-3 (per wallpaper metadata; package GPL-2+)",
    "/usr/share/wallpapers",
    (
        "BytheWater",
        "ColdRipple",
        "ColorfulCups",
        "DarkestHour",
        "EveningGlow",
        "FallenLeaf",
        "Grey",
        "Kite",
        "OneStandsOut",
        "Path",
        "summer_1am",
    ),
)
TRAINING_PACKAGES = (LOMIRI_16, PLASMA)

# Held out of training: fine texture, what upscaling finds hardest.
TEXTURE = (
    "Dragonfly_by_Bolly.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg",
    "life_by_Aitzol_Berasategi.jpg",
    "analogpattern_by_Peter_Nerlich.jpg",
)


def _path(package: Package, photo: str) -> Path:
    if package is not PLASMA:
        return Path(package.folder) / photo
    images = sorted(
        (Path(package.folder) / photo / "contents" / "images").glob("*.jpg"), key=lambda p: p.stat().st_size
    )
    return images[-1] if images else Path(package.folder) / photo  # the largest size the package holds


def _short_name(photo: str) -> str:
    return Path(photo).stem


@cache
def version(package: str) -> str | None:
    """The installed version of a Debian package, or None."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status} ${Version}", package], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    status = done.stdout.split()
    return status[-1] if done.returncode == 0 and "installed" in status[:-1] else None


def read(path: Path) -> np.ndarray:
    """A photo at the working resolution, RGB uint8."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.LANCZOS)
        return np.asarray(image)


def training_files(package: Package) -> list[str]:
    """The package's photographs that training may read: all but the texture test set's."""
    return [p for p in package.photos if p not in TEXTURE]


def training_photos() -> tuple[dict[str, np.ndarray], list[dict]]:
    """(photos by name, sources) of every installed package, the texture set left out.

    A missing package is skipped with one warning, so a training run still works anywhere;
    the sources record says what it actually used.
    """
    photos, sources, missing = {}, [], []
    for package in TRAINING_PACKAGES:
        if version(package.name) is None:
            missing.append(package.name)
            continue
        names = training_files(package)
        for photo in names:
            photos[_short_name(photo)] = read(_path(package, photo))
        sources.append(
            {"package": package.name, "version": version(package.name), "files": len(names), "licence": package.licence}
        )
    if missing:
        warn(
            f"training without the photos of {', '.join(missing)} (not installed; apt-get install {' '.join(missing)})"
        )
    return photos, sources


def most_detailed_window(rgb: np.ndarray, side: int = TEXTURE_WINDOW) -> np.ndarray:
    """The side x side window, on a half-window grid, with the largest mean gradient magnitude."""
    grey = rgb.astype(np.float32).mean(axis=-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    best, best_score = (0, 0), -1.0
    for top in range(0, energy.shape[0] - side + 1, side // 2):
        for left in range(0, energy.shape[1] - side + 1, side // 2):
            score = float(energy[top : top + side, left : left + side].mean())
            if score > best_score:
                best, best_score = (top, left), score
    top, left = best
    return rgb[top : top + side, left : left + side]


def texture_photos() -> dict[str, np.ndarray]:
    """The texture test set: the most detailed window of each held-out photo."""
    by_file = {photo: package for package in (LOMIRI_16, LOMIRI_20) for photo in package.photos}
    absent = sorted({by_file[p].name for p in TEXTURE if version(by_file[p].name) is None})
    if absent:
        raise BadInput(
            f"the texture test set needs Debian's {' and '.join(absent)} (apt-get install {' '.join(absent)})"
        )
    return {_short_name(p): most_detailed_window(read(_path(by_file[p], p))) for p in TEXTURE}
