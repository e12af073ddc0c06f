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
representative sample, a few hundred of the app's own training inputs by default, or `--calibration DIR`;
int16x8 (LiteRT's 16x8 mode: int8 weights, 16-bit activations, float where an op has no 16-bit kernel)
takes the same sample and keeps what 8-bit activations lose (the upscaler's last tenth of a dB).
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
QUANTIZATIONS = ("float16", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # int8 weights; 8- or 16-bit activations, whose ranges calibration sets
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
RUNTIMES = {"saved_model": "tensorflow", "onnx": "onnxruntime", "litert": "ai-edge-litert"}
NEEDS = {"saved_model": (), "onnx": ("onnx", "tf2onnx", "onnxruntime"), "litert": ("ai_edge_litert",)}
CALIBRATION_SAMPLES = 300


@dataclasses.dataclass
class Exportable:
    """One graph an app exports.

    `measure(run, **parts)` re-measures the app's metric with any `Runner` of this graph (the Keras graph, or
    the artefact in its runtime) and returns a dict of metrics; `parts` are the runners, of the same kind, of
    the graphs named in `uses` (exported before it: a decoder step measured with its encoder).
    `calibration(folder, count)` yields input lists for int8 (and int16x8) quantisation: the app's own
    training inputs when folder is None, else ones read from the folder (None for a graph that cannot be
    quantised so, `no_int8` saying why). `metadata` travels into PATH.json (class names, a vocabulary). A graph
    with several outputs names them (a dict of outputs), as its runners return them.
    """

    name: str
    model: object  # keras.Model
    measure: Callable[..., dict] | None = None
    calibration: Callable[[Path | None, int], Iterable[list[np.ndarray]]] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)
    uses: tuple[str, ...] = ()
    no_int8: str = ""
    int8_float_layers: tuple[str, ...] = ()  # Keras layers kept in float under int8 (selective quantisation)
    int8_float_ops: tuple[str, ...] = ()  # LiteRT operators kept in float under int8 ("ADD", "MUL")


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
    if calibration is not None and quantize not in CALIBRATED:
        raise BadInput(f"--calibration {calibration}: only int8 and int16x8 quantisation take calibration samples")
    graphs = predictor.exportables()
    if quantize in CALIBRATED:  # before any work: a multi-graph export is refused whole
        for graph in graphs:
            if graph.calibration is None:
                why = graph.no_int8 or f"{graph.name}: calibrated quantisation does not apply (try float16)"
                raise BadInput(f"--quantize {quantize}: {why}")
    suffix = SUFFIXES[export_format]
    many = len(graphs) > 1
    if many and output.suffix:
        names = " and ".join(g.name for g in graphs)
        raise BadInput(f"{output}: {predictor.spec.name} exports {names} into a folder; name it without a suffix")
    if export_format == "saved_model" and output.suffix:
        raise BadInput(f"{output}: a SavedModel is a folder; name it without a suffix")
    single = output.name + (suffix if not output.suffix else "")
    files = {g.name: g.name + suffix for g in graphs} if many else {graphs[0].name: single}
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
        runners = {"keras": {}, "exported": {}}  # each graph's, for the measures of the graphs that use it
        for graph in graphs:
            path = scratch / files[graph.name]
            started = time.perf_counter()
            options = _converter_options(graph, quantize, calibration)
            probes = [_probe(t) for t in graph.model.inputs]
            graph.model(probes[0] if len(probes) == 1 else probes)  # the ONNX exporter wants a model called once
            if quantize == "int8" and (graph.int8_float_layers or graph.int8_float_ops):
                _selectively_quantised(graph, path, options)
            else:
                graph.model.export(str(path), format=KERAS_FORMATS[export_format], verbose=False, **options)
            runners["keras"][graph.name] = keras_runner(graph.model)
            runners["exported"][graph.name] = load_runner(export_format, path)
            record["graphs"][graph.name] = {
                "file": files[graph.name],
                "bytes": _size(path),
                "seconds_to_export": round(time.perf_counter() - started, 1),
                "inputs": [_signature(t) for t in graph.model.inputs],
                "outputs": _output_signatures(graph.model),
                "metrics": _measured(graph, runners),
                **graph.metadata,
            }
        _move_into_place(scratch, output, files, many, force)
        write_text_atomic(sidecar(output), json.dumps(record, indent=2) + "\n", force=True)
        return {**record, "output": str(output), "sidecar": str(sidecar(output))}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measured(graph: Exportable, runners: dict[str, dict[str, Runner]]) -> dict:
    if graph.measure is None:
        return {}
    return {
        kind: graph.measure(made[graph.name], **{name: made[name] for name in graph.uses})
        for kind, made in runners.items()
    }


def _converter_options(graph: Exportable, quantize: str | None, calibration) -> dict:
    if quantize is None:
        return {}
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        return {**options, "target_spec": {"supported_types": [tf.float16]}}
    samples = list(graph.calibration(Path(calibration) if calibration else None, CALIBRATION_SAMPLES))
    if not samples:
        raise BadInput(f"--calibration {calibration}: no usable samples for {graph.name}")
    options["representative_dataset"] = lambda: iter(samples)
    if quantize == "int16x8":
        sixteen = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        options["target_spec"] = {"supported_ops": [sixteen, tf.lite.OpsSet.TFLITE_BUILTINS]}
    return options


def _selectively_quantised(graph: Exportable, path: Path, options: dict) -> None:
    """int8 with the graph's `int8_float_layers` and `int8_float_ops` left in float, by LiteRT's
    quantisation debugger (its selective quantisation), converting the graph's SavedModel: a first
    conversion names the layers' operators as the converter sees them, the second keeps them float."""
    import tensorflow as tf

    saved = path.with_name(path.name + ".saved_model")
    graph.model.export(str(saved), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = options["optimizations"]
    converter.representative_dataset = options["representative_dataset"]
    tensors = [t["name"] for t in tf.lite.Interpreter(model_content=converter.convert()).get_tensor_details()]
    # Tensors are named after the Keras layers that made them (".../head_1/convolution"), weights too.
    nodes = [n for n in tensors if any(f"/{layer}_" in n for layer in graph.int8_float_layers)]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=options["representative_dataset"],
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=nodes, denylisted_ops=list(graph.int8_float_ops)
        ),
    )
    path.write_bytes(debugger.get_nondebug_quantized_model())
    shutil.rmtree(saved)


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
        [n if n is not None else (1 if i == 0 else 8) for i, n in enumerate(tensor.shape)], dtype=str(tensor.dtype)
    )


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _signature(tensor, name: str | None = None) -> dict:
    return {"name": name or tensor.name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}


