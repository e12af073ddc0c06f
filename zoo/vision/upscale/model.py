"""The upscaler's Keras half: the model, its training data and training, evaluation, and the Keras
runtime of the tiled inference that `zoo.vision.upscale` (the Keras-free half) runs.

Reached through the package (`from zoo.vision import upscale; upscale.build_model(...)`), which
imports this module on the first use of one of its names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from PIL import Image

from zoo import harness, registry
from zoo.data import debian_photos
from zoo.data import photos as photo_data
from zoo.errors import BadInput
from zoo.files import atomic_output
from zoo.vision.upscale import (
    _LUMA_RESIDUAL_TO_RGB_LEVELS,
    _RGB_TO_YCBCR,
    _YCBCR_OFFSET,
    FLOAT_UNDER_INT8,
    MIN_SIDE,
    SCALES,
    Residual,
    check_scale,
    crop_to_multiple,
    downscale,
    model_luma,
    residual_for,
    rgb_to_ycbcr,
    upscale_to_image,
    y_metrics,
)

VALIDATION_PHOTOS = ("astronaut", "gravel")  # taken out of the training photos to pick the best epoch
CALIBRATION_SIDE = 64  # low-resolution crops that calibrate an int8 model
CALIBRATION_SAMPLES = 300


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
    detail_tries: int = 1  # candidate windows per patch, the most detailed kept: >1 favours texture over sky
    self_ensemble: bool = False  # also write ensemble.keras: the best model averaged over 8 flips and turns
    loss: str = "mean_absolute_error"  # a Keras loss; mean_squared_error is what PSNR measures
    data: str | None = None
    init: str | None = None  # a trained upscale model to start from (`harness.start_from`)


# A CPU's half hour from a trained model (`--init`), on texture-favouring patches: the same body
# (x2, whose speed on big photos matters most), or twice as deep (x3, x4: a quarter or a ninth of
# the pixels to run on per output pixel).
_FINETUNE = Config(epochs=30, steps_per_epoch=200, patch=48, learning_rate=5e-4, detail_tries=2, workers=2)
_DEEP = dataclasses.replace(_FINETUNE, blocks=8, self_ensemble=True)
_DEEPER = dataclasses.replace(_DEEP, blocks=16, steps_per_epoch=250)
PRESETS = {
    "quick": Config(),
    "full": Config(epochs=40, steps_per_epoch=500, batch_size=32, patch=48, workers=4),
    "finetune": _FINETUNE,
    "deep": _DEEP,
    # Twice as deep again, from a trained 8-block model (`--init x4`): texture is where capacity pays.
    "deeper": _DEEPER,
    # A last stage for a trained deeper model: a lower rate on patches that favour texture harder.
    "deeper-texture": dataclasses.replace(_DEEPER, epochs=10, learning_rate=2e-4, detail_tries=4),
}
# The last stage after that: the squared error that PSNR measures (L1 before it trains faster and
# steadier), at a lower rate, on larger patches that give the deep body its whole view.
PRESETS["deeper-polish"] = dataclasses.replace(
    PRESETS["deeper-texture"], epochs=8, learning_rate=1e-4, patch=64, loss="mean_squared_error"
)


# -------------------------------------------------------------------- model


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel, the one Pillow and MATLAB call bicubic."""
    x = np.abs(x)
    return np.where(
        x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0)
    )


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
        # Zero-initialised, so each block starts as the identity: a deeper model started from a
        # shallower one (`--init`) computes exactly what the shallower one did.
        y = layers.Conv2D(config.features, kernel_initializer="zeros", name=f"block{i}_b", **conv)(y)
        x = layers.Add(name=f"block{i}")([x, y])
    x = layers.Conv2D(config.features, name="body_end", **conv)(x)
    x = layers.Add(name="body")([x, head])
    # Zero-initialised, so an untrained model is exactly bicubic and training only adds detail.
    x = layers.Conv2D(config.scale**2, kernel_initializer="zeros", name="subpixel", **conv)(x)
    residual = DepthToSpace(config.scale, name="depth_to_space")(x)
    bicubic = BicubicUpsample(config.scale, name="bicubic")(low)
    high = layers.Add(name="high_res_y")([bicubic, residual])
    return keras.Model(low, high, name=f"upscale_x{config.scale}")


