"""Verification scores: ROC, equal-error rate, accuracy and LFW's 10-fold protocol on pairs of faces.

`score` is the one scorer of pair distances: `zoo evaluate faces` uses it on a pairs file (or
every pair of the real photos inside packages), training on all pairs of its held-out people.
A baseline beside the model: Euclidean distance between the aligned grey chips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from zoo import limits
from zoo.data import faces as face_data
from zoo.data.images import read_image
from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file, check_output_path
from zoo.vision.faces import landmarks
from zoo.vision.faces.pipeline import MIN_SIDE, Detector, embed, find_faces, load_embedding


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false-accept rates, true-accept rates, equal-error rate) over every distance threshold."""
    order = np.argsort(distances)
    same = same[order].astype(bool)
    tar = np.concatenate([[0], np.cumsum(same) / max(same.sum(), 1)])
    far = np.concatenate([[0], np.cumsum(~same) / max((~same).sum(), 1)])
    i = int(np.argmin(np.abs(far - (1 - tar))))
    return far, tar, float((far[i] + 1 - tar[i]) / 2)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) of the best rule "same person when distance <= threshold" on these pairs.

    One sort: calling the k nearest pairs "same" gets cumsum(same)[k] of them right and every
    different pair beyond k; a cut may fall only between two different distances.
    """
    order = np.argsort(distances, kind="stable")
    ordered, same = distances[order], same[order].astype(bool)
    same_called_same = np.concatenate([[0], np.cumsum(same)])
    different_called_same = np.concatenate([[0], np.cumsum(~same)])
    correct = same_called_same + (~same).sum() - different_called_same
    cuttable = np.concatenate([[True], ordered[1:] != ordered[:-1], [True]])
    k = int(np.argmax(np.where(cuttable, correct, -1)))
    return (float(ordered[k - 1]) if k else -1.0), float(correct[k] / len(distances))


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray) -> float:
    """LFW's protocol: each fold's accuracy at the threshold best on the other nine, averaged."""
    folds = np.array_split(np.arange(len(distances)), 10)
    scores = []
    for k, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        threshold, _ = best_threshold(distances[train], same[train])
        scores.append(np.mean((distances[test] <= threshold) == same[test]))
    return float(np.mean(scores))


def score(distances: np.ndarray, same: np.ndarray, threshold: float | None = None) -> tuple[dict, tuple]:
    """({eer, auc, accuracy[, ten_fold_accuracy]}, (far, tar)) of pair distances; accuracy at
    `threshold`, or with None at the best threshold on these very pairs (for a baseline, or a
    trained embedding that has no threshold of its own)."""
    same = np.asarray(same, bool)
    far, tar, eer = roc(distances, same)
    row = {"eer": round(eer, 4), "auc": round(float(np.trapezoid(tar, far)), 4)}
    if threshold is not None:
        row["accuracy"] = round(float(np.mean((distances < threshold) == same)), 4)
    else:
        row["accuracy"] = round(best_threshold(distances, same)[1], 4)
    if len(distances) >= 100:
        row["ten_fold_accuracy"] = round(ten_fold_accuracy(distances, same), 4)
    return row, (far, tar)


def _photos_for_pairs(pairs: list[tuple[Path, Path, bool]] | None) -> tuple[dict, list[tuple[str, str, bool]]]:
    """{key: path or RGB}, [(key, key, same)]: the pairs file's photos, or every pair of the packaged ones."""
    if pairs is not None:
        photos = {str(p): check_input_file(p) for a, b, _ in pairs for p in (a, b)}  # read one by one later
        return photos, [(str(a), str(b), same) for a, b, same in pairs]
    photos = face_data.packaged_photos(True)
    keys = sorted(photos)
    people = face_data.PEOPLE
    return photos, [(a, b, people[a] == people[b]) for i, a in enumerate(keys) for b in keys[i + 1 :]]


def pair_chips(listed: list[tuple[Path, Path, bool]] | None) -> tuple[dict, list[tuple[str, str, bool]], int]:
    """({key: aligned chip}, [(key, key, same)] of the pairs with a face in both photos, how many pairs lack one)."""
    photos, keyed = _photos_for_pairs(listed)
    detector = Detector.shared()
    chips = {}
    for key, photo in photos.items():  # LFW's 13,233 photos would not fit in memory at once
        faces = find_faces(read_image(photo, min_side=MIN_SIDE) if isinstance(photo, Path) else photo, detector)
        if faces:
            chips[key] = faces[0].chip
    usable = [(a, b, s) for a, b, s in keyed if a in chips and b in chips]
    if not usable:
        raise BadInput("no pair with a face found in both photos")
    return chips, usable, len(keyed) - len(usable)


