"""Super-resolution: upscale a photo 2x, 3x or 4x with a small residual CNN.

Follows ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution
Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016) in
doing all the work at low resolution and ending in a sub-pixel convolution
(depth-to-space), and EDSR (Lim et al., CVPR 2017 workshops) in its body of
residual blocks without batch normalisation and its L1 loss. One idea makes it
learn much faster per CPU second than ESPCN: the network predicts only the
*residual* over bicubic upsampling, and the bicubic image is computed inside
the model by a fixed (non-trainable) sub-pixel convolution, so the model stays
one backend-agnostic `.keras` file that maps a low-resolution image to a
high-resolution one.

Colour: like most SR work, the network sees the luma (Y of BT.601 YCbCr); the
colour planes, to which the eye is far less sensitive, are Pillow's bicubic resize,
to which the model's luma residual is added. Inference is tiled with overlapping
margins wider than the network's receptive field, so a 12-megapixel photo runs in
bounded memory and the tiled result equals the whole-image result.

Two runtimes compute that residual: Keras (`model.py`; where the CPU multiplies
bfloat16 natively, the convolutions run in bfloat16) and ONNX Runtime (`onnx_runtime.py`,
`--runtime onnx`: float32, faster on CPU, and the process never imports TensorFlow).
This module is the part both share, and it imports neither Keras nor TensorFlow: the
Keras half (model, training, evaluation) loads on first use of one of its names.

Data: the real photos that ship inside Python wheels (`zoo.data.photos`: 10 for
training, 2 for validation, 4 held out) and the photographs of Debian's wallpaper
packages (`zoo.data.debian_photos`); `--data DIR` trains on any folder of photos;
DIV2K and BSDS500 download through the catalog. `--init` starts from a trained
model, a deeper preset's extra blocks starting as the identity; the deep presets
also write the self-ensemble (8 flips and turns averaged) that x3 and x4 ship.

Metric: PSNR and SSIM on Y with a border of `scale` pixels cropped, against
bicubic upsampling (Pillow), on the held-out smooth photos and on the texture set
(`zoo.data.debian_photos.texture_photos`): `zoo evaluate upscale`.

    zoo demo upscale photo.jpg --scale 2 -o photo_x2.png
    zoo demo upscale big.jpg --runtime onnx
    zoo train upscale --scale 3 --preset full
    zoo train upscale --scale 4 --preset deeper --init x4
    zoo evaluate upscale --scale 3
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from zoo import api, quiet
from zoo.data.images import input_image, save_image
from zoo.errors import BadInput

SCALES = (2, 3, 4)
MIN_SIDE = 8
KERAS_HALF = f"{__name__}.model"  # the model, training and evaluation; imported on first use
# The layers int8 leaves in float, in every runtime: the first and last convolutions, whose inputs
# and outputs are image-sized (the luma, the residual), which 8 bits would round to 256 levels.
FLOAT_UNDER_INT8 = ("head", "subpixel")

# ------------------------------------------------------------------- colour

# ITU-R BT.601 "studio swing", as MATLAB's rgb2ycbcr: the convention SR papers report Y-PSNR in.
_RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
# Adding d to R, G and B adds d * 219/255 to BT.601 Y and leaves Cb, Cr alone: a luma residual r
# (Y in [0, 1]) is r * 255 * 255/219 levels on each colour plane.
_LUMA_RESIDUAL_TO_RGB_LEVELS = 255.0 * 255.0 / 219.0


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 YCbCr in [0, 1]."""
    return (rgb.astype(np.float32) / 255.0 @ _RGB_TO_YCBCR.T.astype(np.float32) + _YCBCR_OFFSET).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Y channel in [0, 255] (float64), as the metrics use it."""
    return rgb_to_ycbcr(rgb)[..., 0].astype(np.float64) * 255.0


def model_luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> Y in [0, 1] (h, w) float32, what the model sees (Y alone: a third of the work)."""
    to_y = (_RGB_TO_YCBCR[0] / 255.0).astype(np.float32)
    return rgb.astype(np.float32) @ to_y + np.float32(_YCBCR_OFFSET[0])


# ------------------------------------------------------ degradation, metric


def downscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """The degradation we invert: Pillow's antialiased bicubic downscaling, back to uint8."""
    height, width = rgb.shape[0] // scale, rgb.shape[1] // scale
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def crop_to_multiple(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb[: rgb.shape[0] - rgb.shape[0] % scale, : rgb.shape[1] - rgb.shape[1] % scale]


def y_metrics(reference: np.ndarray, candidate: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y in [0, 255], border of `scale` pixels cropped (the usual SR convention)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    crop = (slice(scale, -scale), slice(scale, -scale))
    a, b = luma(reference)[crop], luma(candidate)[crop]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return float(psnr), float(ssim)


def check_scale(source: object, scale: int, wanted: int | None) -> None:
    """A model file of one scale asked for another: one line, whichever runtime read it."""
    if wanted and scale != wanted:
        raise BadInput(f"{source}: this model upscales {scale}x, not {wanted}x (drop --scale)")


# ---------------------------------------------------------------- inference


class Residual(Protocol):
    """Low-resolution Y (h, w) in [0, 1] -> what the model adds to bicubic upsampling (s*h, s*w):
    `model.KerasResidual` or `onnx_runtime.OnnxResidual`."""

    scale: int
    margin: int  # low-resolution pixels of context a tile needs: at least the receptive radius
    tile: int  # the runtime's best tile side, in low-resolution pixels

    def __call__(self, y: np.ndarray) -> np.ndarray: ...


def _tiles(height: int, width: int, tile: int, margin: int):
    """Yield (core, window) boxes (top, bottom, left, right): the window adds `margin` of context."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            yield (
                (top, bottom, left, right),
                (max(top - margin, 0), min(bottom + margin, height), max(left - margin, 0), min(right + margin, width)),
            )


def upscale_to_image(residual: Residual, rgb: np.ndarray, tile: int | None = None) -> Image.Image:
    """uint8 RGB -> the upscaled PIL image: Pillow's bicubic of the colour planes plus the model's
    luma residual, tile by tile (`tile` low-resolution pixels a side; default: the runtime's).

    Pillow resizes each tile from the whole photo (`box`), so tiles join seamlessly, and the
    model sees a margin wider than its receptive field, so the tiled result equals the
    whole-image result. Peak memory: the input, the output image (held once) and one tile.
    """
    scale, margin, tile = residual.scale, residual.margin, tile or residual.tile
    height, width, _ = rgb.shape
    source = Image.fromarray(rgb)
    result = Image.new("RGB", (width * scale, height * scale))
    for (top, bottom, left, right), (t0, t1, l0, l1) in _tiles(height, width, tile, margin):
        added = residual(model_luma(rgb[t0:t1, l0:l1]))
        added = added[(top - t0) * scale : (bottom - t0) * scale, (left - l0) * scale : (right - l0) * scale]
        size = ((right - left) * scale, (bottom - top) * scale)
        bicubic = np.asarray(source.resize(size, Image.BICUBIC, box=(left, top, right, bottom)), np.float32)
        tile_rgb = bicubic + (added * _LUMA_RESIDUAL_TO_RGB_LEVELS)[..., None] + 0.5
        result.paste(Image.fromarray(np.clip(tile_rgb, 0, 255).astype(np.uint8)), (left * scale, top * scale))
    return result


def residual_for(weights: str | Path | None, scale: int | None, runtime: str) -> Residual:
    """The residual of `weights` (a tag, file, run or None: the shipped model for `scale`) in `runtime`."""
    if runtime == "keras":
        model = _keras_half()
        return model.KerasResidual(model.load(weights, scale))
    from zoo.vision.upscale import onnx_runtime

    return onnx_runtime.residual_for(weights, scale, quantized=runtime == "onnx-int8")


# ---------------------------------------------------------------- Python face


@dataclasses.dataclass
class Upscaled(api.Result):
    """One photo upscaled: sizes in pixels (width, height) and the image itself."""

    input: str
    scale: int
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    image: Image.Image = api.shown("image", rich=True)

    @property
    def text(self) -> str:
        (w, h), (big_w, big_h) = self.input_size, self.output_size
        return f"{self.input} -> {self.output or 'image'} ({w}x{h} -> {big_w}x{big_h})"

    def save(self, path: str | Path, force: bool = False) -> Path:
        self.output = str(save_image(self.image, Path(path), force=force))
        return Path(path)


class Predictor(api.Predictor):
    """`zoo.load("upscale", scale=S, runtime=R)`: photos in, photos `S` times larger out (model on luma,
    tiled), the residual computed by Keras or, with runtime="onnx", by ONNX Runtime without TensorFlow."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.residual = residual_for(self.weights, self.options["scale"], self.options["runtime"])  # built once
        self.scale = self.options["scale"] = self.residual.scale

    @property
    def model(self):
        """The Keras model (loaded now if the runtime is ONNX Runtime): what evaluation and export take."""
        model = getattr(self.residual, "model", None)
        return _keras_half().load(self.weights, self.scale) if model is None else model

    def predict(self, inputs, **options) -> list[Upscaled]:
        images = [input_image(source, min_side=MIN_SIDE) for source in inputs]  # all checked before any work
        results = []
        for name, image in images:
            upscaled = upscale_to_image(self.residual, image)
            results.append(Upscaled(name, self.scale, (image.shape[1], image.shape[0]), upscaled.size, upscaled))
        return results

    def output_name(self, source: Path | None) -> str:
        return f"{Path(source or 'image').stem}_x{self.scale}.png"

    def exportables(self) -> list:
        return _keras_half().exportables(self.model)


def _keras_half():
    return quiet.import_module(KERAS_HALF)  # TensorFlow loads here: its start-up noise hidden


def __getattr__(name: str):
    """The Keras half's names (`upscale.build_model`, `upscale.train`, ...), imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule (`from ... import onnx_runtime`)
        return quiet.import_module(f"{__name__}.{name}")
    try:
        return getattr(_keras_half(), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