@keras.saving.register_keras_serializable(package="zoo")
class Dihedral(layers.Layer):
    """One of the 8 flips and quarter turns of an image (`k`: bit 0 transpose, 1 flip rows, 2 flip
    columns), or its inverse."""

    def __init__(self, k: int, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.k, self.inverse = k, inverse

    def call(self, images):
        steps = [
            (1, lambda x: ops.transpose(x, (0, 2, 1, 3))),
            (2, lambda x: ops.flip(x, 1)),
            (4, lambda x: ops.flip(x, 2)),
        ]
        for bit, step in reversed(steps) if self.inverse else steps:
            if self.k & bit:
                images = step(images)
        return images

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, width, height, channels) if self.k & 1 else input_shape

    def get_config(self):
        return {**super().get_config(), "k": self.k, "inverse": self.inverse}


def self_ensemble(model: keras.Model) -> keras.Model:
    """`model` averaged over the 8 flips and quarter turns of its input (each undone on the output):
    the same weights, 8 times the work, a steadier guess on texture (Lim et al. 2017's "EDSR+")."""
    low = keras.Input((None, None, 1), name="low_res_y")
    guesses = [Dihedral(k, inverse=True, name=f"undo{k}")(model(Dihedral(k, name=f"turn{k}")(low))) for k in range(8)]
    return keras.Model(low, layers.Average(name="high_res_y")(guesses), name=f"{model.name}_ensemble")


def single_model(model: keras.Model) -> keras.Model:
    """The model a self-ensemble averages (the model itself otherwise): what `--init` copies from."""
    return next((layer for layer in model.layers if isinstance(layer, keras.Model)), model)


def _layer_calls(model: keras.Model):
    """(layer, times applied) of every layer, inside nested models too (a self-ensemble applies its model 8 times)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            calls = len(layer._inbound_nodes)  # one node per call in the enclosing graph
            yield from ((inner, calls * times) for inner, times in _layer_calls(layer))
        else:
            yield layer, 1


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
        if isinstance(layer, keras.Model):
            radius += receptive_radius(layer)  # flips and turns of the input don't widen it
        elif isinstance(layer, layers.Conv2D):
            radius += (layer.kernel_size[0] - 1) // 2
        elif isinstance(layer, BicubicUpsample):
            radius += 2
    return radius


def multiply_adds_per_output_pixel(model: keras.Model) -> float:
    """The convolutions' and the bicubic layer's multiply-adds per high-resolution pixel."""
    scale, per_low_pixel = model_scale(model), 0
    for layer, calls in _layer_calls(model):
        if isinstance(layer, layers.Conv2D):
            height, width, channels_in, channels_out = layer.kernel.shape
            per_low_pixel += calls * height * width * channels_in * channels_out
        elif isinstance(layer, BicubicUpsample):
            per_low_pixel += calls * layer.kernel.size
    return per_low_pixel / scale**2


@keras.saving.register_keras_serializable(package="zoo", name="psnr")  # a compiled model clones with it
def psnr_metric(y_true, y_pred):
    """PSNR in dB of images in [0, 1], for training curves."""
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    return ops.mean(-10.0 * ops.log(mse + 1e-10) / np.log(10.0))


psnr_metric.__name__ = "psnr"


# --------------------------------------------------------------------- data


def detail(window: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high on texture, near zero on sky."""
    return float(np.abs(np.diff(window, axis=0)).mean() + np.abs(np.diff(window, axis=1)).mean())


class PatchDataset(harness.EpochSeeded):
    """Random (low, high) luma patch pairs cut from photos, made fresh each epoch.

    A photo is drawn with probability proportional to its area, cropped, flipped
    and rotated at random, then shrunk with the same antialiased bicubic filter
    that evaluation uses. Luma is computed once per photo: Y is affine in RGB
    and resizing is linear, so shrinking Y equals taking Y of the shrunk photo,
    up to the 8-bit rounding that evaluation adds. With `detail_tries` > 1, each
    patch is the most detailed of that many windows of its photo, so that flat
    areas (most of a wallpaper's pixels) don't crowd out the texture.
    """

    def __init__(
        self,
        photos: list[np.ndarray],
        scale: int,
        patch: int,
        batch_size: int,
        steps: int,
        seed: int,
        augment: bool = True,
        workers: int = 1,
        detail_tries: int = 1,
    ):
        super().__init__(seed, workers=workers, use_multiprocessing=False)
        big = [p for p in photos if min(p.shape[:2]) >= patch * scale]
        if not big:
            raise BadInput(f"no training photo is at least {patch * scale} pixels a side")
        self.lumas = [rgb_to_ycbcr(p)[..., 0] for p in big]
        self.scale, self.patch = scale, patch
        self.batch_size, self.steps, self.augment, self.detail_tries = batch_size, steps, augment, detail_tries
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
            windows = []
            for _ in range(self.detail_tries):
                top = rng.integers(0, y.shape[0] - side + 1)
                left = rng.integers(0, y.shape[1] - side + 1)
                windows.append(y[top : top + side, left : left + side])
            high = max(windows, key=detail)
            if self.augment:
                high = np.rot90(high, rng.integers(4))
                if rng.random() < 0.5:
                    high = high[:, ::-1]
            highs[i, ..., 0] = high
            shrunk = Image.fromarray(np.ascontiguousarray(high), "F").resize((self.patch, self.patch), Image.BICUBIC)
            lows[i, ..., 0] = np.asarray(shrunk)
        return lows, highs


