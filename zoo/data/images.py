"""Robust image reading and writing for every app.

`read_image` turns whatever a user points at into an RGB (or greyscale) uint8
array, or fails with one line naming the file and the problem:

- EXIF orientation is applied, so phone photos come out upright;
- greyscale, palette, RGBA (composited on white), CMYK, 16-bit and float
  images all become 8-bit RGB;
- a pixel-count limit guards against decompression bombs, checked from the
  header before any pixel is decoded;
- truncated, corrupt and non-image files are rejected, never half-decoded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file

MAX_PIXELS = 150_000_000  # a 12 MP phone photo is far below; a bomb is far above
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _to_uint8(image: Image.Image) -> Image.Image:
    """High-bit-depth modes (I;16, I, F) scaled to 8 bits, not clipped."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    if image.mode == "F":
        top = max(float(values.max(initial=0)), 1.0)
    return Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_mode(image: Image.Image, mode: str = "RGB") -> Image.Image:
    """Convert any Pillow image to 8-bit RGB or L, handling the awkward modes."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_uint8(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image)
    return image if image.mode == mode else image.convert(mode)


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, upright, or raise BadInput."""
    path = check_input_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > max_pixels:
                raise BadInput(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                    f"{max_pixels / 1e6:.0f}-megapixel limit (decompression-bomb guard)"
                )
            image.load()
            return ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise BadInput(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(f"{path}: too many pixels (decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadInput(f"{path}: corrupt or truncated image ({error})") from None


def read_image(path: Path, mode: str = "RGB", min_side: int = 1, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read `path` as a uint8 array: HxWx3 for RGB, HxW for L."""
    image = to_mode(open_image(path, max_pixels), mode)
    if min(image.size) < min_side:
        raise BadInput(f"{path}: {image.width}x{image.height} is too small (at least {min_side} pixels a side)")
    return np.asarray(image)


def save_image(array: np.ndarray | Image.Image, path: Path, force: bool = False) -> Path:
    """Write a uint8 array or a PIL image (saved as it is: no copy) atomically; the format follows the file's
    extension."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadInput(f"{path}: unknown image extension (use one of {', '.join(sorted(IMAGE_SUFFIXES))})")
    image = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array, dtype=np.uint8))
    with atomic_output(path, force) as tmp:
        image.save(tmp)
    return path


def image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files below `folder` by extension, sorted so runs are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_folder(folder: Path, mode: str = "RGB", min_side: int = 1) -> Iterator[tuple[Path, np.ndarray | BadInput]]:
    """Yield (path, image) for each image file, or (path, error) for unreadable ones.

    Callers decide whether one bad file is fatal; a training set usually
    skips it and counts it in a warning.
    """
    for path in image_files(folder):
        try:
            yield path, read_image(path, mode=mode, min_side=min_side)
        except BadInput as error:
            yield path, error


def input_image(source, mode: str = "RGB", min_side: int = 1) -> tuple[str, np.ndarray]:
    """(name, uint8 array) of what a Python caller passed: a path, a PIL image, or an HxW(xC) uint8 array.

    A path goes through `read_image` (its checks and limits); the name is the path, or
    `<PIL image>` / `<array>` for in-memory images.
    """
    if isinstance(source, (str, Path)):
        return str(source), read_image(Path(source), mode=mode, min_side=min_side)
    if isinstance(source, Image.Image):
        name, image = "<PIL image>", to_mode(source, mode)
    elif isinstance(source, np.ndarray):
        if (
            source.dtype != np.uint8
            or source.ndim not in (2, 3)
            or (source.ndim == 3 and source.shape[2] not in (1, 3, 4))
        ):
            raise BadInput(
                f"array of shape {source.shape} and dtype {source.dtype}: expected HxW or HxWx3 uint8 pixels"
            )
        pixels = source[..., 0] if source.ndim == 3 and source.shape[2] == 1 else source
        name, image = "<array>", to_mode(Image.fromarray(np.ascontiguousarray(pixels)), mode)
    else:
        raise BadInput(f"{type(source).__name__}: expected a path, a PIL image or a uint8 array")
    if min(image.size) < min_side:
        raise BadInput(f"{name}: {image.width}x{image.height} is too small (at least {min_side} pixels a side)")
    return name, np.asarray(image)
