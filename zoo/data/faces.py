"""Face data: real photos inside packages, gallery folders, pairs files, LFW, generated identities.

- `packaged_photos()`: the real face photos that ship in packages (the `face_recognition`
  1.3.0 sdist's tests/test_images, read from the tar.gz without installing it; matplotlib's
  Grace Hopper; scikit-image's astronaut, Eileen Collins) and face-free ones (coffee,
  chelsea the cat, rocket) for counting false detections. Never copied into the repository.
- `gallery(DIR)`: DIR/<person>/*.jpg, a few photos each (to enroll, or to train on: the app
  finds and aligns the faces, `zoo.vision.faces.pipeline.gallery_chips`).
- `read_pairs(FILE)`: verification pairs, LFW's `pairs.txt` or `a.jpg<TAB>b.jpg<TAB>0|1` lines.
- `lfw_pairs()`: LFW's 10-fold protocol, through the catalog's hash-checked downloads.
- `generated_identities(...)`: synthetic "people" (a random smooth pattern each, seen under
  random shifts, scales, rotations, brightness and noise) for testing training offline;
  they are not faces, and the tests say so.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np

from zoo.data.images import IMAGE_SUFFIXES, image_files
from zoo.errors import BadInput

FACE_RECOGNITION_SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_PHOTOS = ("obama", "obama2", "obama3", "biden", "obama_partial_face", "obama_partial_face2")
PEOPLE = {
    "obama": "Barack Obama",
    "obama2": "Barack Obama",
    "obama3": "Barack Obama",
    "biden": "Joe Biden",
    "obama_partial_face": "Barack Obama",
    "obama_partial_face2": "Barack Obama",
    "astronaut": "Eileen Collins",
    "grace_hopper": "Grace Hopper",
}
FACE_FREE = ("coffee", "chelsea", "rocket")


def sdist_path() -> Path | None:
    """The face_recognition 1.3.0 sdist: $ZOO_FACES_SDIST, the cache, or the current folder."""
    from zoo.data.download import cache_dir

    candidates = [
        os.environ.get("ZOO_FACES_SDIST", ""),
        cache_dir() / "datasets" / FACE_RECOGNITION_SDIST,
        Path(FACE_RECOGNITION_SDIST),
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def _sdist_photos(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    photos = {}
    with tarfile.open(path) as archive:
        for name in SDIST_PHOTOS:
            member = archive.getmember(f"face_recognition-1.3.0/tests/test_images/{name}.jpg")
            photos[name] = np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
    return photos


def packaged_photos(faces: bool = True) -> dict[str, np.ndarray]:
    """Real photos with faces (name -> RGB uint8), or the face-free ones with faces=False.

    The sdist photos appear only when the tar.gz is found (`pip download --no-deps
    --no-binary :all: face_recognition==1.3.0`, then set ZOO_FACES_SDIST or put it in the cache).
    """
    import skimage.data

    if not faces:
        return {name: getattr(skimage.data, name)() for name in FACE_FREE}
    import matplotlib.cbook

    photos = {"astronaut": skimage.data.astronaut()}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        from PIL import Image

        photos["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    sdist = sdist_path()
    if sdist is not None:
        photos.update(_sdist_photos(sdist))
    return photos


# ------------------------------------------------------------------ galleries


def gallery(folder: Path) -> dict[str, list[Path]]:
    """DIR/<person>/*.jpg -> {person: [photo, ...]}; every person needs at least one photo."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder (expected DIR/<person>/*.jpg)")
    people = {}
    for person in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = image_files(person, recursive=False)
        if not photos:
            raise BadInput(f"{person}: person folder has no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
        people[person.name] = photos
    if not people:
        raise BadInput(f"{folder}: no person folders (expected DIR/<person>/*.jpg)")
    return people


def read_pairs(path: Path, root: Path | None = None) -> list[tuple[Path, Path, bool]]:
    """Verification pairs: (first, second, same person).

    Two formats: `a.jpg<TAB>b.jpg<TAB>1` lines (paths relative to the file's folder, 1 = same),
    or LFW's pairs.txt (`name i j` same, `name1 i name2 j` different, images under `root`).
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: pairs file not found")
    base = root or path.parent
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields or line.startswith("#") or (len(fields) == 2 and number == 1):  # LFW's "10 300" header
            continue
        if len(fields) == 3 and fields[2] in ("0", "1") and not fields[1].isdigit():
            pairs.append((base / fields[0], base / fields[1], fields[2] == "1"))
        elif len(fields) == 3:
            name, i, j = fields
            pairs.append((_lfw(base, name, i), _lfw(base, name, j), True))
        elif len(fields) == 4:
            pairs.append((_lfw(base, fields[0], fields[1]), _lfw(base, fields[2], fields[3]), False))
        else:
            raise BadInput(f"{path}:{number}: expected 'a.jpg<TAB>b.jpg<TAB>0|1' or LFW's pairs format")
    if not pairs:
        raise BadInput(f"{path}: no pairs")
    return pairs


def _lfw(root: Path, name: str, index: str) -> Path:
    return root / name / f"{name}_{int(index):04d}.jpg"


def lfw_pairs() -> tuple[Path, Path]:
    """(pairs.txt, image root) of LFW, downloaded and unpacked through the catalog (needs internet)."""
    from zoo.data import catalog

    images = catalog.fetch("lfw")
    pairs = catalog.fetch("lfw-pairs")
    root = images / "lfw" if (images / "lfw").is_dir() else images
    return pairs, root


# ------------------------------------------------------- generated identities


def generated_identities(people: int, per_person: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, size, size, 3) uint8, labels (N,)): synthetic identities, NOT faces.

    Each identity is a random smooth colour pattern; each photo of it is a random
    shift / scale / rotation / brightness / noise of that pattern, so telling identities
    apart needs an embedding that ignores exactly those nuisances.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size - 0.5
    images, labels = [], []
    for person in range(people):
        freq = rng.normal(0, 4, (6, 2))
        phase, colour = rng.uniform(0, 2 * np.pi, 6), rng.uniform(-1, 1, (6, 3))
        for _ in range(per_person):
            angle, scale = rng.normal(0, 0.15), np.exp(rng.normal(0, 0.1))
            shift = rng.normal(0, 0.05, 2)
            c, s = np.cos(angle), np.sin(angle)
            u = (c * xs - s * ys) * scale + shift[0]
            v = (s * xs + c * ys) * scale + shift[1]
            waves = np.sin(2 * np.pi * (freq[:, 0, None, None] * u + freq[:, 1, None, None] * v) + phase[:, None, None])
            picture = np.einsum("khw,kc->hwc", waves, colour) / 3 * rng.uniform(0.7, 1.0) + rng.uniform(-0.1, 0.1)
            picture = picture + rng.normal(0, 0.05, picture.shape)
            images.append(np.clip(127.5 + 127.5 * picture, 0, 255).astype(np.uint8))
            labels.append(person)
    return np.stack(images), np.array(labels)
