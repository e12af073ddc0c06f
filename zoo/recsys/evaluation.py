"""Splits, metrics and baselines for both standard recommender protocols (NumPy only, no Keras).

Splits (one seeded scheme, so every model and baseline sees the same data):

- rating test: a seeded random 20% of all ratings (RMSE, MAE);
- leave-one-out test: each user's latest rating by timestamp (ties: latest in the file), as in
  He et al., "Neural Collaborative Filtering" (WWW 2017), scored against 99 items the user never
  rated, drawn uniformly (HR@10, NDCG@10, mean over 3 sampling seeds);
- training: everything else. Neither test set is ever seen in training, so one trained model
  serves both protocols. Full ranking (Recall@20, NDCG@20, NDCG@10 over every item the user has
  not rated in training, the protocol of Liang et al., "Variational Autoencoders for Collaborative
  Filtering", WWW 2018, which sampled metrics flatter) scores everything held out.

History-based scorers (EASE, item-kNN, the app's ranking model) take the user's history as input,
so at test time they see every interaction except the protocol's own test items.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data.ratings import Ratings
from zoo.errors import BadInput

RATING_TEST_FRACTION = 0.2
MAX_DENSE_CELLS = 400_000_000  # users x items held as dense float32 (1.6 GB): ML-1M fits, ML-20M does not
NEGATIVES = 99
LOO_SEEDS = (0, 1, 2)


@dataclasses.dataclass
class Split:
    """Boolean masks over a Ratings' rows."""

    train: np.ndarray
    rating_test: np.ndarray
    loo_test: np.ndarray  # at most one row per user


def split(ratings: Ratings, seed: int = 0) -> Split:
    """The seeded split described in the module docstring."""
    n = len(ratings)
    loo = np.zeros(n, bool)
    order = np.lexsort((np.arange(n), ratings.timestamp, ratings.user))
    last = np.append(ratings.user[order][1:] != ratings.user[order][:-1], True)
    counts = np.bincount(ratings.user, minlength=ratings.n_users)
    # Users with a single rating keep it for training: leaving it out would leave no history.
    loo[order[last & (counts[ratings.user[order]] > 1)]] = True
    rng = np.random.default_rng(seed)
    rating_test = (rng.random(n) < RATING_TEST_FRACTION) & ~loo
    return Split(train=~loo & ~rating_test, rating_test=rating_test, loo_test=loo)


def check_dense(ratings: Ratings) -> None:
    """The protocols and the ranking model hold (users, items) matrices densely; refuse what cannot fit."""
    cells = ratings.n_users * ratings.n_items
    if cells > MAX_DENSE_CELLS:
        raise BadInput(
            f"{ratings.source}: {ratings.n_users:,} users x {ratings.n_items:,} items is too large for "
            f"this app's dense matrices (limit {MAX_DENSE_CELLS:,} cells; MovieLens-1M fits, 20M does not)"
        )


def interaction_matrix(ratings: Ratings, mask: np.ndarray) -> np.ndarray:
    """(users, items) float32 0/1: who rated what among the rows in `mask`."""
    matrix = np.zeros((ratings.n_users, ratings.n_items), np.float32)
    matrix[ratings.user[mask], ratings.item[mask]] = 1.0
    return matrix


# ------------------------------------------------------------ rating metrics


def rmse_mae(truth: np.ndarray, predicted: np.ndarray) -> dict:
    error = np.asarray(predicted, np.float64) - truth
    return {"rmse": round(float(np.sqrt(np.mean(error**2))), 4), "mae": round(float(np.mean(np.abs(error))), 4)}


