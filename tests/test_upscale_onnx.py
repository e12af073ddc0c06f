"""The upscaler in ONNX Runtime (`--runtime onnx` and `onnx-int8`): Keras's pixels without TensorFlow in
the process, tiles that join exactly, int8's cost bounded, and one-line errors."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import api, registry
from zoo.data import photos
from zoo.errors import BadInput
from zoo.vision import upscale

from conftest import assert_one_line_error

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("onnxruntime")  # the export extra, which `make test` installs

CHILD = """
import sys
import numpy as np
from skimage import data
import zoo
upscaled = zoo.load("upscale", runtime="onnx")(data.coffee()[:70, :90])
np.save(sys.argv[1], np.asarray(upscaled.image))
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache of ONNX graphs for the module: each graph is made once (a child process exports it)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_CACHE", str(folder))
        yield folder


def test_onnx_runtime_gives_keras_pixels_and_never_imports_tensorflow(cache, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, tmp_path / "onnx.npy"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]  # neither TensorFlow nor Keras in the upscaling process
    assert len(list((cache / "onnx").glob("upscale-*-float32.onnx"))) == 1  # made once, kept
    from skimage import data

    keras_float32 = upscale.upscale_image(upscale.load(None, 2), data.coffee()[:70, :90], precision="float32")
    differ = np.abs(np.load(tmp_path / "onnx.npy").astype(int) - keras_float32.astype(int))
    assert differ.max() <= 1 and (differ > 0).mean() < 0.01  # the same function, up to 8-bit rounding


def test_onnx_tiles_join_as_the_whole_image(cache):
    from skimage import data

    residual = api.load("upscale", scale=3, runtime="onnx").residual
    rgb = data.coffee()[:70, :90]
    whole = np.asarray(upscale.upscale_to_image(residual, rgb, tile=1000)).astype(int)
    tiled = np.asarray(upscale.upscale_to_image(residual, rgb, tile=16)).astype(int)
    assert tiled.shape == (210, 270, 3) and np.abs(whole - tiled).max() <= 1


def test_a_unit_axis_too_many_in_the_output_gives_the_same_residual(cache, monkeypatch):
    """ONNX Runtime on one CI machine returned the graph's output as (1, 1, H, W, 1), its last squeeze
    dropped: the values are the residual all the same."""
    residual = upscale.residual_for(None, 2, "onnx")
    y = np.random.default_rng(0).random((12, 20), np.float32)
    expected = residual(y)
    session_run = residual.session.run
    monkeypatch.setattr(residual.session, "run", lambda *args: [out[None] for out in session_run(*args)])
    assert expected.shape == (24, 40) and np.array_equal(residual(y), expected)


def test_int8_runtime_costs_under_a_tenth_of_a_db_and_the_card_holds(cache, zoo, tmp_path):
    held_out = photos.sample_photos("test")
    exact = upscale.evaluate_model(upscale.residual_for(None, 2, "onnx"), held_out)
    int8 = upscale.evaluate_model(upscale.residual_for(None, 2, "onnx-int8"), held_out)
    assert abs(exact["gain_db"] - int8["gain_db"]) < 0.1
    assert int8["gain_db"] > 1.5  # still far above bicubic
    card = registry.get("upscale").entry("x2").extra["runtimes"]
    assert exact["psnr_y"] == pytest.approx(card["onnx"]["psnr_y"], abs=0.01)
    assert int8["psnr_y"] == pytest.approx(card["onnx-int8"]["psnr_y"], abs=0.03)  # int8 kernels differ by CPU
    graphs = {p.name.rsplit("-", 1)[1]: p.stat().st_size for p in (cache / "onnx").glob("*.onnx")}
    assert graphs["int8.onnx"] < graphs["float32.onnx"] / 2  # 8-bit weights
    Image.fromarray(held_out["coffee"]).save(tmp_path / "coffee.png")
    result = zoo("evaluate", "upscale", "--data", tmp_path, "--runtime", "onnx-int8", "--json")
    assert result.code == 0, result.err
    assert '"runtime": "onnx-int8"' in result.out and '"gain_db"' in result.out


def test_a_file_that_is_not_an_upscale_model_is_one_line(cache, zoo, tmp_path):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "photo.png")
    other = tmp_path / "not_upscale.keras"
    other.write_bytes(b"not a zip")
    result = zoo("demo", "upscale", tmp_path / "photo.png", "--runtime", "onnx", "--weights", other)
    assert_one_line_error(result, "not_upscale.keras", "could not make its ONNX graph")
    assert not list((cache / "onnx").glob("*.tmp*")) and not (tmp_path / "photo_x2.png").exists()


def test_missing_exporter_names_the_extra(cache, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    other = tmp_path / "small.keras"  # a model whose graph is not cached yet
    upscale.build_model(upscale.Config(features=8, blocks=1)).save(other)
    with pytest.raises(BadInput, match=r"pip install 'keras-zoo\[export\]'"):
        api.load("upscale", weights=other, runtime="onnx")