def training_photos(data: str | None) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """(train, validation, sources): a folder's photos, or by default the wheels' training photos
    and the photographs of Debian's wallpaper packages (`zoo.data.debian_photos`)."""
    if data:
        photos = list(photo_data.folder_photos(Path(data), min_side=MIN_SIDE).values())
        sources = [{"folder": str(data), "files": len(photos)}]
        return (photos, photos, sources) if len(photos) < 2 else (photos[1:], photos[:1], sources)
    named = photo_data.sample_photos("train")
    debian, sources = debian_photos.training_photos()
    train = [p for n, p in named.items() if n not in VALIDATION_PHOTOS]
    wheels = {
        "package": "scikit-image, scikit-learn, matplotlib wheels (zoo.data.photos)",
        "files": len(train),
        "licence": "per photo, in each library's data README",
    }
    return train + list(debian.values()), [p for n, p in named.items() if n in VALIDATION_PHOTOS], [wheels, *sources]


# ---------------------------------------------------------------- inference


def has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX), about twice float32's rate."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def _convolutions_in_bfloat16(model: keras.Model) -> keras.Model:
    """A copy of `model` (nested models included) whose convolutions compute in bfloat16."""

    def clone(layer):
        if isinstance(layer, keras.Model):
            return _convolutions_in_bfloat16(layer)
        mixed = {"dtype": "mixed_bfloat16"} if isinstance(layer, layers.Conv2D) else {}
        return layer.__class__.from_config({**layer.get_config(), **mixed})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def residual_branch(model: keras.Model) -> keras.Model | None:
    """The part of a zoo model that computes the residual alone (its `depth_to_space` output), for a
    self-ensemble averaged over the same flips and turns (bicubic upsampling commutes with them, so
    the ensemble's residual is the average of its model's); None for a model built otherwise."""
    single = single_model(model)
    if not any(layer.name == "depth_to_space" for layer in single.layers):
        return None
    branch = keras.Model(single.input, single.get_layer("depth_to_space").output, name=f"{single.name}_residual")
    if single is model:
        return branch
    low = keras.Input((None, None, 1), name="low_res_y")
    guesses = [Dihedral(k, inverse=True)(branch(Dihedral(k)(low))) for k in range(8)]
    return keras.Model(low, layers.Average()(guesses), name=f"{model.name}_residual")


def residual_model(model: keras.Model, precision: str = "auto") -> keras.Model:
    """Low-resolution Y -> what `model` adds to bicubic upsampling (any model mapping Y to Y).

    A zoo model's residual branch is run alone (`residual_branch`), so no bicubic image is made only to
    be subtracted again; any other model runs whole, less the bicubic image. "bfloat16" runs the
    convolutions in bfloat16 with float32 weights and everything else in float32, so only the small
    residual is rounded; "auto" picks it where the CPU has bfloat16 units.
    """
    if precision == "auto":
        precision = "bfloat16" if has_bfloat16_units() else "float32"
    if precision not in ("bfloat16", "float32"):
        raise BadInput(f"precision must be auto, bfloat16 or float32, not {precision!r}")
    branch = residual_branch(model)
    if branch is None:
        low = keras.Input((None, None, 1))
        branch = keras.Model(low, layers.Subtract()([model(low), BicubicUpsample(model_scale(model))(low)]))
    return _convolutions_in_bfloat16(branch) if precision == "bfloat16" else branch


class KerasResidual:
    """`zoo.vision.upscale.Residual` in Keras: the residual model built and compiled once (building it
    clones the model in bfloat16 and compiles it anew, too slow to do per photo)."""

    tile = 256  # window 256 + 2 * margin: keeps oneDNN's convolution workspace small

    def __init__(self, model: keras.Model, precision: str = "auto"):
        self.model = model
        self.scale, self.margin = model_scale(model), receptive_radius(model)
        self.compiled = residual_model(model, precision)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return self.compiled.predict_on_batch(y[None, ..., None])[0, ..., 0]  # compiled: twice as fast as eager