def fit_biases(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    reg: float = 10.0,
    sweeps: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Global mean + regularised user and item biases by alternating least squares (Koren 2008)."""
    mu = float(rating.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    for _ in range(sweeps):
        bi = np.bincount(item, rating - mu - bu[user], n_items) / (reg + np.bincount(item, minlength=n_items))
        bu = np.bincount(user, rating - mu - bi[item], n_users) / (reg + np.bincount(user, minlength=n_users))
    return mu, bu, bi


def rating_baselines(ratings: Ratings, train: np.ndarray, test: np.ndarray, lo: float, hi: float) -> dict:
    """Global mean and user+item biases, fitted on `train`, scored on `test`."""
    truth = ratings.rating[test]
    mu, bu, bi = fit_biases(
        ratings.user[train], ratings.item[train], ratings.rating[train], ratings.n_users, ratings.n_items
    )
    biased = np.clip(mu + bu[ratings.user[test]] + bi[ratings.item[test]], lo, hi)
    return {"global_mean": rmse_mae(truth, np.full(len(truth), mu)), "biases": rmse_mae(truth, biased)}


# ----------------------------------------------------------- ranking metrics


def sampled_negatives(rated: np.ndarray, users: np.ndarray, seed: int, count: int = NEGATIVES) -> np.ndarray:
    """(len(users), count) items each user never rated, uniform without replacement.

    On a catalogue too small for `count`, as many as the most active user leaves unrated.
    """
    rng = np.random.default_rng(seed)
    count = int(min(count, (rated[users] == 0).sum(1).min()))
    out = np.empty((len(users), count), np.int64)
    for row, user in enumerate(users):
        out[row] = rng.choice(np.flatnonzero(rated[user] == 0), size=count, replace=False)
    return out


def leave_one_out(score_fn, ratings: Ratings, parts: Split, k: int = 10, seeds=LOO_SEEDS) -> dict:
    """HR@k and NDCG@k of the held-out item among it and 99 sampled negatives, mean over seeds.

    score_fn(history (u, items) 0/1, users) -> (u, items) scores; history is everything but the
    user's left-out item. Ties count against the model (the target must beat a negative to pass it).
    """
    rated = interaction_matrix(ratings, np.ones(len(ratings), bool))
    users, targets = ratings.user[parts.loo_test], ratings.item[parts.loo_test]
    history = interaction_matrix(ratings, ~parts.loo_test)[users]
    scores = np.asarray(score_fn(history, users), np.float64)
    target_scores = scores[np.arange(len(users)), targets]
    hits, ndcgs = [], []
    for seed in seeds:
        negatives = sampled_negatives(rated, users, seed)
        rank = (np.take_along_axis(scores, negatives, 1) >= target_scores[:, None]).sum(1)
        hits.append(np.mean(rank < k))
        ndcgs.append(np.mean(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)))
    return {
        f"hr@{k}": round(float(np.mean(hits)), 4),
        f"ndcg@{k}": round(float(np.mean(ndcgs)), 4),
        "hr_per_seed": [round(float(h), 4) for h in hits],
        "negatives": int(negatives.shape[1]),
    }


def full_ranking(score_fn, ratings: Ratings, parts: Split, batch: int = 1024) -> dict:
    """Recall@20, NDCG@20 and NDCG@10 over all items not in the user's training history."""
    train = interaction_matrix(ratings, parts.train)
    held = interaction_matrix(ratings, ~parts.train)
    users = np.flatnonzero(held.sum(1) > 0)
    recall20, ndcg20, ndcg10 = [], [], []
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        scores = np.asarray(score_fn(train[chunk], chunk), np.float64)
        scores[train[chunk] > 0] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
        relevant = held[chunk]
        gains = np.take_along_axis(relevant, top, 1)
        n_rel = relevant.sum(1)
        recall20.append(gains.sum(1) / np.minimum(n_rel, 20))
        ndcg20.append(_ndcg(gains, n_rel, 20))
        ndcg10.append(_ndcg(gains[:, :10], n_rel, 10))
    mean = lambda parts_: round(float(np.mean(np.concatenate(parts_))), 4)  # noqa: E731
    return {"recall@20": mean(recall20), "ndcg@20": mean(ndcg20), "ndcg@10_full": mean(ndcg10)}


def _ndcg(gains: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discounts[: int(min(n, k))].sum() for n in n_relevant])
    return (gains[:, :k] * discounts[: gains.shape[1]]).sum(1) / ideal


# ------------------------------------------------------------ ranking baselines


def popularity(train: np.ndarray):
    counts = train.sum(0)
    return lambda history, users: np.broadcast_to(counts, history.shape).copy()


def ease_weights(train: np.ndarray, l2: float) -> np.ndarray:
    """EASE^R (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019): closed-form item-item weights,
    zero diagonal. The baseline below, and the app's ranking model (truncated by SVD), both use it."""
    gram = train.T.astype(np.float64) @ train
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def ease(train: np.ndarray, l2: float = 500.0):
    weights = ease_weights(train, l2)
    return lambda history, users: history @ weights


def item_knn(train: np.ndarray, k: int = 100, shrink: float = 10.0):
    """Item-based kNN with shrunk cosine similarity, k nearest neighbours kept per item."""
    counts = train.sum(0)
    co = train.T.astype(np.float64) @ train
    similarity = co / (np.sqrt(np.outer(counts, counts)) + shrink)
    np.fill_diagonal(similarity, 0.0)
    if k < similarity.shape[0]:
        cut = np.partition(similarity, -k, axis=0)[-k]
        similarity[similarity < cut[None, :]] = 0.0
    return lambda history, users: history @ similarity


def ranking_baselines(ratings: Ratings, parts: Split) -> dict:
    train = interaction_matrix(ratings, parts.train)
    out = {}
    for name, scorer in (("popularity", popularity(train)), ("item_knn", item_knn(train)), ("ease", ease(train))):
        out[name] = {**leave_one_out(scorer, ratings, parts), **full_ranking(scorer, ratings, parts)}
    return out
