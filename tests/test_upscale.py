"""Super-resolution: the bicubic layer, tiling, the shipped weights, the CLI and its bad inputs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from zoo import registry
from zoo.vision import upscale

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def shipped():
    return {s: upscale.load(None, s) for s in upscale.SCALES}


def require_debian_photos():
    """The lomiri wallpaper packages (the Makefile installs them): skip without, but fail under CI=true."""
    from zoo.data import debian_photos

    missing = [p for p in ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04") if debian_photos.version(p) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Debian packages {missing} missing; under CI=true the texture tests must run, not skip")
        pytest.skip(f"apt-get install {' '.join(missing)}")


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


def test_a_luma_residual_moves_every_colour_plane_alike():
    """What upscale_to_image relies on: adding d to R, G and B adds d * 219/255 to Y and keeps the chroma."""
    rgb = np.random.default_rng(0).integers(0, 200, (16, 16, 3), dtype=np.uint8)
    brighter = upscale.rgb_to_ycbcr(rgb + 20) - upscale.rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(brighter[..., 0] * 255 * upscale._LUMA_RESIDUAL_TO_RGB_LEVELS / 255, 20, atol=1e-3)
    np.testing.assert_allclose(brighter[..., 1:], 0, atol=1e-5)


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


@pytest.mark.parametrize("scale", upscale.SCALES)
def test_model_card_texture_numbers_are_those_of_the_shipped_file(shipped, scale):
    require_debian_photos()
    from zoo.data import debian_photos

    entry = registry.get("upscale").entry(f"x{scale}")
    measured = upscale.evaluate_model(shipped[scale], debian_photos.texture_photos())
    assert measured["psnr_y"] == pytest.approx(entry.metrics["texture_psnr_y"], abs=0.01)
    assert measured["bicubic_psnr_y"] == pytest.approx(entry.baseline["metrics"]["texture_psnr_y"], abs=0.01)
    assert measured["gain_db"] >= 1.0


def test_texture_set_is_held_out_and_detailed():
    require_debian_photos()
    from zoo.data import debian_photos

    texture = debian_photos.texture_photos()
    assert len(texture) == 4 and all(w.shape == (480, 480, 3) for w in texture.values())
    training = {p for package in debian_photos.TRAINING_PACKAGES for p in debian_photos.training_files(package)}
    assert not training & set(debian_photos.TEXTURE)
    assert not {p.name for p in debian_photos.TRAINING_PACKAGES} & set(debian_photos.RESERVED_FOR_EVALUATION)
    whole = debian_photos.read(debian_photos._path(debian_photos.LOMIRI_16, "Dragonfly_by_Bolly.jpg"))
    assert max(whole.shape[:2]) == debian_photos.WORKING_SIDE
    assert upscale.detail(upscale.luma(texture["Dragonfly_by_Bolly"])) > upscale.detail(upscale.luma(whole))


def test_detail_tries_favour_textured_patches():
    rng = np.random.default_rng(0)
    photo = np.full((64, 256, 3), 128, np.uint8)
    photo[:, 128:] = rng.integers(0, 256, (64, 128, 3))  # right half: noise; left half: flat

    def textured_share(tries):
        lows, _ = upscale.PatchDataset([photo], 2, 8, 64, 1, seed=0, detail_tries=tries)[0]
        return float(np.mean(lows.std(axis=(1, 2, 3)) > 0.05))

    assert textured_share(4) > textured_share(1) + 0.2


def test_a_deeper_model_started_from_a_shallower_one_computes_the_same():
    from zoo import harness

    shallow = upscale.build_model(upscale.Config(scale=2, features=8, blocks=1))
    shallow.set_weights([np.random.default_rng(i).normal(0, 0.1, w.shape) for i, w in enumerate(shallow.get_weights())])
    deep = upscale.build_model(upscale.Config(scale=2, features=8, blocks=3))
    assert "block0_a" in harness.start_from(deep, shallow, "shallow")
    low = np.random.default_rng(0).random((1, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(deep(low)), np.asarray(shallow(low)), atol=1e-6)


def test_self_ensemble_of_bicubic_is_bicubic_and_costs_eight_times(tmp_path):
    model = upscale.build_model(upscale.Config(scale=3, features=8, blocks=1))
    ensemble = upscale.self_ensemble(model)
    ensemble.save(tmp_path / "e.keras")
    loaded = upscale.keras.saving.load_model(tmp_path / "e.keras")
    low = np.random.default_rng(0).random((1, 10, 14, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(low)), np.asarray(upscale.BicubicUpsample(3)(low)), atol=1e-6)
    assert upscale.receptive_radius(loaded) == upscale.receptive_radius(model)
    assert upscale.multiply_adds_per_output_pixel(loaded) == 8 * upscale.multiply_adds_per_output_pixel(model)
    assert upscale.single_model(loaded).name == model.name  # what --init copies from


def test_bfloat16_inference_is_within_a_level_or_two_of_float32(shipped):
    from skimage import data

    rgb = data.coffee()[:60, :80]
    single = upscale.upscale_image(shipped[2], rgb, precision="float32").astype(int)
    half = upscale.upscale_image(shipped[2], rgb, precision="bfloat16").astype(int)
    assert np.abs(single - half).max() <= 2 and np.abs(single - half).mean() < 0.2
    with pytest.raises(upscale.BadInput, match="precision"):
        upscale.upscale_image(shipped[2], rgb, precision="int8")


def test_a_model_fresh_from_compile_runs_in_bfloat16_too():
    model = upscale.build_model(upscale.Config(features=8, blocks=1))
    model.compile(optimizer="adam", loss="mean_absolute_error", metrics=[upscale.psnr_metric])
    residual = upscale.residual_model(model, "bfloat16")  # clones the model, compiled state included
    assert residual.predict_on_batch(np.zeros((1, 12, 12, 1), "float32")).shape == (1, 24, 24, 1)


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
    assert_one_line_error(
        zoo("demo", "upscale", photo_file, "--weights", run, "--scale", "2", "-o", tmp_path / "x.png"),
        "upscales 4x, not 2x",
    )


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
    assert_one_line_error(
        zoo("demo", "upscale", photo_file, "--weights", tmp_path / "bad.keras"), "not a loadable .keras model"
    )


def test_train_then_evaluate_and_demo_with_the_run(zoo, tmp_path, monkeypatch):
    monkeypatch.setitem(
        upscale.PRESETS,
        "quick",
        upscale.Config(epochs=2, steps_per_epoch=2, features=8, blocks=1, patch=16, batch_size=4),
    )
    run = tmp_path / "run"
    result = zoo("train", "upscale", "--out", run, "--scale", "2")
    assert result.code == 0, result.err
    for name in ("config.json", "log.csv", "curves.png", "best.keras", "last.keras", "metrics.json"):
        assert (run / name).exists(), name
    assert len((run / "log.csv").read_text().splitlines()) == 3
    assert zoo("train", "upscale", "--out", run).code == 2  # used directory without --resume
    metrics = json.loads(zoo("evaluate", "upscale", "--weights", run, "--json").out)
    assert metrics["images"] == 4 and abs(metrics["gain_db"]) < 1.0
    assert metrics["texture"]["images"] == 4
    assert json.loads((run / "metrics.json").read_text())["training_sources"][0]["files"] == 10


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
    fake = dataclasses.replace(
        catalog.DATASETS["bsds500"], url=archive.as_uri(), sha256=hashlib.sha256(archive.read_bytes()).hexdigest()
    )
    monkeypatch.setitem(catalog.DATASETS, "bsds500", fake)
    loaded = photos.bsds500("train")
    assert list(loaded) == ["100075.jpg"] and loaded["100075.jpg"].shape == (400, 600, 3)


def test_tensorflow_start_up_noise_is_hidden(photo_file, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.endswith("MIN_LOG_LEVEL")}
    done = subprocess.run(
        [sys.executable, "cli.py", "demo", "upscale", photo_file, "-o", tmp_path / "o.png"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-500:]
