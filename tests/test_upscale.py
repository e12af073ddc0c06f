"""Super-resolution: the bicubic layer, tiling, the shipped weights, the CLI and its bad inputs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error
from zoo import registry
from zoo.vision import upscale


@pytest.fixture(scope="module")
def shipped():
    return {s: upscale.load(None, s) for s in upscale.SCALES}


@pytest.fixture
def photo_file(tmp_path):
    from skimage import data

    path = tmp_path / "rocket.jpg"
    Image.fromarray(data.rocket()[100:160, 200:290]).save(path, quality=95)
    return path


@pytest.mark.parametrize("scale", upscale.SCALES)
def test_bicubic_layer_matches_pillow_away_from_the_border(scale):
    rng = np.random.default_rng(scale)
    image = rng.random((24, 30)).astype(np.float32)
    ours = np.asarray(upscale.BicubicUpsample(scale)(image[None, ..., None]))[0, ..., 0]
    pillow = np.asarray(Image.fromarray(image, "F").resize((30 * scale, 24 * scale), Image.BICUBIC))
    inner = slice(3 * scale, -3 * scale)
    np.testing.assert_allclose(ours[inner, inner], pillow[inner, inner], atol=1e-4)


def test_untrained_model_is_exactly_bicubic():
    model = upscale.build_model(upscale.Config(scale=3, features=8, blocks=1))
    low = np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(low)), np.asarray(upscale.BicubicUpsample(3)(low)), atol=1e-6)


@pytest.mark.parametrize("scale", upscale.SCALES)
def test_tiled_output_equals_whole_image_output(shipped, scale):
    from skimage import data

    rgb = data.coffee()[:70, :90]
    whole = upscale.upscale_image(shipped[scale], rgb, tile=1000)
    tiled = upscale.upscale_image(shipped[scale], rgb, tile=16)
    assert tiled.shape == (70 * scale, 90 * scale, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1  # equal up to 8-bit rounding


def test_colour_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.abs(upscale.ycbcr_to_rgb(upscale.rgb_to_ycbcr(rgb)).astype(int) - rgb).max() <= 1


@pytest.mark.parametrize("scale", upscale.SCALES)
def test_model_card_numbers_are_those_of_the_shipped_file(shipped, scale):
    """`zoo evaluate` on the shipped weights reproduces the card, and beats the issue's targets."""
    entry = registry.get("upscale").entry(f"x{scale}")
    assert registry.sha256_of(registry.resolve_weights("upscale", scale=scale)) == entry.sha256
    assert shipped[scale].count_params() == entry.params
    from zoo.data import photos

    measured = upscale.evaluate_model(shipped[scale], photos.sample_photos("test"))
    assert measured["psnr_y"] == pytest.approx(entry.metrics["psnr_y"], abs=0.01)
    assert measured["ssim_y"] == pytest.approx(entry.metrics["ssim_y"], abs=0.001)
    assert measured["bicubic_psnr_y"] == pytest.approx(entry.baseline["metrics"]["psnr_y"], abs=0.01)
    assert measured["gain_db"] >= {2: 1.5, 3: 1.2, 4: 0.8}[scale]


