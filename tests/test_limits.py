"""zoo.limits: calibration (ECE, reliability, temperature scaling) and out-of-domain scores, on
synthetic data whose right answers are known."""

import numpy as np
import pytest
from PIL import Image

from zoo import limits


def _overconfident(n=6000, classes=5, sharpen=3.0, seed=0):
    """Labels drawn from softmax(true logits): calibrated by construction; the model's logits are
    the true ones times `sharpen`, so T = sharpen undoes it."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1.5, (n, classes))
    probabilities = limits.softmax(true)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return true * sharpen, labels


def test_softmax_averages_views_and_divides_by_the_temperature():
    logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    assert np.allclose(limits.softmax(logits).sum(axis=-1), 1)
    assert np.allclose(limits.softmax(np.stack([logits, logits[:, ::-1]])), 0.5)  # two opposed views
    assert limits.softmax(logits, 2.0)[0, 0] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_temperature_scaling_recovers_the_overconfidence_and_lowers_the_ece():
    logits, labels = _overconfident()
    temperature = limits.fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    report = limits.calibration_report(logits, labels, temperature)
    assert report["ece_before"] > 0.1 and report["ece_after"] < 0.03
    assert report["nll_after"] < report["nll_before"]
    assert report["accuracy_after"] == pytest.approx(np.mean(logits.argmax(-1) == labels), abs=1e-4)  # ranks kept


def test_reliability_bins_hold_every_prediction_and_an_exact_model_has_no_gap():
    probabilities = np.array([[0.95, 0.05]] * 20 + [[0.55, 0.45]] * 20)
    labels = np.array([0] * 19 + [1] + [0] * 11 + [1] * 9)  # 95% and 55% right
    rows = limits.reliability(probabilities, labels)
    assert sum(r["count"] for r in rows) == 40 and len(rows) == limits.BINS
    assert limits.expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-9)
    always_right = np.zeros(40, int)
    assert limits.expected_calibration_error(probabilities, always_right) == pytest.approx((0.05 + 0.45) / 2)


def test_the_reliability_diagram_is_written(tmp_path):
    logits, labels = _overconfident(n=500)
    path = limits.plot_calibration(
        limits.calibration_report(logits, labels, 3.0), tmp_path / "reliability.png", "synthetic"
    )
    assert Image.open(path).format == "PNG"


def test_auroc_ranks_in_domain_above_out_of_domain():
    assert limits.auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert limits.auroc([0, 1, 2], [3, 4, 5]) == 0.0
    assert limits.auroc([1, 1], [1, 1]) == 0.5
    assert limits.auroc([1, 3], [2]) == 0.5


def test_the_threshold_flags_five_percent_of_in_domain_inputs():
    scores = np.random.default_rng(0).normal(size=10000)
    check = limits.DomainCheck("energy", limits.fit_threshold(scores))
    assert np.mean([not check(s).in_domain for s in scores]) == pytest.approx(limits.FALSE_ALARM, abs=0.002)
    record = check(10.0)
    assert record.in_domain and record.threshold == round(check.threshold, 4)


def test_logit_scores_are_higher_for_confident_logits():
    confident, unsure = np.array([[8.0, 0.0, 0.0]]), np.array([[0.1, 0.0, 0.0]])
    for kind, score in limits.logit_scores(confident).items():
        assert score[0] > limits.logit_scores(unsure)[kind][0], kind


def test_mahalanobis_scores_features_near_a_class_above_features_far_from_all():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    labels = rng.integers(0, 2, 2000)
    features = means[labels] + rng.normal(0, [1.0, 1.0, 0.01], (2000, 3))  # hardly varies along the last axis
    gaussians = limits.ClassGaussians.fit(features, labels)
    near, off_axis = gaussians.score(np.array([[10.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    assert near > -2 and off_axis < -1000  # a small step where the data never varies is far


def test_model_limits_round_trip_and_are_found_beside_the_weights(tmp_path):
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    logits, val_labels = _overconfident(n=300, classes=3)
    fitted = limits.ModelLimits.fit(features, labels, features[:100], logits, val_labels)
    weights = tmp_path / "run" / "best.keras"
    weights.parent.mkdir()
    fitted.save(weights.parent / limits.LIMITS_FILE)
    found = limits.load_beside("classify", weights)  # not a shipped file: no card checksum to hold it to
    assert found.temperature == fitted.temperature and found.threshold == fitted.threshold
    assert np.array_equal(found.gaussians.precision, fitted.gaussians.precision)
    assert [d.in_domain for d in found.domains(features[:5])] == [d.in_domain for d in fitted.domains(features[:5])]
    assert limits.load_beside("classify", tmp_path / "elsewhere.keras") is None


def test_output_files_must_go_in_a_folder_and_are_not_overwritten(tmp_path):
    from zoo.errors import BadInput

    (tmp_path / "file").write_text("")
    with pytest.raises(BadInput, match="must be a folder"):
        limits.output_files(tmp_path / "file", ("a.png",), force=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_text("kept")
    with pytest.raises(BadInput, match="exists"):
        limits.output_files(tmp_path / "out", ("a.png",), force=False)
    assert limits.output_files(tmp_path / "new", ("a.png",), force=False) == [tmp_path / "new" / "a.png"]


def test_photo_crops_are_real_photos_whole_and_cropped():
    crops = limits.photo_crops(per_photo=2)
    assert len(crops) == 16 * 3 and all(c.ndim == 3 and c.shape[2] == 3 and c.dtype == np.uint8 for c in crops)
    assert all(min(c.shape[:2]) >= 50 for c in crops)


def test_relative_mahalanobis_ranks_a_point_near_a_class_above_one_merely_near_the_data(tmp_path):
    """Ren et al. 2021: two classes far apart along x; between them lies the data's overall mean. The plain
    score counts the midpoint as near as a point two steps off a class mean across y; the relative one, which
    adds the distance to one Gaussian of all the data, ranks the midpoint lower: near the data, near no class."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    features = np.array([[-3.0, 0.0], [3.0, 0.0]])[labels] + rng.normal(0, 1.0, (4000, 2))
    fitted = limits.ModelLimits.fit(features, labels, features[:500], relative=True)
    midpoint, beside_a_class = np.array([[0.0, 0.0], [3.0, 3.0]])
    plain = fitted.gaussians.score(np.stack([midpoint, beside_a_class]))
    relative = fitted.score(np.stack([midpoint, beside_a_class]))
    assert plain[0] == pytest.approx(plain[1], abs=1.0) and relative[0] < relative[1] - 5
    assert fitted.check.score == "relative-mahalanobis"
    loaded = limits.ModelLimits.load(fitted.save(tmp_path / "limits.npz"))
    assert np.allclose(loaded.score(features[:50]), fitted.score(features[:50]))
    assert limits.ModelLimits.fit(features, labels, features[:500]).background is None  # plain by default


def test_photo_crops_leave_out_the_named_photos_and_temperatures_keep_to_their_bounds():
    assert len(limits.photo_crops(per_photo=1, without=("astronaut", "camera"))) == 14 * 2
    logits, labels = _overconfident(n=500, sharpen=50.0)  # wants T near 50
    assert limits.fit_temperature(logits, labels) == pytest.approx(20.0, rel=1e-3)  # the default bounds' top
    assert limits.fit_temperature(logits, labels, bounds=(1.0, 100.0)) == pytest.approx(50.0, rel=0.2)
