"""`zoo export`: artefacts that agree with Keras, measured again in their own runtime, and clean refusals."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from zoo import api, export
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
