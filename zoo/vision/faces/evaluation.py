"""Verification scores: ROC, equal-error rate, accuracy and LFW's 10-fold protocol on pairs of faces.

`score` is the one scorer of pair distances: `zoo evaluate faces` uses it on a pairs file (or
every pair of the real photos inside packages), training on all pairs of its held-out people.
A baseline beside the model: Euclidean distance between the aligned grey chips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    *, weights: Path | None, pairs: Path | None, lfw: bool, roc_png: Path | None, threshold: float, force: bool
) -> dict:
    """Verification accuracy, ROC and EER of the embedding (and of raw chip pixels) on pairs."""
    if roc_png is not None:
        check_output_path(Path(roc_png), force)
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
    return result


def _plot_roc(far, tar, target: Path, force: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot(far, tar)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set(xlabel="false accept rate", ylabel="true accept rate", title="faces: verification ROC")
    with atomic_output(target, force) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(figure)