def as_residual(model: keras.Model | Residual) -> Residual:
    """A Keras model's residual runtime (built and compiled once), or a runtime's residual as it is."""
    return KerasResidual(model) if isinstance(model, keras.Model) else model


def upscale_image(model: keras.Model, rgb: np.ndarray, tile: int = 256, precision: str = "auto") -> np.ndarray:
    """uint8 RGB -> uint8 RGB upscaled by `model` (`upscale_to_image` in Keras, as an array)."""
    return np.asarray(upscale_to_image(KerasResidual(model, precision), rgb, tile))


def write_onnx(weights: str, path: str, quantized: bool) -> None:
    """The model's residual as an ONNX graph at `path` (int8 convolutions if `quantized`, calibrated on
    the training photos), and `path.json` with its scale and margin, what `onnx_runtime` needs without
    Keras; run in a child process, so that the caller never imports TensorFlow."""
    import json

    from zoo.vision.upscale import onnx_runtime

    model = load(weights, None)
    scale, residual = model_scale(model), residual_model(model, "float32")
    residual(np.zeros((1, 16, 16, 1), np.float32))  # the ONNX exporter wants a model called once
    float_path = Path(path + ".float.onnx" if quantized else path)
    residual.export(str(float_path), format="onnx", verbose=False)
    if quantized:
        lumas = [model_luma(crop) for crop in calibration_crops(None, scale, CALIBRATION_SAMPLES)]
        onnx_runtime.quantize(float_path, Path(path), lumas)
        float_path.unlink()
    info = {"scale": scale, "margin": receptive_radius(model), "weights": str(weights), "quantized": quantized}
    Path(path + ".json").write_text(json.dumps(info) + "\n")


# ------------------------------------------------------------- evaluation


def evaluate_model(model: keras.Model | Residual, photos: dict[str, np.ndarray]) -> dict:
    """Model (a Keras model, or any runtime's `Residual`) and bicubic, side by side, on held-out photos."""
    residual = as_residual(model)
    scale = residual.scale
    per_image = {}
    for name, photo in photos.items():
        high = crop_to_multiple(photo, scale)
        low = downscale(high, scale)
        bicubic = np.asarray(Image.fromarray(low).resize((high.shape[1], high.shape[0]), Image.BICUBIC))
        model_psnr, model_ssim = y_metrics(high, np.asarray(upscale_to_image(residual, low)), scale)
        bicubic_psnr, bicubic_ssim = y_metrics(high, bicubic, scale)
        per_image[name] = {
            "psnr_y": round(model_psnr, 3),
            "ssim_y": round(model_ssim, 4),
            "bicubic_psnr_y": round(bicubic_psnr, 3),
            "bicubic_ssim_y": round(bicubic_ssim, 4),
        }

    def mean(key):
        return float(np.mean([m[key] for m in per_image.values()]))

    return {
        "scale": scale,
        "images": len(per_image),
        "psnr_y": round(mean("psnr_y"), 3),
        "ssim_y": round(mean("ssim_y"), 4),
        "bicubic_psnr_y": round(mean("bicubic_psnr_y"), 3),
        "bicubic_ssim_y": round(mean("bicubic_ssim_y"), 4),
        "gain_db": round(mean("psnr_y") - mean("bicubic_psnr_y"), 3),
        "per_image": per_image,
    }


def evaluate_offline(model: keras.Model | Residual) -> dict:
    """The held-out smooth photos (top level, as always) and the texture set beside them."""
    residual = as_residual(model)  # built once for both sets
    texture = evaluate_model(residual, debian_photos.texture_photos())
    return {**evaluate_model(residual, photo_data.sample_photos("test")), "texture": texture}


def load(weights: str | Path | None, scale: int | None) -> keras.Model:
    """The shipped model for `scale` (default: the card's), or the user's file, whose own scale must agree."""
    model = harness.load_model(registry.resolve_weights("upscale", weights, scale=scale), app="upscale")
    check_scale(weights, model_scale(model), scale)
    return model


# ---------------------------------------------------------- CLI entry points


