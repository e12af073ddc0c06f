"""Latency of each export format against Keras on the same inputs, in one run: classify at batch 1 and 64,
upscale on a 1-megapixel photo at x2, and one decoding step of captioning (8 words so far) and music, at
batch 1. Prints milliseconds (median of --repeats) and the ratio to Keras.

    python bench/export.py [--repeats 20] [--apps classify,upscale,captioning,music]

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

import numpy as np  # noqa: E402

from zoo import api, export  # noqa: E402
from zoo.data.labelled_images import fashion_mnist  # noqa: E402
from zoo.data.photos import photo  # noqa: E402

OUTPUTS = {"saved_model": "sm", "onnx": "m.onnx", "litert": "m.tflite"}
STATES = ("h0", "c0", "h1", "c1")  # music's LSTM states


def median_ms(run, inputs, repeats: int) -> float:
    run(inputs)  # warm-up: graph tracing, allocation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(inputs)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_app(app: str, options: dict, graph: str, cases: dict, repeats: int, folder: Path, int8: bool) -> None:
    """`graph` of `app` in Keras and in each format (and int8 LiteRT where the app takes it) on `cases`."""
    predictor = api.load(app, **options)
    graphs = predictor.exportables()
    [exportable] = [g for g in graphs if g.name == graph]
    runners = {"keras": export.keras_runner(exportable.model)}
    quantisations = [(f, None) for f in OUTPUTS] + ([("litert", "int8")] if int8 else [])
    for export_format, quantize in quantisations:
        path = folder / f"{app}_{quantize or ''}{OUTPUTS[export_format]}"
        predictor.export(export_format, path, quantize=quantize, force=True)
        part = path / f"{graph}{export.SUFFIXES[export_format]}" if len(graphs) > 1 else path
        runners[export_format + (f" {quantize}" if quantize else "")] = export.load_runner(export_format, part)
    for case, inputs in cases.items():
        baseline = median_ms(runners["keras"], inputs, repeats)
        row = [f"{app} {case}: keras {baseline:.1f} ms"]
        for name, run in list(runners.items())[1:]:
            took = median_ms(run, inputs, repeats)
            row.append(f"{name} {took:.{1 if took >= 1 else 2}f} ms ({took / baseline:.2g}x)")
        print("; ".join(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--apps", default="classify,upscale,captioning,music")
    args = parser.parse_args()
    apps = args.apps.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "classify" in apps:
            images = fashion_mnist("test").images
            cases = {"batch 1": [images[:1]], "batch 64": [images[:64]]}
            bench_app("classify", {}, "classifier", cases, args.repeats, Path(tmp), int8=True)
        if "upscale" in apps:
            megapixel = np.ascontiguousarray(np.tile(photo("astronaut"), (2, 2, 1))[:1000, :1000])  # 1.0 MP, real
            cases = {"1 MP x2": [megapixel[None]]}
            bench_app("upscale", {"scale": 2}, "upscale_x2", cases, max(3, args.repeats // 4), Path(tmp), int8=True)
        if "captioning" in apps:
            features = np.random.default_rng(0).normal(size=(1, 36, 128)).astype(np.float32)
            step = {"features": features, "tokens": np.array([[2, 4, 5, 6, 7, 8, 9, 10]], np.int32)}
            bench_app("captioning", {}, "decoder_step", {"step, 8 words": step}, args.repeats, Path(tmp), int8=False)
        if "music" in apps:
            one = np.zeros(1, np.int32)
            step = {"token": one, "position": one, "voice_pitches": np.zeros((1, 3), np.int32)}
            step |= {"voice_gaps": step["voice_pitches"], **{s: np.zeros((1, 256), np.float32) for s in STATES}}
            bench_app("music", {}, "step", {"step, batch 1": step}, args.repeats, Path(tmp), int8=False)


if __name__ == "__main__":
    main()