def evaluate(
    *,
    weights: Path | None,
    pairs: Path | None,
    lfw: bool,
    roc_png: Path | None,
    threshold: float,
    force: bool,
    reliability_png: Path | None,
) -> dict:
    """Verification accuracy, ROC and EER of the embedding (and of raw chip pixels) on pairs; with
    `reliability_png`, on the packaged photos, what the model knows too (zoo.limits): the calibration
    of p(same person) (`measure_calibration`, its reliability diagram written there) and the "is this
    a face" check (`measure_faceness`), a few minutes more."""
    for path in (roc_png, reliability_png):
        if path is not None:
            check_output_path(Path(path), force)
    if reliability_png is not None and (lfw or pairs is not None):
        raise BadInput(f"--reliability-png {reliability_png}: measured on the packaged photos, not --pairs or --lfw")
    listed = None
    if lfw:
        pairs_file, root = face_data.lfw_pairs()
        listed = face_data.read_pairs(pairs_file, root)
    elif pairs is not None:
        listed = face_data.read_pairs(Path(pairs))
    chips, usable, skipped = pair_chips(listed)
    model, sha = load_embedding(weights)
    keys = sorted(chips)
    vectors = dict(zip(keys, embed(model, np.stack([chips[k] for k in keys]))))
    grey = {k: landmarks.grey(c).ravel() / 255.0 for k, c in chips.items()}
    same = np.array([s for _, _, s in usable])

    def distances(table: dict) -> np.ndarray:
        return np.array([np.linalg.norm(table[a] - table[b]) for a, b, _ in usable])

    measured = distances(vectors)
    row, curves = score(measured, same, threshold)
    row["distances"] = {f"{Path(a).stem}~{Path(b).stem}": round(float(d), 4) for (a, b, _), d in zip(usable, measured)}
    baseline, _ = score(distances(grey), same)
    baseline["name"] = "Euclidean distance of the aligned grey chips (accuracy at its best threshold)"
    result = {
        **row,
        "pairs": len(usable),
        "skipped_no_face": skipped,
        "same_pairs": int(same.sum()),
        "threshold": threshold,
        "embedding_sha256": sha,
        "baseline": baseline,
    }
    if roc_png is not None:
        _plot_roc(*curves, Path(roc_png), force)
        result["roc_png"] = str(roc_png)
    if reliability_png is not None:
        descriptors = view_descriptors(model, face_data.packaged_photos(True))
        result["calibration"] = measure_calibration(descriptors, Path(reliability_png), force)
        result["domain"] = measure_faceness(model, descriptors)
    return result


def _plot_roc(far, tar, target: Path, force: bool) -> None:
    from matplotlib.figure import Figure  # no pyplot: no backend to switch under a notebook's plots

    figure = Figure(figsize=(4, 4))
    axis = figure.subplots()
    axis.plot(far, tar)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set(xlabel="false accept rate", ylabel="true accept rate", title="faces: verification ROC")
    with atomic_output(target, force) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")


# ------------------------------------------------------- what the model knows (zoo.limits)

MATCH_CENTRE = 0.6  # p(same person) is 1/2 at dlib's threshold: the match logit is (centre - distance) / T
TEMPERATURE_BOUNDS = (1e-3, 1.0)  # in units of descriptor distance (dlib's pairs differ by 0.2-0.9)
VIEWS = 8  # each packaged photo as is and in 7 degraded versions, for pairs harder than the photos alone
WITH_PEOPLE = ("astronaut", "grace_hopper", "camera")  # offline photos (zoo.data.photos) that show a person
NOT_A_FACE = "descriptor-norm"  # the domain score of "is this a face": the descriptor's length


def match_logits(distances: np.ndarray, centre: float = MATCH_CENTRE) -> np.ndarray:
    """(N, 2) logits of (different, same person), 0 and centre - distance: their softmax at temperature T
    is the logistic p(same) = 1 / (1 + exp(-(centre - distance) / T))."""
    distances = np.asarray(distances, np.float64)
    return np.stack([np.zeros_like(distances), centre - distances], axis=-1)


def descriptor_norms(descriptors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(descriptors, np.float64), axis=-1)