def train(
    *,
    preset: str,
    epochs: int | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    seed: int,
    scale: int,
    init: str | None,
) -> dict:
    config = dataclasses.replace(PRESETS[preset], scale=scale, data=str(data) if data else None, init=init)
    donor = single_model(load(init, scale)) if init and not resume else None  # a resumed run restores its own
    if donor is not None:
        harness.start_from(build_model(config), donor, init)  # a bad --init fails here, before a run directory
    run = harness.start_run(f"upscale-x{config.scale}", config, out, resume, seed, epochs)
    config = run.config
    train_photos, validation_photos, sources = training_photos(config.data)
    steps = config.epochs * config.steps_per_epoch
    patches = PatchDataset(
        train_photos,
        config.scale,
        config.patch,
        config.batch_size,
        config.steps_per_epoch,
        run.seed,
        workers=config.workers,
        detail_tries=config.detail_tries,
    )
    low, high = PatchDataset(validation_photos, config.scale, config.patch, 64, 1, run.seed + 1, augment=False)[0]
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    with harness.scope():  # a distributed run's model and optimizer are mirrored on every replica
        model = build_model(config)
        if donor is not None:
            print(f"--init {init}: copied " + ", ".join(harness.start_from(model, donor, init)), flush=True)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=config.loss, metrics=[psnr_metric])
    harness.fit(run, model, patches, (low, high), epochs=config.epochs, monitor="val_psnr", mode="max")
    best = harness.best_model(run)
    if config.self_ensemble:  # what ships is then ensemble.keras, and the metrics are its own
        best = self_ensemble(best)
        with atomic_output(run.file("ensemble.keras"), force=True) as tmp:
            best.save(tmp)
    # With --data, the folder's first photo (held out from training) stands in for a test set.
    metrics = evaluate_model(best, {"validation": validation_photos[0]}) if config.data else evaluate_offline(best)
    run.write_metrics({**metrics, "training_sources": sources})
    return {"run": str(run.path), **{k: v for k, v in metrics.items() if k != "per_image"}}


def evaluate(*, weights: str | None, data: Path | None, scale: int | None, runtime: str) -> dict:
    residual = residual_for(weights, scale, runtime)
    if data:
        return {**evaluate_model(residual, photo_data.folder_photos(data, min_side=MIN_SIDE)), "runtime": runtime}
    return {**evaluate_offline(residual), "runtime": runtime}


# ------------------------------------------------------------------ export


def calibration_crops(folder: Path | None, scale: int, count: int) -> list[np.ndarray]:
    """`count` low-resolution uint8 RGB crops, as the model sees photos, that set an int8 model's
    activation ranges: from the training photos, or from the photos in `folder`."""
    photos = list(photo_data.folder_photos(folder, min_side=MIN_SIDE).values()) if folder else training_photos(None)[0]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        low = downscale(photos[i % len(photos)], scale)
        top, left = (rng.integers(0, max(1, n - CALIBRATION_SIDE)) for n in low.shape[:2])
        crops.append(low[top : top + CALIBRATION_SIDE, left : left + CALIBRATION_SIDE])
    return crops


def exportables(model: keras.Model) -> list:
    """One graph: uint8 RGB (N, h, w, 3) -> uint8 RGB (N, s*h, s*w, 3), as `upscale_to_image` computes
    it (bicubic colour planes plus the model's luma residual), the whole image at once and in float32;
    the bicubic is the model's own layer (mirrored edges) where the app uses Pillow's (clamped edges)."""
    from zoo.export import Exportable

    scale = model_scale(model)

    pixels = keras.Input((None, None, 3), dtype="uint8", name="pixels")
    rgb = ops.cast(pixels, "float32")
    y = ops.matmul(rgb / 255.0, _RGB_TO_YCBCR[0][:, None].astype(np.float32)) + float(_YCBCR_OFFSET[0])
    added = residual_model(model, "float32")(y) * _LUMA_RESIDUAL_TO_RGB_LEVELS
    upscaled = BicubicUpsample(scale, name="colour_bicubic")(rgb) + added + 0.5
    graph = keras.Model(pixels, ops.cast(ops.clip(upscaled, 0, 255), "uint8"), name=f"upscale_x{scale}_rgb")
    held_out = photo_data.sample_photos("test")

    def y_psnr(run) -> dict:
        measured = []
        for photo in held_out.values():
            high = crop_to_multiple(photo, scale)
            measured.append(y_metrics(high, run([downscale(high, scale)[None]])[0], scale)[0])
        return {"psnr_y": round(float(np.mean(measured)), 3), "images": len(measured)}

    def calibration(folder: Path | None, count: int):
        return [[crop[None]] for crop in calibration_crops(folder, scale, count)]

    # int8 keeps float where the image itself would be rounded to 256 levels: the first and last
    # convolutions and the sums and products at image level (docs/export.md).
    return [
        Exportable(
            f"upscale_x{scale}",
            graph,
            y_psnr,
            calibration,
            {"scale": scale},
            int8_float_layers=FLOAT_UNDER_INT8,
            int8_float_ops=("ADD", "MUL"),
        )
    ]
