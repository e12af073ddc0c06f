"""`zoo export`: artefacts that agree with Keras, measured again in their own runtime, and clean refusals."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import api, export, registry
from zoo.data.examples import SOURCES
from zoo.data.labelled_images import fashion_mnist
from zoo.errors import BadInput

from conftest import assert_one_line_error

FORMATS = {"saved_model": "classify_sm", "onnx": "classify.onnx"}  # LiteRT: beside its int8 twin below


@pytest.fixture(scope="module")
def classify():
    return api.load("classify")


@pytest.fixture(scope="module")
def fashion_test():
    return fashion_mnist("test")


@pytest.mark.parametrize("export_format", FORMATS)
def test_float_classify_export_agrees_with_keras(export_format, classify, fashion_test, tmp_path):
    output = tmp_path / FORMATS[export_format]
    record = classify.export(export_format, output)
    [graph] = classify.exportables()
    images = fashion_test.images[:64]
    exported = export.load_runner(export_format, output)([images])
    keras_probabilities = np.asarray(graph.model(images))
    assert np.abs(exported - keras_probabilities).max() < 1e-4
    saved = json.loads((tmp_path / (output.name + ".json")).read_text())
    assert saved["app"] == "classify" and len(saved["weights"]["sha256"]) == 64
    measured = saved["graphs"]["classifier"]
    assert measured["class_names"][0] == "T-shirt/top" and measured["inputs"][0]["dtype"] == "uint8"
    assert measured["metrics"]["exported"]["accuracy"] == measured["metrics"]["keras"]["accuracy"] > 0.9
    assert record["graphs"] == saved["graphs"]


def test_litert_classify_float_agrees_and_int8_keeps_its_accuracy(classify, fashion_test, tmp_path):
    float_bytes = classify.export("litert", tmp_path / "float.tflite")["graphs"]["classifier"]["bytes"]
    images = fashion_test.images[:64]
    exported = export.load_runner("litert", tmp_path / "float.tflite")([images])
    assert np.abs(exported - np.asarray(classify.exportables()[0].model(images))).max() < 1e-4
    record = classify.export("litert", tmp_path / "int8.tflite", quantize="int8")
    graph = record["graphs"]["classifier"]
    accuracy = graph["metrics"]["exported"]["accuracy"]
    assert abs(accuracy - graph["metrics"]["keras"]["accuracy"]) <= 0.005  # within half a point
    assert graph["bytes"] < float_bytes / 3


def test_upscale_export_takes_uint8_rgb_and_matches_keras_and_the_app(tmp_path):
    upscale = api.load("upscale", scale=2)
    record = upscale.export("onnx", tmp_path / "x2.onnx")
    low = np.asarray(Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)))
    exported = export.load_runner("onnx", tmp_path / "x2.onnx")([low[None]])[0]
    assert exported.dtype == np.uint8 and exported.shape == (80, 112, 3)

    def psnr(a, b):
        mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
        return np.inf if mse == 0 else 10 * np.log10(255**2 / mse)

    assert psnr(exported, np.asarray(upscale.exportables()[0].model(low[None]))[0]) > 50
    assert psnr(exported[4:-4, 4:-4], np.asarray(upscale(low).image)[4:-4, 4:-4]) > 40  # bicubic edges differ
    measured = record["graphs"]["upscale_x2"]["metrics"]
    assert abs(measured["exported"]["psnr_y"] - measured["keras"]["psnr_y"]) < 0.01


def test_faces_descriptor_export_agrees_with_keras(tmp_path):
    faces = api.load("faces")
    record = faces.export("onnx", tmp_path / "faces.onnx")
    chips = np.random.default_rng(1).integers(0, 256, (3, 150, 150, 3), np.uint8)
    exported = export.load_runner("onnx", tmp_path / "faces.onnx")([chips])
    from zoo.vision.faces.pipeline import embed

    assert np.abs(exported - embed(faces.model, chips)).max() < 1e-4
    measured = record["graphs"]["descriptor"]["metrics"]
    assert measured["exported"] == measured["keras"] and measured["keras"]["pairs"] == 28


def test_recommend_scorer_export_keeps_its_hit_rate(tmp_path):
    record = api.load("recommend").export("onnx", tmp_path / "scorer.onnx")
    measured = record["graphs"]["scorer"]["metrics"]
    assert measured["exported"] == measured["keras"] and measured["keras"]["hr@10"] > 0.6
    assert len(record["graphs"]["scorer"]["items"]) == record["graphs"]["scorer"]["inputs"][0]["shape"][1]


def test_cli_export_and_its_bad_inputs(zoo, tmp_path, monkeypatch):
    output = tmp_path / "c.tflite"
    done = zoo("export", "classify", "--format", "litert", "-o", output, "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["output"] == str(output)
    before = output.read_bytes()
    assert_one_line_error(zoo("export", "classify", "--format", "litert", "-o", output), "already exists", "--force")
    assert output.read_bytes() == before
    assert_one_line_error(zoo("export", "classify", "--format", "coreml", "-o", tmp_path / "m"), "--format coreml")
    assert_one_line_error(
        zoo("export", "classify", "--format", "onnx", "--quantize", "int8", "-o", tmp_path / "q.onnx"),
        "quantisation is for --format litert",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert_one_line_error(
        zoo(
            "export",
            "classify",
            "--format",
            "litert",
            "--quantize",
            "int8",
            "--calibration",
            empty,
            "-o",
            tmp_path / "i.tflite",
        ),
        "no usable samples",
    )
    assert not (tmp_path / "i.tflite").exists() and not (tmp_path / "i.tflite.json").exists()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a)
    )
    assert_one_line_error(
        zoo("export", "classify", "--format", "onnx", "-o", tmp_path / "m.onnx"), "pip install 'keras-zoo[export]'"
    )


def test_an_app_without_a_graph_refuses_in_one_line():
    class Nothing(api.Predictor):
        pass

    from zoo import registry

    with pytest.raises(BadInput, match="has no exportable graph"):
        Nothing(registry.get("upscale"), {}).export("onnx", "x.onnx")


@pytest.fixture(scope="module")
def captioning():
    return api.load("captioning")


def docs_block(after: str) -> str:
    """The first ```python block of docs/export.md after the line containing `after`."""
    text = (Path(__file__).parents[1] / "docs" / "export.md").read_text()
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```\n", start)]


