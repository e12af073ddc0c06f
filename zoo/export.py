"""`zoo export APP`: take a model out of the zoo as a SavedModel, ONNX or LiteRT file, with its numbers
re-measured on the artefact by the artefact's own runtime.

What an app exports is its predictor's business (`Predictor.exportables()`): one or more Keras graphs
that take what a user has (uint8 pixels for the image apps, with the app's colour conversion and
resizing inside the graph) and give the app's natural output (probabilities, the upscaled image, a
face descriptor), each with the function that measures the app's metric given any way to run the
graph. Everything else is here and generic: Keras's own `model.export` writes the artefact (Keras
3.15's `tf_saved_model`, `onnx` and `litert` exporters; `tf2onnx.convert.from_keras` and
`TFLiteConverter.from_keras_model` break on Keras 3), then the artefact is loaded by
`tf.saved_model.load`, ONNX Runtime or the LiteRT interpreter and measured again, beside the Keras
figures, into `PATH.json`. The files are written in a temporary sibling folder and renamed into place,
so a failed export leaves nothing half-written.

Quantisation (LiteRT only): float16 halves the file; int8 (weights and activations) needs a
representative sample, a few hundred of the app's own training inputs by default, or `--calibration DIR`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from zoo import registry
from zoo.errors import BadInput
from zoo.files import check_output_path, sha256_file, write_text_atomic

FORMATS = ("saved_model", "onnx", "litert")
QUANTIZATIONS = ("float16", "int8")
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
RUNTIMES = {"saved_model": "tensorflow", "onnx": "onnxruntime", "litert": "ai-edge-litert"}
NEEDS = {"saved_model": (), "onnx": ("onnx", "tf2onnx", "onnxruntime"), "litert": ("ai_edge_litert",)}
CALIBRATION_SAMPLES = 300

Runner = Callable[[list[np.ndarray]], np.ndarray]  # the graph's inputs (a batch each) -> its first output


@dataclasses.dataclass
class Exportable:
    """One graph an app exports.

    `measure(run)` re-measures the app's metric with any runner (the Keras graph, or the artefact in its
    runtime) and returns a dict of metrics. `calibration(folder, count)` yields input lists for int8
    quantisation: the app's own training inputs when folder is None, else ones read from the folder
    (None for a graph that cannot be quantised to int8). `metadata` travels into PATH.json (class names).
    """

    name: str
    model: object  # keras.Model
    measure: Callable[[Runner], dict] | None = None
    calibration: Callable[[Path | None, int], Iterable[list[np.ndarray]]] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)
    tolerance: str = ""  # how closely the exported output must match Keras's, for the record


def check_request(app: str, export_format: str, quantize: str | None, output: Path, force: bool) -> None:
    """Every check that costs nothing, before the model loads."""
    if export_format not in FORMATS:
        raise BadInput(f"--format {export_format}: choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise BadInput(f"--quantize {quantize}: choose one of {', '.join(QUANTIZATIONS)}")
    if quantize is not None and export_format != "litert":
        raise BadInput(f"--quantize {quantize}: quantisation is for --format litert (LiteRT's converter)")
    missing = [name for name in NEEDS[export_format] if importlib.util.find_spec(name) is None]
    if missing:
        raise BadInput(
            f"--format {export_format} needs the export extra ({', '.join(missing)} missing): "
            "pip install 'keras-zoo[export]'"
        )
    for path in (output, sidecar(output)):
        if path.exists() and not force:
            raise BadInput(f"{path}: already exists (pass --force to overwrite)")
    suffix = SUFFIXES[export_format]
    if suffix and output.suffix not in ("", suffix):
        raise BadInput(f"{output}: a {export_format} export is a {suffix} file (or a folder for several graphs)")
    check_output_path(sidecar(output), force)  # the folder exists and is writable


def sidecar(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def export(
    predictor,
    export_format: str,
    output: str | Path,
    quantize: str | None = None,
    calibration: str | Path | None = None,
    force: bool = False,
) -> dict:
    """Export `predictor`'s graphs to `output`, measure them in their runtime, write `output.json`; the record."""
    output = Path(output)
    check_request(predictor.spec.name, export_format, quantize, output, force)
    if calibration is not None and not Path(calibration).is_dir():
        raise BadInput(f"--calibration {calibration}: not a folder")
    if calibration is not None and quantize != "int8":
        raise BadInput(f"--calibration {calibration}: only int8 quantisation takes calibration samples")
    graphs = predictor.exportables()
    suffix = SUFFIXES[export_format]
    files = (
        {graphs[0].name: output.name + (suffix if not output.suffix else "")}
        if len(graphs) == 1
        else {g.name: g.name + suffix for g in graphs}
    )
    if len(graphs) == 1 and export_format == "saved_model" and output.suffix:
        raise BadInput(f"{output}: a SavedModel is a folder; name it without a suffix")
    parent = output.absolute().parent
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=parent))
    try:
        record = {
            "app": predictor.spec.name,
            "format": export_format,
            "quantize": quantize,
            "weights": _source_weights(predictor),
            "runtime": _runtime_version(export_format),
            "graphs": {},
        }
        for graph in graphs:
            path = scratch / files[graph.name]
            started = time.perf_counter()
            options = _converter_options(graph, quantize, calibration)
            probes = [_probe(t) for t in graph.model.inputs]
            graph.model(probes[0] if len(probes) == 1 else probes)  # the ONNX exporter wants a model called once
            graph.model.export(str(path), format=KERAS_FORMATS[export_format], verbose=False, **options)
            record["graphs"][graph.name] = {
                "file": files[graph.name] if len(graphs) > 1 else (output.name + (suffix if not output.suffix else "")),
                "bytes": _size(path),
                "seconds_to_export": round(time.perf_counter() - started, 1),
                "inputs": [_signature(t) for t in graph.model.inputs],
                "outputs": [_signature(t) for t in graph.model.outputs],
                "metrics": _measured(graph, load_runner(export_format, path)),
                **graph.metadata,
            }
        _move_into_place(scratch, output, files, len(graphs) > 1, force)
        write_text_atomic(sidecar(output), json.dumps(record, indent=2) + "\n", force=True)
        return {**record, "output": str(output), "sidecar": str(sidecar(output))}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measured(graph: Exportable, exported: Runner) -> dict:
    if graph.measure is None:
        return {}
    import keras

    def keras_runner(inputs):
        return keras.ops.convert_to_numpy(graph.model(inputs if len(inputs) > 1 else inputs[0], training=False))

    return {"keras": graph.measure(keras_runner), "exported": graph.measure(exported)}


