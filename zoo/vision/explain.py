"""Open the black box: saliency maps and feature visualisation for the zoo's convolutional models.

Saliency, "which pixels made the model say this?":

- Grad-CAM (Selvaraju et al., ICCV 2017): the feature maps of a convolutional
  layer, weighted by the spatially averaged gradient of the class score with
  respect to them, summed and rectified. Coarse (the layer's resolution), but
  class-specific and robust. Needs class scores: classifiers only.
- Integrated gradients (Sundararajan et al., "Axiomatic Attribution for Deep
  Networks", ICML 2017): the gradient of the score averaged along the straight
  path from a black image to the input, times (input - black). Pixel-sharp, and
  the attributions add up to score(input) - score(black).

Feature visualisation, "what does this unit respond to?" (Olah et al.,
"Feature Visualization", Distill 2017): an image optimised by gradient ascent
to maximise the mean activation of one channel of one layer. Raw pixel ascent
gives high-frequency noise; the regularisers that make it readable are a
decorrelated parameterisation (the image is a DCT spectrum scaled by 1/frequency,
and for colour the channels are mixed by the square root of natural images'
colour covariance), and random jitter and scaling at every step, so only
features that survive small transformations grow.

How an app plugs in: its module defines `explainable(weights=None) -> Explainable`,
giving the model, the function that turns a photo into the model's input, and
class names when the output is class logits; `explained` turns one input into a
typed result (`Explained`: the overlay, the method, the explained label), which
the app's predictor returns from its `explain` method. `classify` does; so:

    zoo.load("classify").explain("shoe.jpg", method="integrated-gradients").save("ig.png")

    zoo explain classify shoe.jpg -o shoe_gradcam.png                  # Grad-CAM of the top class
    zoo explain classify shoe.jpg --method integrated-gradients -o ig.png
    zoo visualize classify --layer stage1_block0_out --channel 5 -o feat.png
    zoo visualize classify --layer stage2_block0_out --channels 16 -o grid.png

For an image-to-image model such as `upscale` (which does not define
`explainable` yet), the score is the mean output over a region: integrated
gradients then show which input pixels an output region depends on, and
feature visualisation works unchanged; Grad-CAM does not apply (no class
scores, no pooled features) and is refused. `integrated_gradients(...,
target=None, region=...)` is that mode, ready for such an app.

Gradients need the backend's autodiff (TensorFlow's GradientTape, jax.grad or
torch.autograd), so this tool, unlike the models, has one small
backend-specific function; the models themselves stay backend-agnostic.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from keras import ops
from PIL import Image

from zoo import api, registry
from zoo.data.images import input_image, save_image
from zoo.errors import BadInput

METHODS = ("gradcam", "integrated-gradients")
MIN_DISPLAY_SIDE = 224  # small inputs (28x28) are enlarged to be seen

# Square root of the colour covariance of natural images (Olah et al.'s Lucid), columns normalised.
_COLOUR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOUR_SQRT /= np.max(np.linalg.norm(_COLOUR_SQRT, axis=0))


@dataclasses.dataclass
class Explainable:
    """What an app hands to these tools."""

    model: keras.Model
    prepare: Callable[[np.ndarray], np.ndarray]  # uint8 RGB photo -> the model's input (H, W, C), float
    labels: list[str] | None = None  # class names when the output is class logits; None for image outputs
    white: float = 255.0  # the input value of white: to show inputs as images and to scale visualisations


def load(app: str, weights: Path | None = None, reference: Path | None = None) -> Explainable:
    """The app's `explainable(weights)`, or a one-line error if the app has none; `reference` is the
    image that a match-scoring app (faces) explains the match with."""
    module = registry.load_module(registry.get(app))
    if not hasattr(module, "explainable"):
        raise BadInput(f"{app}: this app does not expose a model to explain (it defines no explainable())")
    return module.explainable(weights, reference=reference) if reference else module.explainable(weights)


# ---------------------------------------------------------------- gradients


def compiled_gradient(fn: Callable) -> Callable[..., tuple[float, np.ndarray]]:
    """fn(x, *args) (a scalar) -> a function giving (fn's value, its gradient with respect to x).

    Compiled once and reused across calls, with the backend's autodiff. Under TensorFlow the
    tape runs inside a `tf.function` on purpose: in a graph, the gradients of the model's
    weights, which nothing asks for, are pruned. Eager mode computes them all the same, and
    oneDNN's AVX-512 kernel for the weight gradient of a strided 1x1 convolution with fewer
    than 16 input channels crashes the process (oneDNN issue 6035).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def value_and_grad(x, *args):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x, *args)
            return y, tape.gradient(y, x)

        def run(x, *args):
            y, grad = value_and_grad(tf.convert_to_tensor(x), *args)
            return float(y), grad.numpy()

        return run
    if backend == "jax":
        import jax

        jitted = jax.jit(jax.value_and_grad(fn))

        def run(x, *args):
            y, grad = jitted(jax.numpy.asarray(x), *args)
            return float(y), np.asarray(grad)

        return run
    if backend == "torch":
        import torch

        def run(x, *args):
            x = torch.tensor(x, requires_grad=True)
            y = fn(x, *args)
            y.backward()
            return float(y), x.grad.cpu().numpy()

        return run
    raise BadInput(f"KERAS_BACKEND={backend}: explain needs tensorflow, jax or torch")