def degraded_views(photo: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The photo, then `count - 1` versions as cheap cameras and uploads give it: 12-60% of its size,
    blurred by up to 1.5 pixels, JPEG quality 10-60, 0.6-1.3 times as bright, mirrored half the time."""
    import io

    views = [photo]
    for _ in range(count - 1):
        image = Image.fromarray(photo)
        scale = rng.uniform(0.12, 0.6)
        image = image.resize((max(MIN_SIDE, round(image.width * scale)), max(MIN_SIDE, round(image.height * scale))))
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.5)))
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(10, 60)))
        pixels = np.asarray(Image.open(buffer).convert("RGB"), np.float32) * rng.uniform(0.6, 1.3)
        views.append(np.clip(pixels, 0, 255).astype(np.uint8))
    return views


def view_descriptors(model, photos: dict[str, np.ndarray], views: int = VIEWS, seed: int = 0) -> dict[str, np.ndarray]:
    """{photo: descriptors (V, D)} of the largest face in each of its degraded views where one is found."""
    rng, detector = np.random.default_rng(seed), Detector.shared()
    descriptors = {}
    for key in sorted(photos):
        found = [find_faces(view, detector) for view in degraded_views(photos[key], views, rng)]
        chips = [faces[0].chip for faces in found if faces]
        if chips:
            descriptors[key] = embed(model, np.stack(chips))
    return descriptors


def _view_pairs(descriptors: dict[str, np.ndarray], pairs: list[tuple[str, str, bool]]) -> tuple[np.ndarray, ...]:
    """(distances, same) of every view of one photo against every view of the other, over `pairs`."""
    distances = [np.linalg.norm(descriptors[a][:, None] - descriptors[b][None], axis=-1).ravel() for a, b, _ in pairs]
    same = [np.full(len(d), s) for d, (_, _, s) in zip(distances, pairs)]
    return np.concatenate(distances), np.concatenate(same).astype(int)


def measure_calibration(descriptors: dict[str, np.ndarray], reliability_png: Path | None, force: bool) -> dict:
    """Temperature scaling of the match logit (zoo.limits): the pairs of packaged photos split in two
    halves, alternately among same-person and different-people pairs, every view of one photo
    against every view of the other; T fitted on the first half, ECE before (T = 1) and after on the second."""
    keys = sorted(descriptors)
    pairs = [(a, b, face_data.PEOPLE[a] == face_data.PEOPLE[b]) for i, a in enumerate(keys) for b in keys[i + 1 :]]
    same, different = [p for p in pairs if p[2]], [p for p in pairs if not p[2]]
    validation, test = same[0::2] + different[0::2], same[1::2] + different[1::2]
    if not same[1::2]:
        return {"skipped": "fewer than two same-person pairs: the face_recognition sdist's photos are missing"}
    val_distances, val_same = _view_pairs(descriptors, validation)
    test_distances, test_same = _view_pairs(descriptors, test)
    temperature = limits.fit_temperature(match_logits(val_distances), val_same, TEMPERATURE_BOUNDS)
    report = limits.calibration_report(match_logits(test_distances), test_same, temperature)
    if reliability_png is not None:
        limits.plot_calibration(
            report, Path(reliability_png), f"faces: p(same person), {len(test_distances)} held-out view pairs"
        )
        report["reliability_png"] = str(reliability_png)
    return {
        **report,
        "centre": MATCH_CENTRE,
        "photo_pairs": {"validation": len(validation), "test": len(test), "test_same": len(same[1::2])},
        "view_pairs": {"validation": len(val_distances), "test": len(test_distances)},
    }


def _enlarged(grey: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray((grey * 255).astype(np.uint8)).convert("RGB").resize((side, side), Image.BICUBIC))


def measure_faceness(model, descriptors: dict[str, np.ndarray]) -> dict:
    """ "Is this a face" (zoo.limits): the detector first, then the descriptor's length with a threshold for
    5% false alarms on LFW faces (scikit-image's lfw_subset: 100 faces, 25x25 grey, enlarged and found by
    the detector), tested with the packaged photos' degraded views as in-domain against non-face chips: the
    subset's 100 non-face patches and crops of the offline photos without a person (both enlarged to
    chips, as if a detector had passed them), and whatever the detector itself finds in those crops."""
    import skimage.data

    detector = Detector.shared()
    tiny = skimage.data.lfw_subset()  # 100 faces, then 100 patches of the same photos without one
    found = [find_faces(_enlarged(grey, 100), detector) for grey in tiny]
    lfw_faces = [faces[0].chip for faces in found[:100] if faces]
    check = limits.DomainCheck(NOT_A_FACE, limits.fit_threshold(descriptor_norms(embed(model, np.stack(lfw_faces)))))
    crops = limits.photo_crops(without=WITH_PEOPLE)
    false_faces = [face.chip for crop in crops for face in find_faces(crop, detector)]
    as_chip = [np.asarray(Image.fromarray(c).resize((landmarks.CHIP_SIDE,) * 2)) for c in crops]
    probes = {
        "non_face_patches": [_enlarged(grey, landmarks.CHIP_SIDE) for grey in tiny[100:]],
        "photo_crops": as_chip,
        **({"detector_false_faces": false_faces} if false_faces else {}),
    }
    probe_descriptors = {name: embed(model, np.stack(chips)) for name, chips in probes.items()}
    faces = np.concatenate(list(descriptors.values()))
    report = limits.domain_report(
        check, descriptor_norms(faces), {name: descriptor_norms(d) for name, d in probe_descriptors.items()}
    )
    # Without the check: the share of non-face chips within the threshold of some real face's descriptor.
    report["matched_a_face_without_check"] = {
        name: round(float(np.mean(np.linalg.norm(d[:, None] - faces[None], axis=-1).min(axis=1) < MATCH_CENTRE)), 4)
        for name, d in probe_descriptors.items()
    }
    report["detector"] = {
        "lfw_faces_found": len(lfw_faces),
        "non_face_patches_with_a_face": sum(bool(faces) for faces in found[100:]),
        "face_free_crops": len(crops),
        "false_faces_in_them": len(false_faces),
    }
    return report
