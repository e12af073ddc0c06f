"""Read dlib's DNN files (`.dat`) without dlib, and rebuild its face ResNet in Keras 3.

dlib serialises a network (dlib/serialize.h, dlib/dnn/tensor.h, dlib/dnn/core.h) as:

- integers: one control byte (low nibble = number of value bytes, 0x80 = negative),
  then the value bytes, little-endian;
- strings: an integer length, then the bytes;
- scalar floats: two integers, mantissa and exponent (value = mantissa * 2**exponent);
- tensors: version 2, then num_samples, k, nr, nc, then raw little-endian float32;
- the network: the loss layer first, the nested layers' version numbers, the input layer,
  then every layer from the input upwards, each as its name string (`con_4`, `affine_`,
  `relu_`, `max_pool_2`, `avg_pool_2`, `add_prev_`, `fc_2`) and its parameters, followed
  by small bookkeeping fields we skip.

`read_network` turns a file into a list of `Layer` records; `build_keras` checks that the
records spell dlib's face ResNet (a 7x7 stem, residual units, an average-pooled head and a
128-d projection) and rebuilds it. The architecture is dlib's `dnn_face_recognition_ex.cpp`:

    unit      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    down unit = relu(avg_pool2x2(x) + affine(con3x3(relu(affine(con3x3/2(x))))))

Two details make it exact. The stride-2 convolutions and the pools have no padding
(dlib pads only stride-1 convolutions, by half the kernel), so at 8x8 the convolution gives
3x3 while the pooled shortcut gives 4x4; and dlib's add zero-pads the smaller tensor at the
high end (bottom, right, extra channels), which `PadAdd` reproduces. Batch norm was already
replaced by fixed affine layers in the file; we fold each affine into the convolution before
it (gamma * (W x + b) + beta = (gamma W) x + (gamma b + beta)), so the Keras model is plain
Conv2D / pooling / Dense layers plus one small custom layer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers as kl, ops

from zoo.errors import BadInput

LAYER_NAMES = ("con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2")
MAX_GAP = 256  # bookkeeping bytes allowed between two layers (flags, empty gradient tensors)


class _Reader:
    """Sequential reader of dlib's serialisation primitives over a bytes object."""

    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source = data, 0, source

    def fail(self, what: str):
        raise BadInput(f"{self.source}: not a dlib face network file ({what} at byte {self.pos})")

    def int(self) -> int:
        if self.pos >= len(self.data):
            self.fail("unexpected end of file")
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            self.fail("bad integer")
        raw = self.data[self.pos + 1: self.pos + 1 + size]
        if len(raw) != size:
            self.fail("unexpected end of file")
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        specials = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
        return float(specials.get(exponent, mantissa * 2.0**exponent))

    def string(self, limit: int = 64) -> str:
        length = self.int()
        if not 0 <= length <= limit:
            self.fail("bad string")
        text = self.data[self.pos: self.pos + length]
        self.pos += length
        return text.decode("latin-1")

    def tensor(self) -> np.ndarray:
        """A dlib tensor as float32 of shape (num_samples, k, nr, nc)."""
        if self.int() != 2:
            self.fail("unknown tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        if min(shape) < 0 or self.pos + 4 * count > len(self.data):
            self.fail("bad tensor size")
        values = np.frombuffer(self.data, "<f4", count, self.pos).reshape(shape)
        self.pos += 4 * count
        return values.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor: a shape (num_samples, k, nr, nc) into a layer's params."""
        if self.int() != 1:
            self.fail("unknown alias version")
        return tuple(self.int() for _ in range(4))

    def seek_layer(self) -> str | None:
        """Skip bookkeeping up to the next layer name; None at the end of the file."""
        window = self.data[self.pos: self.pos + MAX_GAP]
        hits = [(window.find(bytes([1, len(n)]) + n.encode()), n) for n in LAYER_NAMES]
        hits = [(at, n) for at, n in hits if at >= 0]
        if not hits:
            return None
        at, name = min(hits)
        self.pos += at + 2 + len(name)
        return name


@dataclasses.dataclass
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    weights: tuple[np.ndarray, ...] = ()
    filters: int = 0
    size: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


def _con(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    shape, bias_shape = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    count = int(np.prod(shape))
    if shape[0] != filters or shape[2:] != (nr, nc) or params.size < count + filters:
        r.fail("inconsistent convolution")
    kernel = params[:count].reshape(shape)  # (out, in, nr, nc), cross-correlation as in cuDNN
    return Layer("con", (kernel, params[count: count + filters]), filters, (nr, nc), (sy, sx), (py, px))


def _affine(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    gamma_shape, _ = r.alias(), r.alias()
    r.int()  # mode: 1 = per channel (after a convolution)
    n = int(np.prod(gamma_shape))
    return Layer("affine", (params[:n], params[n: 2 * n]))


def _pool(r: _Reader, kind: str) -> Layer:
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    return Layer(kind, size=(nr, nc), stride=(sy, sx), padding=(py, px))


def _fc(r: _Reader) -> Layer:
    outputs, inputs = r.int(), r.int()
    params = r.tensor().ravel()
    r.alias(), r.alias()
    if params.size < inputs * outputs:
        r.fail("inconsistent fc layer")
    return Layer("fc", (params[: inputs * outputs].reshape(inputs, outputs),), outputs)


def read_network(path: Path) -> tuple[dict, list[Layer]]:
    """({"loss", "margin", "threshold", "input_size", "mean_rgb"}, layers from input to output)."""
    path = Path(path)
    r = _Reader(path.read_bytes(), str(path))
    r.int()  # loss layer version
    if r.string() != "loss_metric_2":
        r.fail("no metric-loss header")
    margin, threshold = r.float(), r.float()
    start = r.data.find(b"\x01\x15input_rgb_image_sized", r.pos, r.pos + 4096)
    if start < 0:
        r.fail("no input_rgb_image_sized layer")
    r.pos = start + 2 + 21
    mean_rgb = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())
    layers = []
    while (name := r.seek_layer()) is not None:
        kind = name.rstrip("_0123456789")
        if kind == "con":
            layers.append(_con(r))
        elif kind == "affine":
            layers.append(_affine(r))
        elif kind in ("max_pool", "avg_pool"):
            layers.append(_pool(r, kind))
        elif kind == "fc":
            layers.append(_fc(r))
        else:
            layers.append(Layer(kind))
    header = {"loss": "loss_metric_2", "margin": margin, "threshold": threshold,
              "input_size": size, "mean_rgb": mean_rgb}
    return header, layers


# ------------------------------------------------------------------ Keras rebuild


@keras.saving.register_keras_serializable(package="zoo")
class PadAdd(kl.Layer):
    """dlib's add_prev: the sum over the larger shape, each input zero-padded at the high end."""

    def call(self, inputs):
        a, b = inputs
        target = [max(a.shape[i], b.shape[i]) for i in (1, 2, 3)]

        def pad(x):
            return ops.pad(x, [(0, 0)] + [(0, t - s) for t, s in zip(target, x.shape[1:])])

        return pad(a) + pad(b)

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (a[0],) + tuple(max(x, y) for x, y in zip(a[1:], b[1:]))


class _Grammar:
    """Walks the layer records in the order dlib's face ResNet must have them."""

    def __init__(self, layers: list[Layer], source: str):
        self.layers, self.i, self.source = layers, 0, source

    def peek(self) -> str | None:
        return self.layers[self.i].kind if self.i < len(self.layers) else None

    def take(self, kind: str) -> Layer:
        if self.peek() != kind:
            raise BadInput(f"{self.source}: not dlib's face ResNet (layer {self.i} is {self.peek()}, expected {kind})")
        self.i += 1
        return self.layers[self.i - 1]


def _conv_affine(g: _Grammar, x, name: str):
    """con followed by affine, folded into one Conv2D with dlib's padding rule."""
    con, affine = g.take("con"), g.take("affine")
    gamma, beta = affine.weights
    kernel, bias = con.weights
    (py, px), (ky, kx) = con.padding, con.size
    if (py, px) not in ((0, 0), (ky // 2, kx // 2)) or ky % 2 == 0:
        raise BadInput(f"{g.source}: convolution padding {con.padding} is not one Keras can express")
    if (py, px) != (0, 0):
        x = kl.ZeroPadding2D(((py, py), (px, px)), name=f"{name}_pad")(x)
    layer = kl.Conv2D(con.filters, con.size, strides=con.stride, padding="valid", name=name)
    x = layer(x)
    layer.set_weights([np.transpose(kernel, (2, 3, 1, 0)) * gamma, bias * gamma + beta])
    return x


def _unit(g: _Grammar, x, name: str):
    y = _conv_affine(g, x, f"{name}_conv1")
    g.take("relu")
    y = kl.ReLU(name=f"{name}_relu1")(y)
    y = _conv_affine(g, y, f"{name}_conv2")
    if g.peek() == "avg_pool":
        pool = g.take("avg_pool")
        x = kl.AveragePooling2D(pool.size, pool.stride, padding="valid", name=f"{name}_pool")(x)
    g.take("add_prev")
    g.take("relu")
    return kl.ReLU(name=f"{name}_out")(PadAdd(name=f"{name}_add")([x, y]))


def build_keras(header: dict, layers: list[Layer], source: str = "network", name: str = "faces_dlib_resnet"):
    """A keras.Model mapping (N, 150, 150, 3) RGB in [0, 255] to dlib's 128-d descriptor."""
    g = _Grammar(layers, source)
    height, width = header["input_size"]
    image = keras.Input((height, width, 3), name="chip_rgb")
    # dlib's input layer: (pixel - mean) / 256, as Normalization with variance 256**2.
    x = kl.Normalization(mean=list(header["mean_rgb"]), variance=[256.0**2] * 3, name="dlib_input")(image)
    x = kl.ReLU(name="stem_relu")(_conv_affine(g, x, "stem_conv"))
    g.take("relu")
    pool = g.take("max_pool")
    x = kl.MaxPooling2D(pool.size, pool.stride, padding="valid", name="stem_pool")(x)
    unit = 0
    while g.peek() == "con":
        x = _unit(g, x, f"unit{unit}")
        unit += 1
    head = g.take("avg_pool")
    if head.size != (0, 0) or unit == 0:
        raise BadInput(f"{source}: not dlib's face ResNet (no global average pool after {unit} units)")
    x = kl.GlobalAveragePooling2D(name="global_pool")(x)
    fc = g.take("fc")
    dense = kl.Dense(fc.filters, use_bias=False, name="descriptor")
    x = dense(x)
    dense.set_weights([fc.weights[0]])
    if g.peek() is not None:
        raise BadInput(f"{source}: not dlib's face ResNet ({len(layers) - g.i} layers after the descriptor)")
    return keras.Model(image, x, name=name)
