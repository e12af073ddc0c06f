"""What a classifier knows, measured and shown: calibrated confidence and out-of-domain detection.

One piece of code for every classifier-like app (classify, captioning, speech, faces' match scores).
NumPy and SciPy only: an app turns its model's outputs into arrays, this module does the rest.

Calibration. A confidence of 90% should be right 90% of the time. The expected calibration
error (ECE) is the gap between confidence and accuracy, averaged over equal-width confidence
bins weighted by how many predictions fall in each; the reliability diagram draws the bins.
Temperature scaling divides the logits by one number T > 0 fitted to minimise the negative
log-likelihood of a held-out split: it changes confidences, never the ranking of classes
(Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017).

Out-of-domain detection. A domain score is higher the more an input looks like the training
data: the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017), the energy
T*logsumexp(logits/T) (Liu et al., NeurIPS 2020), or the negative Mahalanobis distance of the
penultimate features to the nearest class mean under one shared covariance (Lee et al.,
NeurIPS 2018); relative, that distance less the one to a single Gaussian of all the training
features (Ren et al., "A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection",
2021): near a class, not merely near the data overall. For an embedding without classes, the
length of its descriptor: longer the more face-like and clear the input (Meng et al., MagFace,
CVPR 2021). The threshold is the score that `FALSE_ALARM` of in-domain validation inputs fall
below; `auroc` measures how well a score ranks in-domain inputs above out-of-domain ones.

    T = fit_temperature(val_logits, val_labels)
    ece = expected_calibration_error(softmax(test_logits, T), test_labels)
    fitted = ModelLimits.fit(train_features, train_labels, val_features, val_logits, val_labels)
    fitted.save(run_dir / LIMITS_FILE)           # the predictor finds it beside the weights: load_beside
    fitted.domains(photo_features)               # [Domain(in_domain=False, score=..., threshold=...)]

Logits may carry a leading axis of views (test-time augmentation: an image and its mirror):
probabilities are then the mean of each view's softmax, as the apps predict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

BINS = 15  # Guo et al.'s choice
FALSE_ALARM = 0.05  # the share of in-domain inputs a fitted threshold flags
SCORES = ("max-softmax", "energy", "mahalanobis", "relative-mahalanobis", "descriptor-norm")


# -------------------------------------------------------------- calibration


def _views(logits: np.ndarray) -> np.ndarray:
    """(views, N, C) float64, whether or not `logits` had a views axis."""
    logits = np.asarray(logits, np.float64)
    return logits[None] if logits.ndim == 2 else logits


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities (N, C) of logits (N, C) or (views, N, C) divided by `temperature`."""
    scaled = _views(logits) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).mean(axis=0)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(probabilities, 1e-12))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T within `bounds` that minimises the negative log-likelihood of `labels` (a held-out split).
    The default suits logits of a softmax layer; a score in other units (a distance) needs others."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=tuple(np.log(bounds)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(np.exp(found.x)), 4)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per equal-width confidence bin: its range, how many predictions, their mean confidence and accuracy."""
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lo, hi] bins
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return rows


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict[str, list]:
    """The reliability diagram's data as `zoo evaluate` reports it and a model card stores it: per
    equal-width bin over [0, 1], its count, mean confidence and accuracy (None where empty), rounded."""
    rows = reliability(probabilities, labels, bins)
    return {
        key: [row[key] if row[key] is None or key == "count" else round(row[key], 4) for row in rows]
        for key in ("count", "confidence", "accuracy")
    }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Sum over bins of |accuracy - confidence|, weighted by the bin's share of predictions."""
    rows = reliability(probabilities, labels, bins)
    return round(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"]) / len(labels), 4)


def calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE, negative log-likelihood and accuracy of a held-out split, before (T = 1) and after temperature scaling."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": temperature,
        "bins": BINS,
        "ece_before": expected_calibration_error(before, labels),
        "ece_after": expected_calibration_error(after, labels),
        "nll_before": round(negative_log_likelihood(logits, labels), 4),
        "nll_after": round(negative_log_likelihood(logits, labels, temperature), 4),
        "accuracy_after": round(float(np.mean(after.argmax(axis=-1) == labels)), 4),
        # the diagram's bins, so that a page can draw it without running the model (draw_reliability)
        "reliability": {"before": reliability_bins(before, labels), "after": reliability_bins(after, labels)},
    }


def plot_calibration(report: dict, path: Path, title: str) -> Path:
    """The reliability diagram of a `calibration_report` (as `zoo evaluate` writes it, or a card stores
    it): before and after temperature scaling, drawn from the report's own bins."""
    stored = report["reliability"]
    curves = {
        f"before (ECE {report['ece_before']:.2%})": stored["before"],
        f"T = {report['temperature']:.3g} (ECE {report['ece_after']:.2%})": stored["after"],
    }
    return draw_reliability(curves, path, title)


