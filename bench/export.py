"""Latency of each export format against Keras on the same inputs, in one run: classify at batch 1 and 64,
upscale on a 1-megapixel photo at x2. Prints milliseconds (median of --repeats) and the ratio to Keras.

    python bench/export.py [--repeats 20]

Keras runs the same wrapped graph the artefacts were exported from (uint8 in, the app's output out), with
`model(x)` in eager mode, as the predictors call it; the artefacts run in their own runtimes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo import api, export  # noqa: E402
from zoo.data.labelled_images import fashion_mnist  # noqa: E402
from zoo.data.photos import photo  # noqa: E402

OUTPUTS = {"saved_model": "sm", "onnx": "m.onnx", "litert": "m.tflite"}


def median_ms(run, inputs, repeats: int) -> float:
    run(inputs)  # warm-up: graph tracing, allocation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(inputs)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_app(app: str, options: dict, cases: dict, repeats: int, folder: Path) -> None:
    predictor = api.load(app, **options)
    [graph] = predictor.exportables()

    def keras_run(inputs):
        return keras.ops.convert_to_numpy(graph.model(inputs[0], training=False))

    runners = {"keras": keras_run}
    for export_format, name in OUTPUTS.items():
        path = folder / f"{app}_{name}"
        predictor.export(export_format, path, force=True)
        runners[export_format] = export.load_runner(export_format, path)
    path = folder / f"{app}_int8.tflite"
    predictor.export("litert", path, quantize="int8", force=True)
    runners["litert int8"] = export.load_runner("litert", path)
    for case, inputs in cases.items():
        baseline = median_ms(runners["keras"], inputs, repeats)
        row = [f"{app} {case}: keras {baseline:.1f} ms"]
        for name, run in list(runners.items())[1:]:
            took = median_ms(run, inputs, repeats)
            row.append(f"{name} {took:.1f} ms ({took / baseline:.2f}x)")
        print("; ".join(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    images = fashion_mnist("test").images
    megapixel = np.ascontiguousarray(np.tile(photo("astronaut"), (2, 2, 1))[:1000, :1000])  # 1.0 MP of a real photo
    with tempfile.TemporaryDirectory() as tmp:
        bench_app("classify", {}, {"batch 1": [images[:1]], "batch 64": [images[:64]]}, args.repeats, Path(tmp))
        bench_app("upscale", {"scale": 2}, {"1 MP x2": [megapixel[None]]}, max(3, args.repeats // 4), Path(tmp))


if __name__ == "__main__":
    main()
