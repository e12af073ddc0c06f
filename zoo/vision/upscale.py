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
chroma channels, to which the eye is far less sensitive, take the same bicubic
layer. Inference is tiled with overlapping margins wider than the network's
receptive field, so a 12-megapixel photo runs in bounded memory and the tiled
result equals the whole-image result.

Data: 16 real photos that ship inside Python wheels (`zoo.data.photos`),
12 for training (2 of them for validation) and 4 held out; `--data DIR`
trains on any folder of photos; DIV2K and BSDS500 download through the catalog.

Metric: PSNR and SSIM on Y with a border of `scale` pixels cropped, against
bicubic upsampling (Pillow) on the held-out photos: `zoo evaluate upscale`.

    zoo demo upscale photo.jpg --scale 2 -o photo_x2.png
    zoo train upscale --scale 3 --preset full
    zoo evaluate upscale --scale 3
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from PIL import Image

from zoo import api, harness, registry
from zoo.data import photos as photo_data
from zoo.data.images import input_image, save_image
from zoo.errors import BadInput

SCALES = (2, 3, 4)
VALIDATION_PHOTOS = ("astronaut", "gravel")  # taken out of the training photos to pick the best epoch
MIN_SIDE = 8


@dataclasses.dataclass
class Config:
    scale: int = 2
    features: int = 32
    blocks: int = 4
    patch: int = 40  # low-resolution side of a training patch
    batch_size: int = 16
    epochs: int = 10
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    workers: int = 1  # threads cutting patches; Pillow's resize releases the GIL
    data: str | None = None


PRESETS = {
    "quick": Config(),
    "full": Config(epochs=40, steps_per_epoch=500, batch_size=32, patch=48, workers=4),
}


# ------------------------------------------------------------------- colour

# ITU-R BT.601 "studio swing", as MATLAB's rgb2ycbcr: the convention SR papers report Y-PSNR in.
_RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 YCbCr in [0, 1]."""
    return (rgb.astype(np.float32) / 255.0 @ _RGB_TO_YCBCR.T.astype(np.float32) + _YCBCR_OFFSET).astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """float YCbCr in [0, 1] -> uint8 RGB, rounded and clipped."""
    rgb = (ycbcr - _YCBCR_OFFSET.astype(np.float32)) @ np.linalg.inv(_RGB_TO_YCBCR).T.astype(np.float32)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Y channel in [0, 255] (float64), as the metrics use it."""
    return rgb_to_ycbcr(rgb)[..., 0].astype(np.float64) * 255.0