def draw_reliability(curves: dict[str, dict], path: Path, title: str) -> Path:
    """A reliability diagram: accuracy against confidence per bin, one line per named set of stored
    bins (`reliability_bins`), the diagonal perfect calibration, and beneath, how many predictions
    fall in each bin."""
    from matplotlib.figure import Figure  # no pyplot: no backend to switch under a notebook's plots

    from zoo.files import atomic_output

    fig = Figure(figsize=(4.8, 5.6))
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    for (name, stored), colour in zip(curves.items(), ("tab:red", "tab:blue", "tab:green")):
        bins = len(stored["count"])
        columns = zip(range(bins), stored["count"], stored["confidence"], stored["accuracy"])
        used, counts, confidences, accuracies = zip(*[column for column in columns if column[1]])  # empty bins left out
        top.plot(confidences, accuracies, marker="o", ms=3, color=colour, label=name)
        bottom.bar([(b + 0.5) / bins for b in used], counts, width=1 / bins, color=colour, alpha=0.4)
    top.set_ylabel("accuracy")
    top.set_title(title, fontsize=9)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top class probability)")
    bottom.set_ylabel("predictions")
    fig.tight_layout()
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    return path


# ------------------------------------------------------------------- domain


def max_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return softmax(logits, temperature).max(axis=-1)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """T * logsumexp(logits / T), averaged over views: the negative free energy."""
    scaled = _views(logits) / temperature
    top = scaled.max(axis=-1, keepdims=True)
    return (temperature * (top[..., 0] + np.log(np.exp(scaled - top).sum(axis=-1)))).mean(axis=0)


@dataclasses.dataclass
class ClassGaussians:
    """Class means and one shared precision matrix of feature vectors (Lee et al., 2018)."""

    means: np.ndarray  # (classes, D)
    precision: np.ndarray  # (D, D)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, shrinkage: float = 1e-3) -> ClassGaussians:
        features = np.asarray(features, np.float64)
        means = np.stack([features[labels == c].mean(axis=0) for c in np.unique(labels)])
        centred = features - means[np.searchsorted(np.unique(labels), labels)]
        covariance = centred.T @ centred / len(features)
        # A little ridge keeps the inverse finite where features never vary (dead ReLU channels).
        covariance += shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
        return cls(means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32))

    def score(self, features: np.ndarray) -> np.ndarray:
        """Minus the squared Mahalanobis distance to the nearest class mean: higher is more in-domain."""
        features = np.asarray(features, np.float64)
        distances = [np.einsum("nd,de,ne->n", features - mean, self.precision, features - mean) for mean in self.means]
        return -np.min(distances, axis=0)


def photo_crops(per_photo: int = 15, seed: int = 0, without: tuple[str, ...] = ()) -> list[np.ndarray]:
    """Out-of-domain probes for models not trained on photos: the 16 real photos that ship offline
    (zoo.data.photos: scikit-image, scikit-learn, matplotlib), but those named in `without`, each
    whole and in `per_photo` random square crops of 30-100% of its short side, as RGB uint8 arrays."""
    from zoo.data.photos import sample_photos, to_rgb

    rng = np.random.default_rng(seed)
    crops = []
    for name, photo in sample_photos("all").items():
        if name in without:
            continue
        photo = to_rgb(photo)
        height, width = photo.shape[:2]
        crops.append(photo)
        for _ in range(per_photo):
            side = int(rng.uniform(0.3, 1.0) * min(height, width))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crops.append(photo[top : top + side, left : left + side])
    return crops


def domain_report(check: DomainCheck, in_domain_scores: np.ndarray, probes: dict[str, np.ndarray]) -> dict:
    """How a domain check does on a held-out in-domain split and on named sets of out-of-domain
    inputs: the share of each flagged, and the AUROC of the score against each."""
    flagged = {name: round(float(np.mean(np.asarray(scores) < check.threshold)), 4) for name, scores in probes.items()}
    return {
        "score": check.score,
        "threshold": round(check.threshold, 4),
        "false_alarm_target": FALSE_ALARM,
        "in_domain_flagged": round(float(np.mean(np.asarray(in_domain_scores) < check.threshold)), 4),
        "flagged": flagged,
        "auroc": {name: auroc(in_domain_scores, scores) for name, scores in probes.items()},
        "inputs": {name: len(scores) for name, scores in probes.items()},
    }


