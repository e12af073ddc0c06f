"""The upscaler's residual in ONNX Runtime (`zoo demo upscale --runtime onnx`): the same function as the
Keras runtime, in float32, and this process never imports Keras or TensorFlow, which is what lets a
12-megapixel photo upscale in well under 1 GiB (TensorFlow alone holds 817 MB); on this project's 2-core
CPU it is also the faster of the two (`python bench/upscale_12mp.py`).

`--runtime onnx-int8` runs the convolutions in 8-bit integers (`quantize`): about 1.7 times faster
again, for a few hundredths of a dB (measured by `zoo evaluate upscale --runtime onnx-int8`).

The ONNX graph is made once per weights file by Keras's own exporter (`model.write_onnx`) in a child
process, and cached under the file's sha256 (`$ZOO_CACHE/onnx/`), beside the scale and margin it needs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from zoo import registry
from zoo.data.download import cache_dir
from zoo.errors import BadInput
from zoo.vision.upscale import FLOAT_UNDER_INT8, check_scale

MAKE_GRAPH = """
import sys
from zoo.vision.upscale import model
try:
    model.write_onnx(sys.argv[1], sys.argv[2], quantized=sys.argv[3] == "int8")
except Exception as error:  # its one line becomes the parent's BadInput
    sys.exit(str(error))
"""


def cached_graph(weights: Path, quantized: bool) -> Path:
    """The ONNX graph of `weights`' residual, made now (in a child process) unless cached."""
    kind = "int8" if quantized else "float32"
    graph = cache_dir() / "onnx" / f"upscale-{registry.sha256_of(weights)[:16]}-{kind}.onnx"
    if graph.exists() and Path(f"{graph}.json").exists():
        return graph
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("tf2onnx") is None:
        raise BadInput(
            "--runtime onnx makes the model's ONNX graph once, with the export extra's onnx and tf2onnx: "
            "pip install 'keras-zoo[export]'"
        )
    graph.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=graph.parent) as scratch:
        made = Path(scratch) / graph.name
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                MAKE_GRAPH,
                str(weights),
                str(made),
                kind,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["no message"])[-1]
            raise BadInput(f"{weights}: could not make its ONNX graph: {last}")
        Path(f"{made}.json").rename(f"{graph}.json")  # the graph last: its presence means both are there
        made.rename(graph)
    return graph


class OnnxResidual:
    """`zoo.vision.upscale.Residual` in ONNX Runtime, one session for every call."""

    tile = 512  # bigger tiles than Keras's: less margin recomputed, and ONNX Runtime's workspace stays small

    def __init__(self, graph: Path):
        import onnxruntime

        info = json.loads(Path(f"{graph}.json").read_text())
        self.scale, self.margin = info["scale"], info["margin"]
        self.session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, y: np.ndarray) -> np.ndarray:
        (residual,) = self.session.run(None, {self.input_name: y[None, ..., None]})
        # Reshaped, not indexed: the one-channel output can come back with a unit axis too many. On one
        # CI machine it was (1, 1, H, W, 1), as if the graph's last squeeze (tf2onnx's NCHW->NHWC as
        # reshapes) were lost; not reproduced here. The values are the same in either layout.
        return residual.reshape(y.shape[0] * self.scale, y.shape[1] * self.scale)


def quantize(float_graph: Path, output: Path, lumas: list[np.ndarray]) -> None:
    """`float_graph` with int8 convolutions (per-channel weights; uint8 activations, the kind x86 CPUs
    multiply fastest, with VNNI) calibrated on `lumas`, the model's inputs.

    Three choices, each measured once on the x2 model's held-out sets against the alternative (smooth /
    texture Y-PSNR against float; throwaway variants of this function, not kept):
    the first and last convolutions stay float, where the image itself would be rounded to 256
    levels (-0.036 / -0.106 dB with them quantised, for 1.5% of the work); each activation's range
    is its 99.999th percentile rather than its extremes, so one outlier does not coarsen every step
    (min-max: -0.027 / -0.112 dB; percentile: -0.020 / -0.023 dB); and weights take 7 bits
    (`reduce_range`), which CPUs without VNNI need, their 8-bit multiply-add saturating 16-bit sums
    (ONNX Runtime's advice for them; on this VNNI CPU: -0.010 / -0.028 dB, and as fast).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Lumas(CalibrationDataReader):
        def __init__(self, name: str):
            self.feeds = iter([{name: y[None, ..., None]} for y in lumas])

        def get_next(self):
            return next(self.feeds, None)

    prepared = output.with_suffix(".prepared.onnx")
    quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=True)
    nodes = onnx.load(str(prepared)).graph
    ends = [n.name for n in nodes.node if n.op_type == "Conv" and any(layer in n.name for layer in FLOAT_UNDER_INT8)]
    quantize_static(
        str(prepared),
        str(output),
        Lumas(nodes.input[0].name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=ends,
        reduce_range=True,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={"CalibPercentile": 99.999},
    )
    prepared.unlink()


def residual_for(weights: str | Path | None, scale: int | None, quantized: bool) -> OnnxResidual:
    if importlib.util.find_spec("onnxruntime") is None:
        raise BadInput("--runtime onnx needs ONNX Runtime: pip install 'keras-zoo[export]'")
    residual = OnnxResidual(cached_graph(registry.resolve_weights("upscale", weights, scale=scale), quantized))
    check_scale(weights, residual.scale, scale)
    return residual