# -------------------------------------------------------------------- model


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel, the one Pillow and MATLAB call bicubic."""
    x = np.abs(x)
    return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                    np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))


def bicubic_subpixel_kernel(scale: int) -> np.ndarray:
    """A 5x5 conv kernel with scale**2 outputs that, followed by depth_to_space, is bicubic upsampling.

    Output pixel p (0..scale-1) of low-resolution pixel i sits at i + (p + 0.5) / scale - 0.5
    in low-resolution coordinates; its weights are the cubic kernel at the five nearest pixels.
    """
    offsets = (np.arange(scale) + 0.5) / scale - 0.5
    taps = _cubic(np.arange(-2, 3)[None, :] - offsets[:, None])  # (phase, tap)
    taps /= taps.sum(axis=1, keepdims=True)
    kernel = np.einsum("ay,bx->yxab", taps, taps).reshape(5, 5, 1, scale * scale)
    return kernel.astype(np.float32)


@keras.saving.register_keras_serializable(package="zoo")
class BicubicUpsample(layers.Layer):
    """Fixed bicubic upsampling of every channel (edges mirrored), as a sub-pixel convolution."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.kernel = bicubic_subpixel_kernel(scale)

    def call(self, images):
        batch, height, width = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        channels = images.shape[-1]
        planes = ops.reshape(ops.transpose(images, (0, 3, 1, 2)), (-1, height, width, 1))
        planes = ops.pad(planes, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
        phases = ops.conv(planes, ops.convert_to_tensor(self.kernel, dtype=planes.dtype), padding="valid")
        upsampled = ops.depth_to_space(phases, self.scale)
        upsampled = ops.reshape(upsampled, (batch, channels, height * self.scale, width * self.scale))
        return ops.transpose(upsampled, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        def grow(n):
            return None if n is None else n * self.scale
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="zoo")
class DepthToSpace(layers.Layer):
    """Sub-pixel convolution's rearrangement: (H, W, s*s*C) -> (s*H, s*W, C)."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return ops.depth_to_space(x, self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def build_model(config: Config) -> keras.Model:
    """Low-resolution Y (N, h, w, 1) in [0, 1] -> high-resolution Y (N, s*h, s*w, 1)."""
    low = keras.Input((None, None, 1), name="low_res_y")
    conv = dict(kernel_size=3, padding="same")
    head = x = layers.Conv2D(config.features, name="head", **conv)(low)
    for i in range(config.blocks):
        y = layers.Conv2D(config.features, activation="relu", name=f"block{i}_a", **conv)(x)
        y = layers.Conv2D(config.features, name=f"block{i}_b", **conv)(y)
        x = layers.Add(name=f"block{i}")([x, y])
    x = layers.Conv2D(config.features, name="body_end", **conv)(x)
    x = layers.Add(name="body")([x, head])
    # Zero-initialised, so an untrained model is exactly bicubic and training only adds detail.
    x = layers.Conv2D(config.scale**2, kernel_initializer="zeros", name="subpixel", **conv)(x)
    residual = DepthToSpace(config.scale, name="depth_to_space")(x)
    bicubic = BicubicUpsample(config.scale, name="bicubic")(low)
    high = layers.Add(name="high_res_y")([bicubic, residual])
    return keras.Model(low, high, name=f"upscale_x{config.scale}")


def model_scale(model: keras.Model) -> int:
    """The upscaling factor of any model mapping (h, w, 1) to (s*h, s*w, 1)."""
    probe = np.zeros((1, 12, 12, 1), np.float32)
    scale = int(keras.ops.convert_to_numpy(model(probe)).shape[1] // 12)
    if scale not in SCALES:
        raise BadInput(f"model {model.name} upscales {scale}x; expected one of {SCALES}")
    return scale


def receptive_radius(model: keras.Model) -> int:
    """An upper bound, in low-resolution pixels, on how far any output pixel looks."""
    radius = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            radius += (layer.kernel_size[0] - 1) // 2
        elif isinstance(layer, BicubicUpsample):
            radius += 2
    return radius


def psnr_metric(y_true, y_pred):
    """PSNR in dB of images in [0, 1], for training curves."""
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    return ops.mean(-10.0 * ops.log(mse + 1e-10) / np.log(10.0))


psnr_metric.__name__ = "psnr"


# --------------------------------------------------------------------- data


def downscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """The degradation we invert: Pillow's antialiased bicubic downscaling, back to uint8."""
    height, width = rgb.shape[0] // scale, rgb.shape[1] // scale
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def crop_to_multiple(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb[: rgb.shape[0] - rgb.shape[0] % scale, : rgb.shape[1] - rgb.shape[1] % scale]


class PatchDataset(harness.EpochSeeded):
    """Random (low, high) luma patch pairs cut from photos, made fresh each epoch.

    A photo is drawn with probability proportional to its area, cropped, flipped
    and rotated at random, then shrunk with the same antialiased bicubic filter
    that evaluation uses. Luma is computed once per photo: Y is affine in RGB
    and resizing is linear, so shrinking Y equals taking Y of the shrunk photo,
    up to the 8-bit rounding that evaluation adds.
    """

    def __init__(self, photos: list[np.ndarray], scale: int, patch: int, batch_size: int, steps: int,
                 seed: int, augment: bool = True, workers: int = 1):
        super().__init__(seed, workers=workers, use_multiprocessing=False)
        big = [p for p in photos if min(p.shape[:2]) >= patch * scale]
        if not big:
            raise BadInput(f"no training photo is at least {patch * scale} pixels a side")
        self.lumas = [rgb_to_ycbcr(p)[..., 0] for p in big]
        self.scale, self.patch = scale, patch
        self.batch_size, self.steps, self.augment = batch_size, steps, augment
        areas = np.array([y.size for y in self.lumas], np.float64)
        self.cumulative = np.cumsum(areas / areas.sum())

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = self.rng(index)
        side = self.patch * self.scale
        lows = np.empty((self.batch_size, self.patch, self.patch, 1), np.float32)
        highs = np.empty((self.batch_size, side, side, 1), np.float32)
        for i in range(self.batch_size):
            y = self.lumas[int(np.searchsorted(self.cumulative, rng.random()))]
            top = rng.integers(0, y.shape[0] - side + 1)
            left = rng.integers(0, y.shape[1] - side + 1)
            high = y[top: top + side, left: left + side]
            if self.augment:
                high = np.rot90(high, rng.integers(4))
                if rng.random() < 0.5:
                    high = high[:, ::-1]
            highs[i, ..., 0] = high
            shrunk = Image.fromarray(np.ascontiguousarray(high), "F").resize((self.patch, self.patch), Image.BICUBIC)
            lows[i, ..., 0] = np.asarray(shrunk)
        return lows, highs


def training_photos(data: str | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, validation) photos: the offline set by default, or a folder's photos."""
    if data:
        photos = list(photo_data.folder_photos(Path(data), min_side=MIN_SIDE).values())
        if len(photos) < 2:
            return photos, photos
        return photos[1:], photos[:1]
    named = photo_data.sample_photos("train")
    return ([p for n, p in named.items() if n not in VALIDATION_PHOTOS],
            [p for n, p in named.items() if n in VALIDATION_PHOTOS])


# ---------------------------------------------------------------- inference


def _tiles(height: int, width: int, tile: int, margin: int):
    """Yield (core, window) boxes (top, bottom, left, right): the window adds `margin` of context."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            yield (top, bottom, left, right), (max(top - margin, 0), min(bottom + margin, height),
                                               max(left - margin, 0), min(right + margin, width))


def _run_cropped(model: keras.Model, planes: np.ndarray, core, window, scale: int) -> np.ndarray:
    """`model` on each channel of a window (channels as a batch), cropped back to the core."""
    top, bottom, left, right = core
    t0, _, l0, _ = window
    result = keras.ops.convert_to_numpy(model(np.moveaxis(planes, -1, 0)[..., None], training=False))[..., 0]
    kept = result[:, (top - t0) * scale: (bottom - t0) * scale, (left - l0) * scale: (right - l0) * scale]
    return np.moveaxis(kept, 0, -1)


def upscale_image(model: keras.Model, rgb: np.ndarray, tile: int = 384) -> np.ndarray:
    """uint8 RGB -> uint8 RGB upscaled: the model on Y, bicubic on chroma, tile by tile.

    Each tile goes all the way from RGB to RGB, so peak memory is the uint8 input,
    the uint8 output and one tile's activations, whatever the photo's size.
    """
    scale = model_scale(model)
    chroma = keras.Sequential([keras.Input((None, None, 1)), BicubicUpsample(scale)])
    height, width, _ = rgb.shape
    out = np.empty((height * scale, width * scale, 3), np.uint8)
    for core, window in _tiles(height, width, tile, max(receptive_radius(model), receptive_radius(chroma))):
        t0, t1, l0, l1 = window
        top, bottom, left, right = core
        ycbcr = rgb_to_ycbcr(rgb[t0:t1, l0:l1])
        upscaled = np.concatenate([_run_cropped(model, ycbcr[..., :1], core, window, scale),
                                   _run_cropped(chroma, ycbcr[..., 1:], core, window, scale)], axis=-1)
        out[top * scale: bottom * scale, left * scale: right * scale] = ycbcr_to_rgb(upscaled)
    return out


# ------------------------------------------------------------- evaluation


def y_metrics(reference: np.ndarray, candidate: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y in [0, 255], border of `scale` pixels cropped (the usual SR convention)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    crop = (slice(scale, -scale), slice(scale, -scale))
    a, b = luma(reference)[crop], luma(candidate)[crop]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    return float(psnr), float(ssim)


def evaluate_model(model: keras.Model, photos: dict[str, np.ndarray]) -> dict:
    """Model and bicubic, side by side, on held-out photos."""
    scale = model_scale(model)
    per_image = {}
    for name, photo in photos.items():
        high = crop_to_multiple(photo, scale)
        low = downscale(high, scale)
        bicubic = np.asarray(Image.fromarray(low).resize((high.shape[1], high.shape[0]), Image.BICUBIC))
        model_psnr, model_ssim = y_metrics(high, upscale_image(model, low), scale)
        bicubic_psnr, bicubic_ssim = y_metrics(high, bicubic, scale)
        per_image[name] = {"psnr_y": round(model_psnr, 3), "ssim_y": round(model_ssim, 4),
                           "bicubic_psnr_y": round(bicubic_psnr, 3), "bicubic_ssim_y": round(bicubic_ssim, 4)}

    def mean(key):
        return float(np.mean([m[key] for m in per_image.values()]))

    return {"scale": scale, "images": len(per_image),
            "psnr_y": round(mean("psnr_y"), 3), "ssim_y": round(mean("ssim_y"), 4),
            "bicubic_psnr_y": round(mean("bicubic_psnr_y"), 3), "bicubic_ssim_y": round(mean("bicubic_ssim_y"), 4),
            "gain_db": round(mean("psnr_y") - mean("bicubic_psnr_y"), 3), "per_image": per_image}


def load(weights: str | Path | None, scale: int | None) -> keras.Model:
    """The shipped model for `scale` (default: the card's), or the user's file, whose own scale must agree."""
    model = harness.load_model(registry.resolve_weights("upscale", weights, scale=scale), app="upscale")
    if scale and model_scale(model) != scale:
        raise BadInput(f"{weights}: this model upscales {model_scale(model)}x, not {scale}x (drop --scale)")
    return model


# ---------------------------------------------------------- CLI entry points


def train(*, preset: str, epochs: int | None, data: Path | None, out: Path | None, resume: bool, seed: int,
          scale: int) -> dict:
    config = dataclasses.replace(PRESETS[preset], scale=scale, data=str(data) if data else None)
    run = harness.start_run(f"upscale-x{config.scale}", config, out, resume, seed, epochs)
    config = run.config
    train_photos, validation_photos = training_photos(config.data)
    steps = config.epochs * config.steps_per_epoch
    patches = PatchDataset(train_photos, config.scale, config.patch, config.batch_size,
                           config.steps_per_epoch, run.seed, workers=config.workers)
    low, high = PatchDataset(validation_photos, config.scale, config.patch, 64, 1, run.seed + 1, augment=False)[0]
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    with harness.scope():  # a distributed run's model and optimizer are mirrored on every replica
        model = build_model(config)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mean_absolute_error", metrics=[psnr_metric])
    harness.fit(run, model, patches, (low, high), epochs=config.epochs, monitor="val_psnr", mode="max")
    best = harness.best_model(run)
    # With --data, the folder's first photo (held out from training) stands in for a test set.
    held_out = {"validation": validation_photos[0]} if config.data else photo_data.sample_photos("test")
    metrics = evaluate_model(best, held_out)
    run.write_metrics(metrics)
    return {"run": str(run.path), **{k: v for k, v in metrics.items() if k != "per_image"}}


def evaluate(*, weights: str | None, data: Path | None, scale: int | None) -> dict:
    model = load(weights, scale)
    photos = photo_data.folder_photos(data, min_side=MIN_SIDE) if data else photo_data.sample_photos("test")
    return evaluate_model(model, photos)


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
        self.output = str(save_image(np.asarray(self.image), Path(path), force=force))
        return Path(path)


class Predictor(api.Predictor):
    """`zoo.load("upscale", scale=S)`: photos in, photos `S` times larger out (model on luma, tiled)."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.model = load(self.weights, self.options["scale"])
        self.scale = self.options["scale"] = model_scale(self.model)

    def predict(self, inputs, **options) -> list[Upscaled]:
        images = [input_image(source, min_side=MIN_SIDE) for source in inputs]  # all checked before any work
        results = []
        for name, image in images:
            upscaled = upscale_image(self.model, image)
            results.append(Upscaled(name, self.scale, (image.shape[1], image.shape[0]),
                                    (upscaled.shape[1], upscaled.shape[0]), Image.fromarray(upscaled)))
        return results

    def output_name(self, source: Path | None) -> str:
        return f"{Path(source or 'image').stem}_x{self.scale}.png"