def test_captioning_exports_two_parts_whose_docs_loop_finds_the_apps_captions(captioning, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the docs' loop reads captioning.json and captioning/*.onnx from here
    record = captioning.export("onnx", "captioning")
    assert sorted(p.name for p in (tmp_path / "captioning").iterdir()) == ["decoder_step.onnx", "encoder.onnx"]
    step = record["graphs"]["decoder_step"]
    assert [o["name"] for o in step["outputs"]] == ["attention", "logits"]
    assert step["words"][:4] == ["<pad>", "<unk>", "<start>", "<end>"] and step["max_length"] == 16
    measured = step["metrics"]
    assert measured["exported"] == measured["keras"] and measured["keras"]["images"] == 200
    assert measured["keras"]["seen"]["bleu_4"] > 0.9 and measured["keras"]["unseen"]["bleu_4"] > 0.7
    namespace = {}
    exec(docs_block("Greedy decoding in NumPy and ONNX Runtime"), namespace)
    sources = [s for example in registry.get("captioning").examples for s in example["inputs"]]
    photos = [SOURCES[kind](*arguments)[0] for kind, *arguments in (s.split(":") for s in sources)]
    assert len(photos) == 4 and photos[-1].shape[0] != 224  # three scenes and a photo to crop
    assert [namespace["caption"](p) for p in photos] == [c.caption for c in captioning(photos, beam=1)]
    runner = export.load_runner("onnx", tmp_path / "captioning" / "decoder_step.onnx")
    features = export.load_runner("onnx", tmp_path / "captioning" / "encoder.onnx")([photos[0][None, :48, :48]])
    outputs = runner({"tokens": np.array([[2, 5]], np.int32), "features": features})
    assert list(outputs) == ["attention", "logits"] and outputs["attention"].shape == (1, 36)
    with pytest.raises(TypeError, match="by name"):
        runner([features, np.array([[2]], np.int32)])


def test_captioning_step_in_litert_agrees_with_keras(captioning, tmp_path):
    record = captioning.export("litert", tmp_path / "caption_parts")
    measured = record["graphs"]["decoder_step"]["metrics"]
    assert measured["exported"] == measured["keras"]
    [encoder, step] = captioning.exportables()
    features = np.random.default_rng(0).normal(size=(3, 36, 128)).astype(np.float32)
    tokens = np.array([[2, 5, 7], [2, 9, 4], [2, 6, 6]], np.int32)
    exported = export.load_runner("litert", tmp_path / "caption_parts" / "decoder_step.tflite")
    expected = export.keras_runner(step.model)({"features": features, "tokens": tokens})
    given = exported({"tokens": tokens, "features": features})
    for name in ("logits", "attention"):
        assert np.abs(given[name] - expected[name]).max() < 1e-4


@pytest.mark.parametrize("export_format", ["onnx", "litert"])
def test_music_step_export_scores_held_out_lines_as_keras_does(export_format, tmp_path):
    music = api.load("music")
    output = tmp_path / ("step.onnx" if export_format == "onnx" else "step.tflite")
    measured = music.export(export_format, output)["graphs"]["step"]["metrics"]
    assert measured["keras"]["tokens"] > 1000 and measured["keras"]["perplexity"] < 4
    assert abs(measured["exported"]["nll"] - measured["keras"]["nll"]) < 1e-3
    assert abs(measured["exported"]["next_token_accuracy"] - measured["keras"]["next_token_accuracy"]) < 1e-3
    # The step follows the app's own generator: the same logits and states, a token at a time.
    step = export.load_runner(export_format, output)
    states = {name: np.zeros((2, 256), np.float32) for name in ("h0", "c0", "h1", "c1")}
    generator_states = [np.zeros((2, 256), np.float32) for _ in range(4)]
    heard = np.zeros((2, 3), np.int32)
    for token, position in ((3, 0), (40, 0), (110, 4)):
        tokens, positions = np.full(2, token, np.int32), np.full(2, position, np.int32)
        outputs = step({"token": tokens, "position": positions, "voice_pitches": heard, "voice_gaps": heard, **states})
        logits, generator_states = music.generator.step(tokens, positions, generator_states)
        assert np.abs(outputs["logits"] - logits).max() < 1e-4
        states = {name: outputs[name + "_next"] for name in states}
        assert np.abs(states["c1"] - generator_states[3]).max() < 1e-4


@pytest.mark.parametrize("app", ["captioning", "music"])
def test_a_decoding_step_refuses_calibrated_quantisation_in_one_line(app, zoo, tmp_path):
    output = tmp_path / "q.tflite"
    done = zoo("export", app, "--format", "litert", "--quantize", "int8", "-o", output)
    assert_one_line_error(done, "--quantize int8", "not quantised to int8", "--quantize float16")
    assert not output.exists() and not (tmp_path / "q.tflite.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no scratch folder left either


def test_captioning_parts_go_in_a_folder(zoo, tmp_path):
    assert_one_line_error(
        zoo("export", "captioning", "--format", "onnx", "-o", tmp_path / "c.onnx"),
        "exports encoder and decoder_step into a folder",
    )
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["int8", "int16x8"])
def test_quantised_upscale_keeps_float_y_psnr_within_a_tenth_of_a_db(quantize, tmp_path):
    """int8 keeps the image-level steps in float (all of it in int8 lost 0.127 dB, docs/export.md); int16x8
    keeps 16-bit activations. About a minute each: calibration, 4 photos."""
    record = api.load("upscale", scale=2).export("litert", tmp_path / "x2.tflite", quantize=quantize)
    measured = record["graphs"]["upscale_x2"]["metrics"]
    assert measured["keras"]["psnr_y"] - measured["exported"]["psnr_y"] < 0.1


def test_int8_keeps_the_named_layers_and_operators_in_float(tmp_path):
    """Selective quantisation: the layers and operators an Exportable names stay float, the rest is int8."""
    import keras
    import tensorflow as tf

    pixels = keras.Input((8, 8, 1), name="pixels")
    head = keras.layers.Conv2D(4, 3, padding="same", name="head")(pixels)
    body = keras.layers.Conv2D(4, 3, padding="same", name="body")(head)
    model = keras.Model(pixels, keras.layers.Add()([head, body]))
    samples = [[np.random.default_rng(i).random((1, 8, 8, 1)).astype(np.float32)] for i in range(20)]
    graph = export.Exportable("tiny", model, int8_float_layers=("head",), int8_float_ops=("ADD",))
    options = export._converter_options(dataclasses.replace(graph, calibration=lambda *_: samples), "int8", None)
    export._selectively_quantised(graph, tmp_path / "tiny.tflite", options)
    tensors = tf.lite.Interpreter(str(tmp_path / "tiny.tflite")).get_tensor_details()
    output_types = {t["name"]: t["dtype"] for t in tensors}
    assert any("/head_" in name and dtype == np.float32 for name, dtype in output_types.items())
    assert any("/body_" in name and dtype == np.int8 for name, dtype in output_types.items())
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.tflite"]  # the SavedModel it went through is gone