def _output_signatures(model) -> list[dict]:
    """The outputs as the runners name them: by name, in name order, for a graph with several."""
    outputs = _named(model.output)
    return [_signature(outputs[name], name) for name in sorted(outputs)]


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


class Runner:
    """A graph run by its runtime (or by Keras), called with its input batches: a list for a one-input graph,
    or a dict by input name (a graph with several inputs takes them by name only: LiteRT's signature lists
    them by name, not in the graph's order). It returns the graph's only output, or for a graph with several
    a dict of them by name, in name order: the order ONNX Runtime and LiteRT's signature list them."""

    def __init__(self, inputs: list[str], outputs: list[str], call: Callable[[dict], dict]):
        self.inputs, self.outputs = inputs, sorted(outputs)
        self._call = call  # inputs by name -> outputs by name

    def __call__(self, inputs: list[np.ndarray] | dict[str, np.ndarray]):
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1 or len(inputs) != 1:
                raise TypeError(f"this graph takes its inputs by name, a dict of {', '.join(self.inputs)}")
            inputs = {self.inputs[0]: inputs[0]}
        if sorted(inputs) != sorted(self.inputs):
            raise TypeError(f"this graph takes {', '.join(self.inputs)}; given {', '.join(inputs)}")
        outputs = self._call(inputs)
        if len(self.outputs) == 1:
            return np.asarray(next(iter(outputs.values())))
        return {name: np.asarray(outputs[name]) for name in self.outputs}


def load_runner(export_format: str, path: Path) -> Runner:
    """The artefact loaded by its own runtime (a `Runner`)."""
    return {"saved_model": _saved_model_runner, "onnx": _onnx_runner, "litert": _litert_runner}[export_format](path)


def keras_runner(model) -> Runner:
    """The Keras graph as a `Runner`, to measure it the same way as its artefacts."""
    import keras

    names = [tensor.name for tensor in model.inputs]
    outputs = model.output if isinstance(model.output, dict) else {"output_0": model.output}

    def call(inputs):
        given = [inputs[name] for name in names]
        result = model(given if len(given) > 1 else given[0], training=False)
        return {k: keras.ops.convert_to_numpy(v) for k, v in _named(result).items()}

    return Runner(names, list(outputs), call)


def _named(outputs) -> dict:
    """A graph's outputs by name: its own dict, or output_0, output_1, ... (the exporters' names)."""
    if isinstance(outputs, dict):
        return outputs
    return {f"output_{i}": v for i, v in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs])}


def _saved_model_runner(path: Path) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: `serve` alone would lose its variables
    structure = loaded.serve.input_signature  # (spec,) or ([spec, ...],): how `serve` takes its inputs
    names = [spec.name for spec in tf.nest.flatten(structure)]
    outputs = _named(loaded.serve.concrete_functions[0].structured_outputs)

    def call(inputs):
        arguments = tf.nest.pack_sequence_as(structure, [inputs[name] for name in names])
        return {k: v.numpy() for k, v in _named(loaded.serve(*arguments)).items()}

    return Runner(names, list(outputs), call)


def _onnx_runner(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    def call(inputs):
        return dict(zip(outputs, session.run(outputs, inputs)))

    return Runner([i.name for i in session.get_inputs()], outputs, call)


def _litert_runner(path: Path) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    [(key, signature)] = interpreter.get_signature_list().items()
    runner = interpreter.get_signature_runner(key)  # resizes its inputs to each call's batch
    dtypes = {name: detail["dtype"] for name, detail in runner.get_input_details().items()}

    def call(inputs):
        return runner(**{name: np.asarray(batch).astype(dtypes[name]) for name, batch in inputs.items()})

    return Runner(signature["inputs"], signature["outputs"], call)


def batched(run: Runner, inputs: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """`run` over the first axis of `inputs` in batches, outputs concatenated (for measuring on a test set)."""
    count = len(inputs[0])
    return np.concatenate([run([x[i : i + batch_size] for x in inputs]) for i in range(0, count, batch_size)])