def test_demo_writes_the_upscaled_photo(zoo, photo_file, tmp_path):
    out = tmp_path / "big.png"
    result = zoo("demo", "upscale", photo_file, "--scale", "3", "-o", out, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["output_size"] == [270, 180]
    assert Image.open(out).size == (270, 180)


def test_demo_many_inputs_into_a_folder(zoo, photo_file, tmp_path):
    second = tmp_path / "second.png"
    Image.open(photo_file).save(second)
    folder = tmp_path / "results"
    folder.mkdir()
    result = zoo("demo", "upscale", photo_file, second, "-o", folder)
    assert result.code == 0, result.err
    assert sorted(p.name for p in folder.iterdir()) == ["rocket_x2.png", "second_x2.png"]


def test_demo_with_weights_from_a_run_directory_takes_their_scale(zoo, photo_file, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(registry.resolve_weights("upscale", "x4").read_bytes())
    result = zoo("demo", "upscale", photo_file, "--weights", run, "-o", tmp_path / "x4.png")
    assert result.code == 0, result.err
    assert Image.open(tmp_path / "x4.png").size == (360, 240)
    assert_one_line_error(zoo("demo", "upscale", photo_file, "--weights", run, "--scale", "2",
                              "-o", tmp_path / "x.png"), "upscales 4x, not 2x")


def test_bad_inputs_are_one_line_errors(zoo, photo_file, tmp_path):
    from test_images import bomb_png, truncated_jpeg

    (tmp_path / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    cases = {
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "is a directory",
        truncated_jpeg(tmp_path): "truncated",
        tmp_path / "notes.jpg": "not an image",
        tmp_path / "dot.png": "too small",
        bomb_png(tmp_path): "decompression-bomb",
    }
    for path, message in cases.items():
        assert_one_line_error(zoo("demo", "upscale", path, "-o", tmp_path / "out.png"), str(path), message)
    assert not (tmp_path / "out.png").exists()


def test_existing_output_is_kept_without_force(zoo, photo_file, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert_one_line_error(zoo("demo", "upscale", photo_file, "-o", out), "already exists", "--force")
    assert out.read_bytes() == b"precious"
    assert zoo("demo", "upscale", photo_file, "-o", out, "--force").code == 0
    assert Image.open(out).size == (180, 120)


def test_unwritable_output_and_bad_weights(zoo, photo_file, tmp_path):
    from test_files import unwritable_folder

    assert_one_line_error(zoo("demo", "upscale", photo_file, "-o", unwritable_folder(tmp_path) / "o.png"), "writ")
    (tmp_path / "bad.keras").write_text("garbage")
    assert_one_line_error(zoo("demo", "upscale", photo_file, "--weights", tmp_path / "bad.keras"),
                          "not a loadable .keras model")


def test_train_then_evaluate_and_demo_with_the_run(zoo, tmp_path, monkeypatch):
    monkeypatch.setitem(upscale.PRESETS, "quick", upscale.Config(epochs=2, steps_per_epoch=2, features=8, blocks=1,
                                                                 patch=16, batch_size=4))
    run = tmp_path / "run"
    result = zoo("train", "upscale", "--out", run, "--scale", "2")
    assert result.code == 0, result.err
    for name in ("config.json", "log.csv", "curves.png", "best.keras", "last.keras", "metrics.json"):
        assert (run / name).exists(), name
    assert len((run / "log.csv").read_text().splitlines()) == 3
    assert zoo("train", "upscale", "--out", run).code == 2  # used directory without --resume
    metrics = json.loads(zoo("evaluate", "upscale", "--weights", run, "--json").out)
    assert metrics["images"] == 4 and abs(metrics["gain_db"]) < 1.0


def test_evaluate_on_a_folder_of_photos(zoo, tmp_path):
    from skimage import data

    Image.fromarray(data.rocket()).save(tmp_path / "rocket.png")
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.jpg")
    (tmp_path / "readme.txt").write_text("not a photo")
    metrics = json.loads(zoo("evaluate", "upscale", "--data", tmp_path, "--json").out)
    assert metrics["images"] == 2 and set(metrics["per_image"]) == {"rocket.png", "astronaut.jpg"}


def test_bsds500_loader_unpacks_the_archive_layout(tmp_path, monkeypatch):
    """The real loader, fed a small archive with BSDS500's layout over file:// (no internet here)."""
    import dataclasses
    import hashlib
    import tarfile

    from skimage import data

    from zoo.data import catalog, photos

    folder = tmp_path / "src" / "BSR" / "BSDS500" / "data" / "images" / "train"
    folder.mkdir(parents=True)
    Image.fromarray(data.coffee()).save(folder / "100075.jpg")
    archive = tmp_path / "BSR_bsds500.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "BSR", arcname="BSR")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    fake = dataclasses.replace(catalog.DATASETS["bsds500"], url=archive.as_uri(),
                               sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    monkeypatch.setitem(catalog.DATASETS, "bsds500", fake)
    loaded = photos.bsds500("train")
    assert list(loaded) == ["100075.jpg"] and loaded["100075.jpg"].shape == (400, 600, 3)


def test_tensorflow_start_up_noise_is_hidden(photo_file, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.endswith("MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "cli.py", "demo", "upscale", photo_file, "-o", tmp_path / "o.png"],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-500:]
