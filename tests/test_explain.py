"""Saliency (Grad-CAM, integrated gradients) and feature visualisation, on small models built here."""

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from zoo.vision import classify, explain, upscale

from conftest import assert_one_line_error


def _quadrant_classifier():
    """Class 0's score is the mean brightness: Grad-CAM must point at the bright pixels."""
    pixels = keras.Input((8, 8, 1))
    features = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="features")(pixels)
    pooled = layers.GlobalAveragePooling2D()(features)
    logits = layers.Dense(2, kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]), name="logits")(pooled)
    return keras.Model(pixels, logits)


def _explainable(model, labels=("bright", "dark")):
    return explain.Explainable(model, lambda rgb: rgb[..., :1].astype(np.float32), list(labels))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.keras"
    classify.build_model(classify.Config(widths=(8, 16), blocks=(1, 1))).save(path)
    return path


@pytest.fixture
def garment(tmp_path):
    image = np.zeros((40, 40), np.uint8)
    image[8:32, 12:28] = 220
    Image.fromarray(image).save(tmp_path / "garment.png")
    return tmp_path / "garment.png"


def test_grad_cam_points_at_what_drives_the_class():
    image = np.zeros((8, 8, 1), np.float32)
    image[:4, :4] = 1.0
    cam = explain.grad_cam(_quadrant_classifier(), image, class_index=0, layer="features")
    assert cam.shape == (8, 8) and cam.max() == pytest.approx(1.0)
    assert cam[:3, :3].min() > 0.9 and cam[5:, 5:].max() < 0.1


def test_integrated_gradients_add_up_to_the_score_difference():
    model = classify.build_model(classify.Config(widths=(8, 16), blocks=(1, 1)))
    pixels = np.random.default_rng(0).uniform(0, 255, (28, 28, 1)).astype(np.float32)
    attributions = explain.integrated_gradients(model, pixels, target=3, steps=64)
    scores = keras.ops.convert_to_numpy(model(np.stack([pixels, np.zeros_like(pixels)]), training=False))[:, 3]
    assert attributions.shape == (28, 28, 1)
    assert attributions.sum() == pytest.approx(scores[0] - scores[1], rel=0.05, abs=1e-3)


def test_integrated_gradients_of_an_image_output_region_stay_near_the_region():
    """For an upscaler, the score is an output region; its attributions sit in the receptive field."""
    model = upscale.build_model(upscale.Config(scale=2, features=4, blocks=1))
    pixels = np.random.default_rng(0).uniform(0.2, 1, (24, 24, 1)).astype(np.float32)
    attributions = np.abs(explain.integrated_gradients(model, pixels, None, region=(slice(0, 8), slice(0, 8))))
    radius = upscale.receptive_radius(model)
    assert attributions[: 4 + radius + 1, : 4 + radius + 1].sum() == pytest.approx(attributions.sum())
    assert attributions[:4, :4].sum() > 0


def test_grad_cam_is_refused_without_class_scores():
    model = upscale.build_model(upscale.Config(scale=2, features=4, blocks=1))
    explainable = explain.Explainable(model, lambda rgb: rgb[..., :1] / 255.0, labels=None, white=1.0)
    photo = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(explain.BadInput, match="Grad-CAM needs class scores"):
        explain.saliency(explainable, photo, "gradcam")
    heatmap, seen, label = explain.saliency(explainable, photo + 100, "integrated-gradients")
    assert heatmap.shape == (16, 16) and seen.shape == (16, 16, 3) and label is None


def test_feature_visualisation_excites_its_channel():
    keras.utils.set_random_seed(0)  # the untrained model's weights: one fixed draw, not whatever the worker had
    model = classify.build_model(classify.Config(widths=(8, 16), blocks=(1, 1)))
    explainable = _explainable(model, classify.class_names(model))
    layer = "stage1_block0_out"
    features = keras.Model(model.input, model.get_layer(layer).output)
    images = explain.visualize(explainable, layer, [2, 5], steps=40)
    assert images.shape == (2, 28, 28, 3) and images.dtype == np.uint8
    start = explain.visualize(explainable, layer, [2, 5], steps=0)

    def activations(rgb):
        return keras.ops.convert_to_numpy(features(rgb[..., :1].astype(np.float32), training=False)).mean(axis=(1, 2))

    after, before = activations(images), activations(start)
    assert after[0, 2] > 2 * before[0, 2] and after[1, 5] > 2 * before[1, 5]
    assert after[0, 2] > after[1, 2] and after[1, 5] > after[0, 5]  # each image excites its own channel most


def test_decorrelated_image_is_smooth_and_in_range():
    basis = explain.dct_basis(16)
    np.testing.assert_allclose(basis @ basis.T, np.eye(16), atol=1e-5)
    image = explain.DecorrelatedImage(16, 16, 3, white=255.0)
    spectrum = np.random.default_rng(0).normal(0, 1, (1, 16, 16, 3)).astype(np.float32)
    pixels = keras.ops.convert_to_numpy(image(spectrum))
    assert pixels.min() >= 0 and pixels.max() <= 255
    white_noise = 255 / (1 + np.exp(-spectrum))

    def roughness(x):
        return np.abs(np.diff(x, axis=1)).mean()

    assert roughness(pixels) < roughness(white_noise) / 2  # 1/f scaling favours low frequencies