def _converter_options(graph: Exportable, quantize: str | None, calibration) -> dict:
    if quantize is None:
        return {}
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        return {**options, "target_spec": {"supported_types": [tf.float16]}}
    if graph.calibration is None:
        raise BadInput(f"{graph.name}: int8 quantisation does not apply to this graph (try float16)")
    samples = list(graph.calibration(Path(calibration) if calibration else None, CALIBRATION_SAMPLES))
    if not samples:
        raise BadInput(f"--calibration {calibration}: no usable samples for {graph.name}")
    return {**options, "representative_dataset": lambda: iter(samples)}


def _move_into_place(scratch: Path, output: Path, files: dict, many: bool, force: bool) -> None:
    """One graph: its file (or SavedModel folder) becomes `output`; several: `output` is a folder of them."""
    if output.exists() and force:
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    if many:
        scratch.rename(output)
        scratch.mkdir()  # the caller's clean-up finds an empty folder
    else:
        (scratch / next(iter(files.values()))).rename(output)


def _probe(tensor) -> np.ndarray:
    """Zeros of the input's shape, unknown dimensions set small."""
    return np.zeros(
        [n if n is not None else (1 if i == 0 else 32) for i, n in enumerate(tensor.shape)], dtype=str(tensor.dtype)
    )


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _signature(tensor) -> dict:
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}


def _runtime_version(export_format: str) -> str:
    package = RUNTIMES[export_format]
    return f"{package} {importlib.metadata.version(package)}"


def _source_weights(predictor) -> dict:
    """The weights file the predictor loaded, by the registry's own resolution, and its sha256."""
    spec = predictor.spec
    selectors = {o.name: predictor.options.get(o.name) for o in spec.parameters("demo") if o.selects_weights}
    path = registry.resolve_weights(spec.name, predictor.weights, **selectors)
    return {"file": path.name, "sha256": sha256_file(path)}


# ------------------------------------------------------------------ runtimes


def load_runner(export_format: str, path: Path) -> Runner:
    """The artefact loaded by its own runtime, as a function of a list of input batches."""
    return {"saved_model": _saved_model_runner, "onnx": _onnx_runner, "litert": _litert_runner}[export_format](path)


def _saved_model_runner(path: Path) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: `serve` alone would lose its variables

    def run(inputs):  # one argument: the tensor, or the list of a multi-input graph
        return np.asarray(_first(loaded.serve(inputs[0] if len(inputs) == 1 else inputs)))

    return run


def _onnx_runner(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(None, dict(zip(names, inputs)))[0]


def _litert_runner(path: Path) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))

    def run(inputs):
        details = interpreter.get_input_details()
        for detail, batch in zip(details, inputs):  # the interpreter's inputs take any batch once resized
            interpreter.resize_tensor_input(detail["index"], list(batch.shape))
        interpreter.allocate_tensors()
        for detail, batch in zip(details, inputs):
            interpreter.set_tensor(detail["index"], batch.astype(detail["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


def _first(outputs):
    if isinstance(outputs, dict):
        return next(iter(outputs.values()))
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def batched(run: Runner, inputs: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """`run` over the first axis of `inputs` in batches, outputs concatenated (for measuring on a test set)."""
    count = len(inputs[0])
    return np.concatenate([run([x[i : i + batch_size] for x in inputs]) for i in range(0, count, batch_size)])
