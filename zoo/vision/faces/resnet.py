"""dlib's face ResNet rebuilt in Keras 3 from its `.dat` (read by `dlib_format.read_network`).

`build_keras` checks that the layer records spell dlib's face ResNet (a 7x7 stem, residual
units, an average-pooled head and a 128-d projection) and rebuilds it. The architecture is
dlib's `dnn_face_recognition_ex.cpp`:

    unit      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    down unit = relu(avg_pool2x2(x) + affine(con3x3(relu(affine(con3x3/2(x))))))

Two details make it exact. The stride-2 convolutions and the pools have no padding
(dlib pads only stride-1 convolutions, by half the kernel), so at 8x8 the convolution gives
3x3 while the pooled shortcut gives 4x4; and dlib's add zero-pads the smaller tensor at the
high end (bottom, right, extra channels), which `PadAdd` reproduces. Batch norm was already
replaced by fixed affine layers in the file; we fold each affine into the convolution before
it (gamma * (W x + b) + beta = (gamma W) x + (gamma b + beta)), so the Keras model is plain
Conv2D / pooling / Dense layers plus one small custom layer.

`import_dlib` (`zoo faces import-dlib`) writes the converted model where the card's weights
entry says: 22 MB, too big to commit, so it is built on first use.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers as kl
from keras import ops

from zoo import harness, registry
from zoo.errors import BadInput
from zoo.files import atomic_output, check_output_path, sha256_file
from zoo.vision.faces import dlib_format

APP = "faces"
LICENCE = "CC0 / public domain (Davis King, dlib-models)"


def import_dlib(*, source: Path | None, output: Path | None, force: bool) -> dict:
    """Convert dlib's .dat into a .keras file; returns what its card entry records."""
    source = Path(source) if source else dlib_format.installed(dlib_format.NETWORK)
    if not source.is_file():
        raise BadInput(f"{source}: file not found")
    output = Path(output) if output else registry.get(APP).entry().path
    check_output_path(output, force)
    header, records = dlib_format.read_network(source)
    model = build_keras(header, records, str(source))
    with atomic_output(output, force) as tmp:
        model.save(tmp)
    return {
        "file": str(output),
        "sha256_of_weights": harness.weights_sha256(model),
        "params": model.count_params(),
        "source": str(source),
        "source_sha256": sha256_file(source),
        "threshold": round(header["threshold"], 6),
        "licence": LICENCE,
        "text": f"{source} -> {output} ({model.count_params():,} parameters)",
    }


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

    def __init__(self, layers: list[dlib_format.Layer], source: str):
        self.layers, self.i, self.source = layers, 0, source

    def peek(self) -> str | None:
        return self.layers[self.i].kind if self.i < len(self.layers) else None

    def take(self, kind: str) -> dlib_format.Layer:
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


def build_keras(
    header: dict, layers: list[dlib_format.Layer], source: str = "network", name: str = "faces_dlib_resnet"
) -> keras.Model:
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
