"""Image classification: data loaders, the model, training on a class folder, the CLI and its bad inputs."""

import dataclasses
import json

import keras
import numpy as np
import pytest
from PIL import Image

from zoo import limits, registry
from zoo.data import labelled_images
from zoo.errors import BadInput
from zoo.vision import classify

from conftest import assert_one_line_error

TINY = classify.Config(widths=(8, 16), blocks=(1, 1), image_shape=(28, 28, 1))


def _garment(size=28, light_background=False, seed=0):
    """A bright blob on black (Fashion-MNIST's convention), or inverted."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), np.uint8)
    image[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 200 + rng.integers(0, 50)
    return 255 - image if light_background else image


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.keras"
    classify.build_model(TINY).save(path)
    return path


@pytest.fixture
def class_folder(tmp_path):
    """Two classes of mixed sizes and modes: dark squares and bright discs, 12 each."""
    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for name in ("dark", "bright"):
        (root / name).mkdir(parents=True)
        for i in range(12):
            size = int(rng.integers(20, 60))
            value = 40 if name == "dark" else 220
            image = Image.new("RGB", (size, size + i), (value, value // 2, 255 - value))
            image.save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    Image.new("L", (30, 30), 200).save(root / "bright" / "grey.png")  # a greyscale one among colour images
    return root


# ------------------------------------------------------------------- data


def test_fashion_mnist_reads_offline_with_the_right_shapes():
    test = labelled_images.fashion_mnist("test")
    assert test.images.shape == (10000, 28, 28, 1) and test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.class_names[9] == "Ankle boot"


def test_fashion_mnist_falls_back_to_the_hash_checked_download(tmp_path, monkeypatch):
    """Without the Debian package, the pinned download is used; a wrong cached file is refused, not read
    (and fetched again: here, offline, that fails with the by-hand instructions)."""
    from zoo.data import catalog
    from zoo.data.download import DownloadError

    entry = dataclasses.replace(catalog.DATASETS["fashion-mnist"], offline=str(tmp_path / "not-installed"))
    monkeypatch.setitem(catalog.DATASETS, "fashion-mnist", entry)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "datasets" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the real file")
    assert catalog.path("fashion-mnist") == cached.parent
    with pytest.warns(UserWarning, match="does not match 3aede38d"), pytest.raises(DownloadError, match="by hand"):
        labelled_images.fashion_mnist("train")


def test_cifar10_binary_records_are_parsed(tmp_path, monkeypatch):
    from zoo.data import catalog

    folder = tmp_path / "cifar-10-binary" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    records = np.concatenate([np.array([[7], [0], [9]], np.uint8), images.transpose(0, 3, 1, 2).reshape(3, -1)], 1)
    records.tofile(folder / "test_batch.bin")
    monkeypatch.setattr(catalog, "fetch", lambda name: tmp_path / "cifar-10-binary")
    test = labelled_images.cifar10("test")
    np.testing.assert_array_equal(test.images, images)
    assert test.labels.tolist() == [7, 0, 9] and test.class_names[7] == "horse"


def test_idx_reader_rejects_a_wrong_file(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\0\0\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\0" * 10)
    with pytest.raises(BadInput, match="idx header says"):
        labelled_images.read_idx(bad)
    (tmp_path / "y").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(BadInput, match="not an unsigned-byte idx file"):
        labelled_images.read_idx(tmp_path / "y")


def test_class_folder_converts_mixed_sizes_and_modes(class_folder):
    data = labelled_images.class_folder(class_folder, size=24)
    assert data.images.shape == (25, 24, 24, 3)  # colour, because most images are
    assert data.class_names == ("bright", "dark")
    assert np.bincount(data.labels).tolist() == [13, 12]


def test_all_grey_folder_gives_one_channel(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("L", (10 + i, 20), 30 * i).save(tmp_path / name / f"{i}.png")
    assert labelled_images.class_folder(tmp_path, size=16).images.shape == (6, 16, 16, 1)


def test_stratified_split_keeps_every_class_in_both_parts():
    labels = np.array([0] * 90 + [1] * 10 + [2] * 1)
    train, validation = labelled_images.stratified_split(labels, 0.1, seed=0)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(101))
    assert np.bincount(labels[validation], minlength=3).tolist() == [9, 1, 0]  # a lone image stays in training
    assert np.bincount(labels[train]).tolist() == [81, 9, 1]


# ------------------------------------------------------------------ model


def test_model_round_trips_with_its_class_names(tiny_weights):
    from zoo import harness

    model = harness.load_model(tiny_weights)
    assert classify.class_names(model) == list(labelled_images.FASHION_MNIST_CLASSES)
    assert model.get_layer("labels").dark_background
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2, 10)


def test_a_model_trained_on_mirror_images_averages_both_views(tiny_weights):
    from zoo import harness

    model = harness.load_model(tiny_weights)
    assert model.get_layer("labels").mirrored  # TINY keeps the default: trained with flips
    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)
    model.get_layer("labels").mirrored = False
    single = [classify.predict_probabilities(model, view) for view in (x, x[:, :, ::-1])]
    model.get_layer("labels").mirrored = True
    both = classify.predict_probabilities(model, x)
    assert np.allclose(both, (single[0] + single[1]) / 2, atol=1e-6)
    assert not np.allclose(both, single[0], atol=1e-4)  # the mirror view did change something


@pytest.mark.parametrize("backend_path", ["tf.data", "PyDataset"])
def test_training_batches_are_shuffled_augmented_and_keep_their_labels(backend_path):
    """Each label stays with its image through shuffling, flips and shifts; every image comes once an epoch."""
    images = np.zeros((40, 28, 28, 1), np.uint8)
    for i in range(40):
        images[i, 8:20, 8:20] = 100 + 3 * i  # brightness encodes the index, whatever the flip or shift
    targets = np.eye(40, dtype=np.float32)
    config = classify.Config(batch_size=16, augment=("flip", "shift"))
    batches = (
        classify.training_batches(images, targets, config, seed=0)
        if backend_path == "tf.data"
        else classify.AugmentedBatches(images, targets, 16, classify.augmenter(config), seed=0)
    )
    pairs = [
        (np.asarray(x), np.asarray(y))
        for x, y in (batches if backend_path == "tf.data" else (batches[i] for i in range(len(batches))))
    ]
    x = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs]).argmax(axis=-1)
    assert sorted(y.tolist()) == list(range(40)) and y.tolist() != list(range(40))
    assert np.allclose(x.max(axis=(1, 2, 3)), 100 + 3 * y, atol=2)
    assert not np.array_equal(x, images[y].astype(np.float32))  # some were flipped or shifted


def test_random_erasing_fills_a_rectangle_of_some_images():
    images = np.full((32, 28, 28, 1), 100, np.float32)
    erase = classify.augmenter(classify.Config(augment=("erase",), erase_probability=0.5))
    erased = np.asarray(erase(images, training=True))[..., 0]
    changed = erased != 100
    assert 0 < changed.any(axis=(1, 2)).sum() < 32  # some images, not all
    for mask in changed[changed.any(axis=(1, 2))]:
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.mean() > 0.95 and mask.sum() >= 0.02 * 28 * 28  # one filled rectangle, of 2% or more
    assert erased.min() >= 0 and erased.max() <= 255


def test_a_mixed_precision_model_ships_in_float32():
    """bf16 speeds training on CPUs that have it; the file to ship computes in float32 everywhere."""
    from zoo import harness

    with harness.dtype_policy("mixed_bfloat16"):
        mixed = classify.build_model(TINY)
    assert mixed.get_layer("stem_conv").compute_dtype == "bfloat16" and mixed.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored after building
    shipped = harness.in_float32(mixed)
    assert {layer.compute_dtype for layer in shipped.layers} == {"float32"}
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype(np.float32)
    assert np.allclose(shipped.predict(x, verbose=0), mixed.predict(x, verbose=0), atol=0.05)
    assert shipped.get_layer("labels").names == mixed.get_layer("labels").names
    assert harness.in_float32(shipped) is shipped


def test_prepare_matches_the_fashion_mnist_convention(tiny_weights):
    from zoo import harness

    model = harness.load_model(tiny_weights)
    dark = np.repeat(_garment(56)[..., None], 3, axis=-1)
    light = np.repeat(_garment(56, light_background=True)[..., None], 3, axis=-1)
    wide = np.zeros((20, 100, 3), np.uint8)
    for photo in (dark, light):
        pixels = classify.prepare(model, photo)
        assert pixels.shape == (28, 28, 1)
        assert pixels[0, 0, 0] < 10 and pixels[14, 14, 0] > 150  # garment light on black, whichever the photo
    assert classify.prepare(model, wide).shape == (28, 28, 1)


# ------------------------------------------------------------------ train


def test_train_on_a_class_folder_writes_the_run(zoo, class_folder, tmp_path):
    (class_folder / "dark" / "notes.txt").write_text("not an image")
    (class_folder / "bright" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "run"
    result = zoo("train", "classify", "--data", class_folder, "--epochs", "1", "--out", out)
    assert result.code == 0, result.err
    assert "zoo: warning:" in result.err and "skipped 2 unreadable file" in result.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "validation"
    assert set(metrics["per_class_accuracy"]) == {"bright", "dark"}
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["images"] == 2  # a twelfth of each class, or one
    assert Image.open(out / "confusion.png").size[0] > 100
    config = json.loads((out / "config.json").read_text())
    assert config["class_names"] == ["bright", "dark"] and config["image_shape"] == [32, 32, 3]
    assert config["augment"] == ["shift"]  # a folder's default: no flips, which would garble digits or text
    from zoo import harness

    assert not harness.load_model(out / "model.keras").get_layer("labels").mirrored
    fitted = limits.ModelLimits.load(out / limits.LIMITS_FILE)  # what the predictor of this run uses
    assert fitted.temperature > 0 and fitted.gaussians.means.shape[0] == 2
    record = json.loads(zoo("demo", "classify", class_folder / "dark" / "0.jpg", "--weights", out, "--json").out)[0]
    assert set(record["domain"]) == {"in_domain", "score", "threshold"}


def test_presets_give_any_dataset_size_their_optimizer_steps():
    quick, full, long = (classify.PRESETS[name] for name in ("quick", "full", "long"))
    assert [classify.epochs_for(p, 55_000) for p in (quick, full, long)] == [2, 10, 30]  # Fashion-MNIST
    small = classify.epochs_for(quick, 3_667)  # 4,000 images less the validation twelfth
    assert small == 30 and small * -(-3_667 // quick.batch_size) >= quick.steps
    assert classify.epochs_for(quick, 10) == quick.max_epochs


@pytest.mark.parametrize(
    "text, folder, expected",
    [
        (None, False, ("flip",)),
        (None, True, ("shift",)),
        ("none", True, ()),
        ("shift, flip", False, ("shift", "flip")),
    ],
)
def test_augmentations_are_chosen_per_dataset_and_overridable(text, folder, expected):
    assert classify.augmentations(text, ("flip",), folder) == expected


def test_an_unknown_augmentation_is_an_error(zoo, class_folder, tmp_path):
    assert_one_line_error(
        zoo("train", "classify", "--data", class_folder, "--augment", "flip,spin", "--out", tmp_path / "r"),
        "--augment flip,spin",
        "flip, shift",
    )
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------- bad input


def test_empty_class_folder_is_an_error(zoo, class_folder, tmp_path):
    (class_folder / "empty").mkdir()
    assert_one_line_error(
        zoo("train", "classify", "--data", class_folder, "--out", tmp_path / "r"), "empty", "no readable images"
    )
    assert not (tmp_path / "r").exists()


def test_one_class_is_an_error(zoo, tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    assert_one_line_error(
        zoo("train", "classify", "--data", tmp_path, "--out", tmp_path / "r"), "at least two class folders", "'only'"
    )


def test_top_zero_is_an_error(zoo, tiny_weights, tmp_path):
    Image.fromarray(_garment()).save(tmp_path / "g.png")
    assert_one_line_error(
        zoo("demo", "classify", tmp_path / "g.png", "--top", "0", "--weights", tiny_weights), "--top 0"
    )


def test_non_image_input_is_an_error(zoo, tiny_weights, tmp_path):
    (tmp_path / "notes.jpg").write_text("hello")
    assert_one_line_error(
        zoo("demo", "classify", tmp_path / "notes.jpg", "--weights", tiny_weights), "notes.jpg", "not an image"
    )


def test_output_without_explain_is_an_error(zoo, tiny_weights, tmp_path):
    Image.fromarray(_garment()).save(tmp_path / "g.png")
    assert_one_line_error(
        zoo("demo", "classify", tmp_path / "g.png", "-o", tmp_path / "x.png", "--weights", tiny_weights), "--explain"
    )


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "RGBA", "P", "1", "F"])
def test_any_image_mode_and_size_is_converted(zoo, tiny_weights, tmp_path, mode):
    rgb = Image.fromarray(np.repeat(_garment(60, light_background=True)[..., None], 3, axis=-1)).resize((300, 45))
    image = rgb.convert("L").convert(mode) if mode in ("I;16", "1", "F") else rgb.convert(mode)
    path = tmp_path / f"odd.{'tif' if mode in ('CMYK', 'F') else 'png'}"
    image.save(path)
    result = zoo("demo", "classify", path, "--top", "3", "--weights", tiny_weights, "--json")
    assert result.code == 0, result.err
    ranked = json.loads(result.out)[0]["top"]
    assert len(ranked) == 3 and ranked[0]["probability"] >= ranked[1]["probability"] >= ranked[2]["probability"]


# -------------------------------------------------------------------- demo


def test_demo_on_png_files_predicts_what_evaluate_does(zoo, tmp_path):
    """The card's accuracy holds for a user's files: the demo path sees the pixels the evaluation sees."""
    test = labelled_images.fashion_mnist("test")
    paths = [tmp_path / f"{i}.png" for i in range(40)]
    for path, image in zip(paths, test.images):
        Image.fromarray(image[:, :, 0]).save(path)
    result = zoo("demo", "classify", *paths, "--top", "1", "--json")
    assert result.code == 0, result.err
    model = classify.load(None)
    temperature = limits.load_beside("classify", registry.resolve_weights("classify")).temperature
    expected = classify.predict_probabilities(model, test.images[:40], temperature=temperature).argmax(axis=-1)
    assert [r["top"][0]["label"] for r in json.loads(result.out)] == [test.class_names[i] for i in expected]


def test_demo_prints_top_labels_and_writes_grad_cam(zoo, tiny_weights, tmp_path):
    Image.fromarray(_garment(90, light_background=True)).save(tmp_path / "shirt.jpg")
    out = tmp_path / "cam.png"
    result = zoo(
        "demo", "classify", tmp_path / "shirt.jpg", "--top", "20", "--explain", "-o", out, "--weights", tiny_weights
    )
    assert result.code == 0, result.err
    assert result.out.count("%") == 10  # --top larger than the classes: all of them
    assert "(Grad-CAM for " in result.out and str(out) in result.out
    assert Image.open(out).size == (224, 224)
    again = zoo("demo", "classify", tmp_path / "shirt.jpg", "--explain", "-o", out, "--weights", tiny_weights)
    assert_one_line_error(again, "already exists")


def test_predictor_gives_labels_and_the_grad_cam_it_saves(tiny_weights, tmp_path):
    import zoo

    classifier = zoo.load("classify", weights=tiny_weights)
    garment = _garment(56, light_background=True)
    plain, explained = classifier([garment, Image.fromarray(garment)], top=3, explain=True)
    assert [r["label"] for r in plain.top] == list(plain.labels) and len(plain.labels) == 3
    assert list(plain.labels.values()) == sorted(plain.labels.values(), reverse=True)
    assert plain.to_dict()["labels"] == plain.labels and "gradcam" not in plain.to_dict()
    assert np.array_equal(np.asarray(plain.gradcam), np.asarray(explained.gradcam))  # array and PIL: one image
    top = plain.top[0]["label"]  # the overlay is the explain method's Grad-CAM of the top class
    same = classifier.explain(garment, target=classify.class_names(classifier.model).index(top))
    assert same.label == top and np.array_equal(np.asarray(same.image), np.asarray(plain.gradcam))
    plain.save(tmp_path / "cam.png")
    assert plain.output == str(tmp_path / "cam.png") and "Grad-CAM for" in plain.text
    unexplained = classifier(garment)
    assert unexplained.gradcam is None and len(unexplained.top) == 5  # the card's default --top
    with pytest.raises(BadInput, match="explain=True"):
        unexplained.save(tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


# ----------------------------------------------------------- shipped weights


# What each shipped file must keep: the targets for the default (long preset) and the quick
# preset's files; the full preset's file keeps what it measured in its 30-minute budget.
ACCURACY_TARGETS = {"fashion-mnist": 0.94, "fashion-mnist-full": 0.915, "fashion-mnist-quick": 0.90}


@pytest.mark.parametrize("tag", list(ACCURACY_TARGETS))
def test_model_card_numbers_are_those_of_the_shipped_file(tag):
    spec = registry.get("classify")
    entry = spec.entry(tag)
    path = registry.resolve_weights("classify", tag)  # checks the sha256 against the card's
    assert path.stat().st_size < 5_000_000
    measured = classify.evaluate(weights=path, data=None, output=None, force=False)
    assert measured["accuracy"] == pytest.approx(entry.metrics["accuracy"], abs=1e-4)
    assert measured["accuracy"] >= ACCURACY_TARGETS[tag]
    card = entry.extra["limits"]  # the limits shipped beside the file, and what they measured
    assert measured["calibration"] | card["calibration"] == measured["calibration"]
    assert measured["calibration"]["ece_after"] < measured["calibration"]["ece_before"]
    domain = measured["domain"]
    assert (domain["threshold"], domain["auroc"], domain["flagged"]) == (
        card["domain"]["threshold"],
        card["domain"]["auroc"],
        card["domain"]["flagged"],
    )
    assert domain["auroc"]["photos"] >= 0.95  # the target: real photos against Fashion-MNIST


def test_a_photo_is_outside_what_the_model_has_seen_and_still_gets_its_answer(zoo, tmp_path):
    from zoo.data.photos import photo

    Image.fromarray(photo("chelsea")).save(tmp_path / "cat.png")
    result = zoo("demo", "classify", tmp_path / "cat.png", "--top", "1")
    assert result.code == 0, result.err
    answer, note = result.out.strip().splitlines()
    assert answer.startswith(f"{tmp_path / 'cat.png'}: ") and "%" in answer  # still the answer
    assert "outside what the model has seen" in note and "--weights imagenet" in note and "--data" in note
    record = json.loads(zoo("demo", "classify", tmp_path / "cat.png", "--json").out)[0]
    assert record["domain"]["in_domain"] is False and record["domain"]["score"] < record["domain"]["threshold"]


def test_fashion_mnist_test_images_get_no_note_95_percent_of_the_time():
    import zoo

    test = labelled_images.fashion_mnist("test")
    picked = np.random.default_rng(0).choice(len(test), 400, replace=False)
    results = zoo.load("classify")([image[:, :, 0] for image in test.images[picked]], top=1)
    assert np.mean([r.note is None and r.domain.in_domain for r in results]) >= 0.95


@pytest.mark.slow
def test_quick_preset_reaches_90_percent(zoo, tmp_path):
    result = zoo("train", "classify", "--preset", "quick", "--out", tmp_path / "quick")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "quick" / "metrics.json").read_text())["accuracy"] >= 0.90


# ------------------------------------------------------------ transfer learning


def test_a_saved_model_is_a_backbone_for_another_folder(zoo, class_folder, tiny_weights, tmp_path):
    """The tiny Fashion-MNIST-shaped model (28x28 grey) as the backbone of an RGB two-class folder:
    images converted to its input, its features frozen for the head, then fine-tuned."""
    from zoo import harness

    out = tmp_path / "run"
    result = zoo("train", "classify", "--data", class_folder, "--backbone", tiny_weights, "--epochs", "1", "--out", out)
    assert result.code == 0, result.err
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == str(tiny_weights) and config["image_shape"] == [28, 28, 1]
    trained = harness.load_model(out / "model.keras")
    original = harness.load_model(tiny_weights)
    assert classify.class_names(trained) == ["bright", "dark"]
    before = original.get_layer("stem_conv").get_weights()[0]
    after = trained.get_layer("backbone").get_layer("stem_conv").get_weights()[0]
    assert before.shape == after.shape and not np.allclose(before, after)  # fine-tuned, not only the head


@pytest.mark.parametrize(
    "backbone, fragments",
    [
        ("resnet9000", ["--backbone resnet9000", "neither one of efficientnetb0"]),
        ("upscale", ["has no global pooling"]),
    ],
)
def test_a_backbone_that_is_no_feature_extractor_is_an_error(zoo, class_folder, tmp_path, backbone, fragments):
    from zoo import registry

    spec = str(registry.resolve_weights("upscale", "x2")) if backbone == "upscale" else backbone
    assert_one_line_error(
        zoo("train", "classify", "--data", class_folder, "--backbone", spec, "--out", tmp_path / "r"), *fragments
    )
    assert not (tmp_path / "r").exists()


def test_an_imagenet_backbone_offline_names_the_file_to_place(tmp_path, monkeypatch):
    """Offline, the error says which file to put where in the zoo's cache."""
    from zoo.data.download import DownloadError
    from zoo.vision import backbones

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    offline = dataclasses.replace(backbones.APPLICATIONS["mobilenetv3small"], folder="http://127.0.0.1:9/")
    monkeypatch.setitem(backbones.APPLICATIONS, "mobilenetv3small", offline)
    with pytest.raises(DownloadError) as error:
        backbones.feature_extractor("mobilenetv3small", 96)
    assert f"save it as {tmp_path / 'models' / offline.files[1]} (md5 {offline.checksums[1]})" in str(error.value)


