"""Labelled images for classification: Fashion-MNIST, CIFAR-10 and folders of class folders.

Every loader returns `LabelledImages`: uint8 images (N, H, W, C), int32
labels and the class names, ready for `keras.Model.fit` or `tf.data`.

- Fashion-MNIST (Xiao et al., 2017) is read from Debian's
  `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) when it is
  installed, else downloaded through the catalog (hash-checked). Debian
  recompressed the gzip files, so their bytes (and sha256) differ from the
  upstream ones; the idx headers are checked either way.
- CIFAR-10 (Krizhevsky, 2009): the binary version, downloaded and unpacked once.
- `class_folder(DIR)`: `DIR/<class>/*.{jpg,png,...}` in any mode and size,
  converted to one size and to greyscale or RGB; unreadable files are skipped
  and counted in one warning.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data import catalog
from zoo.data.images import read_image
from zoo.errors import BadInput, warn

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_IDX_DTYPES = {0x08: np.uint8}


@dataclasses.dataclass
class LabelledImages:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int32 (N,), indices into class_names
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[indices], self.labels[indices], self.class_names)


# ------------------------------------------------------------ Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """An array from a (gzipped) idx file, the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise BadInput(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, _IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise BadInput(f"{path}: idx header says {shape}, file holds {body.size} values")
    return body.reshape(shape)


def fashion_mnist(split: str = "train") -> LabelledImages:
    """60,000 training or 10,000 test images, 28x28x1, white garments on black."""
    folder = Path(catalog.fetch("fashion-mnist"))
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return LabelledImages(images[..., None], labels.astype(np.int32), FASHION_MNIST_CLASSES)


# ----------------------------------------------------------------- CIFAR-10


def cifar10(split: str = "train") -> LabelledImages:
    """50,000 training or 10,000 test images, 32x32x3: records of one label byte and 3,072 pixel bytes."""
    root = Path(catalog.fetch("cifar10")) / "cifar-10-batches-bin"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    records = np.concatenate([np.fromfile(root / name, np.uint8).reshape(-1, 3073) for name in names])
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return LabelledImages(np.ascontiguousarray(images), records[:, 0].astype(np.int32), CIFAR10_CLASSES)


# ------------------------------------------------------------ class folders


def fit_image(image: Image.Image, size: int, background: int = 0) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad to a `size` x `size` square."""
    scale = size / max(image.size)
    resized = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.BICUBIC if scale > 1 else Image.LANCZOS,
    )
    fill = background if image.mode == "L" else (background,) * 3
    square = Image.new(image.mode, (size, size), fill)
    square.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return np.asarray(square)


def class_folder(folder: Path, size: int = 32) -> LabelledImages:
    """Every readable image of `folder/<class>/...`, resized to `size` x `size`.

    Greyscale when every image is grey, RGB otherwise. A class folder with no
    readable image, or fewer than two classes, is an error; unreadable files
    (not images, truncated, corrupt) are skipped and counted in one warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder (expected {folder}/<class>/<images>)")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0].name!r}" if classes else "none"
        raise BadInput(f"{folder}: needs at least two class folders, found {found}")
    images, labels, skipped = [], [], []
    for label, class_dir in enumerate(classes):
        count = 0
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                rgb = read_image(path)
            except BadInput:
                skipped.append(str(path.relative_to(folder)))
                continue
            images.append(rgb)
            labels.append(label)
            count += 1
        if count == 0:
            raise BadInput(f"{class_dir}: class folder has no readable images")
    if skipped:
        warn(
            f"{folder}: skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:5])}"
            + (" ..." if len(skipped) > 5 else "")
        )
    grey = all(np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 0], im[..., 2]) for im in images)
    mode = "L" if grey else "RGB"
    fitted = np.stack([fit_image(Image.fromarray(im).convert(mode), size) for im in images])
    return LabelledImages(
        fitted.reshape(len(fitted), size, size, -1), np.array(labels, np.int32), tuple(p.name for p in classes)
    )


def conform(data: LabelledImages, shape: tuple[int, int, int]) -> LabelledImages:
    """The images fitted to a square `shape` (aspect kept, padded) with its channels (grey or RGB)."""
    side, _, channels = shape
    if data.images.shape[1:] == tuple(shape):
        return data
    mode = "L" if channels == 1 else "RGB"
    fitted = np.stack(
        [
            fit_image(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert(mode), side)
            for image in data.images
        ]
    )
    return LabelledImages(fitted.reshape(len(fitted), side, side, channels), data.labels, data.class_names)


def stratified_split(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices, `fraction` of each class in validation and one at least,
    except that a class's only image stays in training."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        take = min(max(1, round(fraction * len(members))), len(members) - 1)
        validation.extend(members[:take])
        train.extend(members[take:])
    return np.sort(np.array(train, np.int64)), np.sort(np.array(validation, np.int64))