def test_grid_layout():
    tiles = np.zeros((5, 4, 4, 3), np.uint8)
    assert explain.grid(tiles, gap=1).shape == (2 * 5 - 1, 3 * 5 - 1, 3)


# --------------------------------------------------------------------- CLI


def _explain_trouser(zoo, garment, out, method, weights):
    """`zoo explain classify GARMENT -o OUT --method METHOD --target Trouser --weights WEIGHTS`."""
    return zoo(
        "explain", "classify", garment, "-o", out, "--method", method, "--target", "Trouser", "--weights", weights
    )


def test_explain_cli_writes_both_maps(zoo, tiny_weights, garment, tmp_path):
    for method in explain.METHODS:
        out = tmp_path / f"{method}.png"
        result = _explain_trouser(zoo, garment, out, method, tiny_weights)
        assert result.code == 0, result.err
        assert "Trouser" in result.out and Image.open(out).size == (224, 224)


def test_predictor_explain_is_what_the_cli_writes(zoo, tiny_weights, garment, tmp_path):
    import zoo as package

    classifier = package.load("classify", weights=tiny_weights)
    for method in explain.METHODS:
        result = classifier.explain(garment, method=method, target="Trouser")
        assert isinstance(result, explain.Explained) and result.to_dict(text=False) == {
            "input": str(garment),
            "method": method,
            "label": "Trouser",
            "output": None,
        }
        out = tmp_path / f"cli-{method}.png"
        assert _explain_trouser(zoo, garment, out, method, tiny_weights).code == 0
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(result.image))
        result.save(tmp_path / f"{method}.png")
        assert result.output == str(tmp_path / f"{method}.png") and result.text.endswith(result.output)
    with pytest.raises(explain.BadInput, match="--method occlusion"):
        classifier.explain(garment, method="occlusion")
    with pytest.raises(explain.BadInput, match="--target Hat"):
        classifier.explain(garment, target="Hat")


def test_visualize_cli_one_channel_and_a_grid(zoo, tiny_weights, tmp_path):
    one = zoo(
        "visualize",
        "classify",
        "--layer",
        "stage1_block0_out",
        "--channel",
        "3",
        "--steps",
        "5",
        "-o",
        tmp_path / "one.png",
        "--weights",
        tiny_weights,
    )
    assert one.code == 0, one.err
    grid = zoo(
        "visualize",
        "classify",
        "--layer",
        "stem_relu",
        "--channels",
        "4",
        "--steps",
        "5",
        "-o",
        tmp_path / "grid.png",
        "--weights",
        tiny_weights,
    )
    assert grid.code == 0, grid.err
    assert Image.open(tmp_path / "grid.png").size[0] > Image.open(tmp_path / "one.png").size[0] // 2


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--layer", "logits", "--channel", "0"], ["--layer logits", "not a convolutional layer"]),
        (["--layer", "stem_relu", "--channel", "99"], ["--channel 99", "channels 0..7"]),
        (["--layer", "stem_relu", "--channel", "1", "--channels", "2"], ["pass one of them"]),
    ],
)
def test_visualize_bad_arguments(zoo, tiny_weights, tmp_path, args, fragments):
    result = zoo("visualize", "classify", *args, "-o", tmp_path / "f.png", "--weights", tiny_weights)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "f.png").exists()


def test_explain_bad_arguments(zoo, tiny_weights, garment, tmp_path):
    out = tmp_path / "m.png"
    assert_one_line_error(
        zoo("explain", "classify", garment, "-o", out, "--target", "Hat", "--weights", tiny_weights),
        "--target Hat",
        "not a class",
    )
    assert_one_line_error(
        zoo("explain", "classify", garment, "-o", out, "--layer", "stage0_pool", "--weights", tiny_weights),
        "--layer stage0_pool",
    )
    assert_one_line_error(zoo("explain", "classify", tmp_path / "missing.png", "-o", out), "missing.png")
    assert_one_line_error(zoo("explain", "upscale", garment, "-o", out), "upscale", "explainable")
    assert not out.exists()


JAX_SIDE = """
import numpy as np
from zoo.vision import classify, explain
config = classify.Config(widths=(8, 16), blocks=(1, 1), batch_size=8)
model = classify.build_model(config)
classify.compile_for_training(model, config, steps=2)
images = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
batches = classify.training_batches(images, np.eye(10, dtype=np.float32)[np.arange(16) % 10], config, seed=0)
assert type(batches).__name__ == "AugmentedBatches"
model.fit(batches, epochs=1, verbose=0, shuffle=False)
target = explain.Explainable(model, lambda rgb: classify.prepare(model, rgb), classify.class_names(model))
photo = np.repeat(images[0], 3, axis=-1)
for method in explain.METHODS:
    heatmap, seen, label = explain.saliency(target, photo, method)
    assert heatmap.shape == (28, 28) and 0 <= heatmap.min() and heatmap.max() <= 1, method
assert explain.visualize(target, "stem_relu", [0, 1], steps=3).shape == (2, 28, 28, 3)
print("ok")
"""


@pytest.mark.jax
def test_training_path_and_tools_run_under_jax():
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", JAX_SIDE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