@pytest.fixture
def imagenet_mirror(tmp_path, monkeypatch):
    """MobileNetV3Small's ImageNet files as they would come from Keras's server, from one on 127.0.0.1:
    the architecture with random weights (the real ones cannot be had offline) and a class index."""
    import hashlib
    import http.server
    import threading

    from zoo.vision import backbones

    model = keras.applications.MobileNetV3Small(weights=None, classifier_activation=None)
    model.save_weights(tmp_path / "top.weights.h5")
    index = {str(i): [f"n{i:08d}", f"thing_{i}"] for i in range(1000)}
    files = {
        "/top.weights.h5": (tmp_path / "top.weights.h5").read_bytes(),
        "/imagenet_class_index.json": json.dumps(index).encode(),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    application = backbones.APPLICATIONS["mobilenetv3small"]
    monkeypatch.setitem(
        backbones.APPLICATIONS,
        "mobilenetv3small",
        dataclasses.replace(
            application,
            folder=url,
            files=("top.weights.h5", application.files[1]),
            checksums=(md5["/top.weights.h5"], application.checksums[1]),
        ),
    )
    monkeypatch.setattr(classify, "IMAGENET_CLASS_INDEX", url + "imagenet_class_index.json")
    monkeypatch.setattr(classify, "IMAGENET_CLASS_INDEX_MD5", md5["/imagenet_class_index.json"])
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    yield model
    server.shutdown()
    server.server_close()


def test_imagenet_weights_download_once_and_classify_a_photo_into_1000_classes(zoo, imagenet_mirror, tmp_path):
    from zoo.data.photos import photo

    Image.fromarray(photo("chelsea")).save(tmp_path / "cat.png")
    result = zoo(
        "demo", "classify", tmp_path / "cat.png", "--weights", "imagenet-mobilenetv3small", "--top", "2", "--json"
    )
    assert result.code == 0, result.err
    record = json.loads(result.out)[0]
    expected = imagenet_mirror.predict(classify.imagenet_pixels(photo("chelsea"))[None], verbose=0)[0]
    assert [r["label"] for r in record["top"]] == [f"thing {i}" for i in np.argsort(-expected)[:2]]
    assert record["domain"] is None and record["note"] is None  # photos of everything: no domain check
    assert (tmp_path / "cache" / "models" / "top.weights.h5").exists()


def test_imagenet_weights_offline_say_which_file_to_place_where(zoo, tmp_path, monkeypatch):
    from zoo.vision import backbones

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    offline = dataclasses.replace(backbones.APPLICATIONS["efficientnetv2b0"], folder="http://127.0.0.1:9/")
    monkeypatch.setitem(backbones.APPLICATIONS, "efficientnetv2b0", offline)
    Image.new("RGB", (64, 64)).save(tmp_path / "grey.png")
    result = zoo("demo", "classify", tmp_path / "grey.png", "--weights", "imagenet")
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1, result.err
    assert f"save it as {tmp_path / 'models' / 'efficientnetv2-b0.h5'} (md5 {offline.checksums[0]})" in lines[0]
    assert_one_line_error(
        zoo("demo", "classify", tmp_path / "grey.png", "--weights", "imagenet-resnet9"),
        "imagenet-resnet9",
        "efficientnetv2b0",
    )