def value_and_gradient(fn: Callable, x: np.ndarray) -> tuple[float, np.ndarray]:
    """fn(x) (a scalar) and its gradient with respect to x, for a function used once."""
    return compiled_gradient(fn)(x)


def feature_layers(model: keras.Model) -> list[str]:
    """Names of the layers with spatial (N, H, W, C) outputs, input side first."""
    return [
        layer.name
        for layer in model.layers
        if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
    ]


def _layer(model: keras.Model, name: str | None) -> keras.layers.Layer:
    names = feature_layers(model)
    if not names:
        raise BadInput(f"{model.name}: has no convolutional layer to explain")
    name = name or names[-1]
    if name not in names:
        near = ", ".join(names[-6:])
        raise BadInput(f"--layer {name}: not a convolutional layer of {model.name} (e.g. {near})")
    return model.get_layer(name)


def _target_class(explainable: Explainable, pixels: np.ndarray, target: int | str | None) -> int:
    labels = explainable.labels
    if target is None:
        return int(np.argmax(keras.ops.convert_to_numpy(explainable.model(pixels[None], training=False))[0]))
    if isinstance(target, str) and not target.isdigit():
        if target not in labels:
            raise BadInput(f"--target {target}: not a class of this model ({', '.join(labels)})")
        return labels.index(target)
    if not 0 <= int(target) < len(labels):
        raise BadInput(f"--target {target}: class index out of range 0..{len(labels) - 1}")
    return int(target)


# ----------------------------------------------------------------- saliency


def grad_cam(model: keras.Model, pixels: np.ndarray, class_index: int, layer: str | None = None) -> np.ndarray:
    """Grad-CAM of `class_index` for one input (H, W, C): an (H, W) map in [0, 1]."""
    features_layer = _layer(model, layer)
    head = keras.Model(model.input, features_layer.output)
    try:
        tail = keras.Model(features_layer.output, model.output)
    except ValueError:
        raise BadInput(
            f"--layer {features_layer.name}: later layers also read earlier ones (a skip connection "
            f"jumps over it); pick the output of a block"
        ) from None
    features = keras.ops.convert_to_numpy(head(pixels[None], training=False))
    _, grads = value_and_gradient(lambda f: tail(f, training=False)[0, class_index], features)
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((weights * features).sum(axis=-1)[0], 0)
    cam = np.asarray(Image.fromarray(cam.astype(np.float32)).resize(pixels.shape[1::-1], Image.BILINEAR))
    return cam / cam.max() if cam.max() > 0 else cam