def logit_scores(logits: np.ndarray, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """The domain scores computed from logits alone, for comparison with the Mahalanobis score."""
    return {"max-softmax": max_softmax(logits, temperature), "energy": energy(logits, temperature)}


def fit_threshold(in_domain_scores: np.ndarray, false_alarm: float = FALSE_ALARM) -> float:
    """The score below which `false_alarm` of in-domain inputs fall."""
    return float(np.quantile(np.asarray(in_domain_scores, np.float64), false_alarm))


def auroc(in_domain_scores: np.ndarray, out_of_domain_scores: np.ndarray) -> float:
    """The probability that an in-domain input scores above an out-of-domain one (ties count half)."""
    from scipy.stats import rankdata

    inside, outside = np.asarray(in_domain_scores), np.asarray(out_of_domain_scores)
    ranks = rankdata(np.concatenate([inside, outside]))[: len(inside)]
    return round(float((ranks.sum() - len(inside) * (len(inside) + 1) / 2) / (len(inside) * len(outside))), 4)


@dataclasses.dataclass(frozen=True)
class Domain:
    """One input's domain check, as results record it."""

    in_domain: bool
    score: float
    threshold: float


@dataclasses.dataclass(frozen=True)
class DomainCheck:
    """A named score and its threshold; calling it on one score gives the `Domain` record."""

    score: str  # one of SCORES
    threshold: float

    def __call__(self, score: float) -> Domain:
        return Domain(bool(score >= self.threshold), round(float(score), 4), round(self.threshold, 4))


# ------------------------------------------------------- stored with a model

LIMITS_FILE = "limits.npz"  # in a run directory; a shipped model's is <weights stem>.limits.npz beside it


@dataclasses.dataclass
class ModelLimits:
    """What a model's predictor needs to calibrate its confidence and check its inputs' domain: the
    temperature, the class Gaussians of its features and the threshold on their Mahalanobis score
    (relative to the `background` Gaussian of all the training features, when there is one).
    Saved beside the weights (`limits_path`); a shipped file's sha256 is on the model card."""

    temperature: float
    gaussians: ClassGaussians
    threshold: float
    background: ClassGaussians | None = None

    @property
    def check(self) -> DomainCheck:
        return DomainCheck("mahalanobis" if self.background is None else "relative-mahalanobis", self.threshold)

    def score(self, features: np.ndarray) -> np.ndarray:
        """The domain score of feature vectors (N, D): higher is more in-domain."""
        score = self.gaussians.score(features)
        return score if self.background is None else score - self.background.score(features)

    def domains(self, features: np.ndarray) -> list[Domain]:
        return [self.check(score) for score in self.score(features)]

    @classmethod
    def fit(
        cls,
        train_features: np.ndarray,
        train_labels: np.ndarray,
        val_features: np.ndarray,
        val_logits: np.ndarray | None = None,
        val_labels: np.ndarray | None = None,
        relative: bool = False,
    ) -> ModelLimits:
        """Gaussians on training features (and, `relative`, one Gaussian of them all); the temperature
        (1 without logits) and the threshold on validation."""
        gaussians = ClassGaussians.fit(train_features, train_labels)
        background = ClassGaussians.fit(train_features, np.zeros(len(train_features), int)) if relative else None
        temperature = 1.0 if val_logits is None else fit_temperature(val_logits, val_labels)
        fitted = cls(temperature, gaussians, 0.0, background)
        fitted.threshold = fit_threshold(fitted.score(val_features))
        return fitted

    def save(self, path: Path, force: bool = False) -> Path:
        from zoo.files import atomic_output

        with atomic_output(Path(path), force=force) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                temperature=self.temperature,
                threshold=self.threshold,
                means=self.gaussians.means,
                precision=self.gaussians.precision,
                **(
                    {}
                    if self.background is None
                    else {"background_mean": self.background.means, "background_precision": self.background.precision}
                ),
            )
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ModelLimits:
        with np.load(path) as stored:
            return cls(
                float(stored["temperature"]),
                ClassGaussians(stored["means"], stored["precision"]),
                float(stored["threshold"]),
                ClassGaussians(stored["background_mean"], stored["background_precision"])
                if "background_mean" in stored
                else None,
            )


def output_files(folder: Path | None, names: tuple[str, ...], force: bool) -> list[Path]:
    """`zoo evaluate -o DIR`'s files in DIR (made if need be), each checked before any work; none without -o."""
    from zoo.errors import BadInput
    from zoo.files import check_output_path

    if folder is None:
        return []
    if Path(folder).exists() and not Path(folder).is_dir():
        raise BadInput(f"-o {folder}: must be a folder (for {', '.join(names)})")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [check_output_path(Path(folder) / name, force) for name in names]


def limits_path(weights: Path) -> Path:
    """Where a weights file's limits live: <stem>.limits.npz beside it, else limits.npz in its folder."""
    named = weights.with_name(weights.stem + ".limits.npz")
    return named if named.exists() else weights.with_name(LIMITS_FILE)


def load_beside(app: str, weights: Path) -> ModelLimits | None:
    """The limits saved beside `weights` (None if there are none); for a shipped file, checked
    against the sha256 its card entry gives under extra.limits."""
    from zoo import registry
    from zoo.errors import BadInput

    path = limits_path(Path(weights))
    if not path.exists():
        return None
    shipped = [e for e in registry.get(app).weights if e.path.resolve() == Path(weights).resolve()]
    expected = shipped[0].extra.get("limits", {}).get("sha256") if shipped else None
    if shipped and registry.sha256_of(path) != expected:
        raise BadInput(f"{path}: sha256 differs from the model card's; the file is damaged or was replaced")
    return ModelLimits.load(path)
