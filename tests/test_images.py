"""Robust image reading: every awkward real-world file becomes RGB uint8 or a one-line error."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zoo.data.images import read_folder, read_image, save_image
from zoo.errors import BadInput


def photo(height=40, width=60):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + height, 150 : 150 + width])


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(photo(40, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": phones write this instead of rotating pixels
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").shape == (60, 40, 3)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    source = Image.fromarray(photo())
    if mode == "I;16":
        image = Image.fromarray(np.asarray(source.convert("L"), np.uint16) * 257)
    elif mode in ("I", "F"):
        image = source.convert("L").convert(mode)
    else:
        image = source.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("I", "F", "CMYK") else "x.png")
    image.save(path)
    array = read_image(path)
    assert array.dtype == np.uint8 and array.shape == (40, 60, 3)
    assert 20 < array.mean() < 235  # scaled into 8 bits, not clipped to black or white


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 8).reshape(8, 64)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    grey = read_image(tmp_path / "ramp16.png", mode="L")
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png") == 255).all()


def truncated_jpeg(tmp_path):
    Image.fromarray(photo(200, 200)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.jpg"


def bomb_png(tmp_path, width=50_000, height=50_000):
    """A tiny file whose header claims 2.5 gigapixels."""
    Image.new("L", (8, 8)).save(tmp_path / "small.png")
    data = bytearray((tmp_path / "small.png").read_bytes())
    header = struct.pack(">II", width, height) + data[24:29]
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    return tmp_path / "bomb.png"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.jpg", "no such file"),
        (lambda p: p, "is a directory"),
        (truncated_jpeg, "truncated"),
        (lambda p: (p / "notes.jpg").write_text("not a photo") and p / "notes.jpg", "not an image"),
        (bomb_png, "decompression-bomb"),
    ],
)
def test_bad_files_are_rejected_with_their_name(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(BadInput, match=message) as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_too_small(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(BadInput, match="1x1 is too small"):
        read_image(tmp_path / "dot.png", min_side=8)


def test_save_is_atomic_and_respects_force(tmp_path):
    target = tmp_path / "out.png"
    save_image(np.zeros((4, 4, 3), np.uint8), target)
    with pytest.raises(BadInput, match="already exists"):
        save_image(np.ones((4, 4, 3), np.uint8), target)
    assert np.asarray(Image.open(target)).max() == 0
    with pytest.raises(BadInput, match="extension"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "out.xyz")


def test_read_folder_reports_bad_files_instead_of_failing(tmp_path):
    Image.fromarray(photo()).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_text("nope")
    results = dict(read_folder(tmp_path))
    assert isinstance(results[tmp_path / "bad.jpg"], BadInput)
    assert results[tmp_path / "good.png"].shape == (40, 60, 3)