def integrated_gradients(
    model: keras.Model,
    pixels: np.ndarray,
    target: int | None,
    steps: int = 32,
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Integrated gradients from a black image: signed attributions (H, W, C) that add up to
    about score(pixels) - score(black).

    `target` is a class index; None scores image outputs by their mean over `region`.
    """

    def score(batch):
        out = model(batch, training=False)
        if target is not None:
            return ops.sum(out[:, target])
        rows, cols = region or (slice(None), slice(None))
        return ops.sum(ops.mean(out[:, rows, cols], axis=(1, 2, 3)))

    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps  # midpoint rule
    path = alphas[:, None, None, None] * pixels[None]
    _, grads = value_and_gradient(score, path.astype(np.float32))
    return grads.mean(axis=0) * pixels


def attribution_map(attributions: np.ndarray) -> np.ndarray:
    """|attributions| summed over channels, as an (H, W) map in [0, 1]."""
    strength = np.abs(attributions).sum(axis=-1)
    top = np.percentile(strength, 99.5)  # a few extreme pixels would wash out the rest
    return np.clip(strength / top, 0, 1) if top > 0 else strength


def saliency(
    explainable: Explainable,
    photo: np.ndarray,
    method: str = "gradcam",
    target: int | str | None = None,
    layer: str | None = None,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(map in [0, 1], the input as the model saw it (uint8 RGB), the explained label)."""
    if method not in METHODS:
        raise BadInput(f"--method {method}: use one of {', '.join(METHODS)}")
    pixels = explainable.prepare(photo).astype(np.float32)
    if explainable.labels is None:
        if method == "gradcam":
            raise BadInput(f"{explainable.model.name}: Grad-CAM needs class scores; use --method integrated-gradients")
        heatmap = attribution_map(integrated_gradients(explainable.model, pixels, None))
        return heatmap, as_image(pixels, explainable.white), None
    class_index = _target_class(explainable, pixels, target)
    heatmap = (
        grad_cam(explainable.model, pixels, class_index, layer)
        if method == "gradcam"
        else attribution_map(integrated_gradients(explainable.model, pixels, class_index))
    )
    return heatmap, as_image(pixels, explainable.white), explainable.labels[class_index]


@dataclasses.dataclass
class Explained(api.Result):
    """A saliency map over one input, drawn over the input as the model saw it."""

    input: str
    method: str
    label: str | None  # the explained class; None for a model with image outputs
    image: Image.Image = api.shown("image", rich=True)

    @property
    def text(self) -> str:
        label = f" for {self.label}" if self.label else ""
        return f"{self.input}: {self.method} map{label} -> {self.output or 'image'}"

    def save(self, path: str | Path, force: bool = False) -> Path:
        self.output = str(save_image(np.asarray(self.image), Path(path), force=force))
        return Path(path)


def explained(
    explainable: Explainable, source, method: str = "gradcam", target: int | str | None = None, layer: str | None = None
) -> Explained:
    """`saliency` of one input (a path, a PIL image or a uint8 array) as a typed result."""
    name, photo = input_image(source)
    heatmap, seen, label = saliency(explainable, photo, method, target, layer)
    return Explained(name, method, label, Image.fromarray(overlay(seen, heatmap)))


# ---------------------------------------------------------------- pictures


def as_image(pixels: np.ndarray, white: float = 255.0) -> np.ndarray:
    """A model input (H, W, 1 or 3) as uint8 RGB."""
    rgb = np.clip(pixels / white * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb[..., :3]


def enlarge(rgb: np.ndarray, min_side: int = MIN_DISPLAY_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor, so 28x28 pixels stay crisp squares."""
    factor = max(1, -(-min_side // min(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def overlay(rgb: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The heatmap in a perceptual colour map over the image, enlarged when small."""
    from matplotlib import colormaps

    rgb = enlarge(rgb)
    heat = np.asarray(Image.fromarray((heatmap * 255).astype(np.uint8)).resize(rgb.shape[1::-1], Image.BILINEAR))
    coloured = colormaps["inferno"](heat / 255.0)[..., :3] * 255.0
    return np.clip((1 - opacity) * rgb + opacity * coloured + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------ feature visualisation


def dct_basis(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n, n): row k is frequency k."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    basis = np.cos(np.pi * (i + 0.5) * k / n) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class DecorrelatedImage:
    """Images as DCT spectra scaled by 1/frequency (and decorrelated colour): x -> pixels in [0, white]."""

    def __init__(self, height: int, width: int, channels: int, white: float, decay: float = 1.0):
        self.rows, self.cols = dct_basis(height), dct_basis(width)
        fy, fx = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
        self.scale = (1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** decay).astype(np.float32)
        self.scale /= self.scale.max()
        self.colour = _COLOUR_SQRT if channels == 3 else np.eye(channels, dtype=np.float32)
        self.shape, self.white = (height, width, channels), white

    def __call__(self, spectrum):
        """spectrum (N, H, W, C) -> pixels (N, H, W, C)."""
        scaled = spectrum * self.scale[None, :, :, None]
        image = ops.einsum("yh,nyxc,xw->nhwc", self.rows, scaled, self.cols)  # inverse DCT, both axes
        image = ops.einsum("nhwc,dc->nhwd", image, self.colour)
        return ops.sigmoid(image) * self.white


def _shift_and_zoom(images, dy, dx, zoom: float):
    """Shift by (dy, dx) pixels (tensors, so one compiled step serves every shift) and zoom by `zoom`,
    back at the original size."""
    height, width = images.shape[1], images.shape[2]
    images = ops.roll(ops.roll(images, dy, axis=1), dx, axis=2)
    if zoom != 1.0:
        size = (max(2, round(height * zoom)), max(2, round(width * zoom)))
        images = ops.image.resize(images, size, interpolation="bilinear")
        images = _fit(images, height, width)
    return images


def _fit(images, height: int, width: int):
    """Centre-crop or edge-pad (N, h, w, C) to (N, height, width, C)."""
    h, w = images.shape[1], images.shape[2]
    if h >= height:
        top, left = (h - height) // 2, (w - width) // 2
        return images[:, top : top + height, left : left + width]
    pad_y, pad_x = height - h, width - w
    return ops.pad(
        images, ((0, 0), (pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2), (0, 0)), mode="symmetric"
    )


def visualize(
    explainable: Explainable,
    layer: str,
    channels: list[int],
    steps: int = 256,
    size: int = 64,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """One image per channel of `layer` that maximises its mean activation: uint8 (N, H, W, 3).

    Models with a fixed input size are visualised at that size; others at `size`.
    """
    model = explainable.model
    target = _layer(model, layer)
    width_of_layer = target.output.shape[-1]
    bad = [c for c in channels if not 0 <= c < width_of_layer]
    if bad:
        raise BadInput(f"--channel {bad[0]}: layer {target.name} has channels 0..{width_of_layer - 1}")
    height, width, depth = (d or size for d in model.input_shape[1:])
    features = keras.Model(model.input, target.output)
    image = DecorrelatedImage(height, width, depth, explainable.white)
    rng = np.random.default_rng(seed)
    spectrum = rng.normal(0, 0.01, (len(channels), height, width, depth)).astype(np.float32)
    picks = np.eye(width_of_layer, dtype=np.float32)[channels]  # image i maximises channel channels[i]
    jitter, scales = max(1, min(height, width) // 16), (0.9, 0.95, 1.0, 1.05, 1.1)

    def objective(params, dy, dx, zoom):
        activations = features(_shift_and_zoom(image(params), dy, dx, zoom), training=False)
        return ops.sum(ops.mean(activations, axis=(1, 2)) * picks)

    # One compiled step per zoom (it fixes the resized shape); the shift is an argument.
    steps_by_zoom = {zoom: compiled_gradient(functools.partial(objective, zoom=zoom)) for zoom in scales}
    # Adam, by hand on a NumPy array: the same few lines under every backend.
    first, second = np.zeros_like(spectrum), np.zeros_like(spectrum)
    for step in range(1, steps + 1):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2).astype(np.int32)
        _, grad = steps_by_zoom[float(rng.choice(scales))](spectrum, dy, dx)
        first = 0.9 * first + 0.1 * grad
        second = 0.999 * second + 0.001 * grad**2
        spectrum += learning_rate * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    pixels = keras.ops.convert_to_numpy(image(spectrum))
    return np.stack([as_image(p, explainable.white) for p in pixels])


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tiles (N, H, W, 3) in a near-square grid on white, each tile enlarged together."""
    count, height, width, _ = images.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(images):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        sheet[top : top + height, left : left + width] = tile
    return sheet
