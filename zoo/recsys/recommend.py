"""Movie recommendations: rating prediction with biased matrix factorisation, top-N with a
low-rank EASE over a recency-weighted history, served by batched brute force (faiss for big catalogues).

Two models, each one `.keras` file that carries its own user and item ids:

- `mf`, rating prediction: r(u, i) = mu + b_u + b_i + p_u . q_i, L2-regularised on the rows a
  batch touches (Koren, Bell and Volinsky, "Matrix Factorization Techniques for Recommender
  Systems", IEEE Computer 2009), trained with Adam in Keras. The score is a row-wise
  `ops.sum(p * q, axis=-1)`, never keras-io's `ops.tensordot(u, m, 2)`, which sums over the batch
  too, so one example's score would depend on every other example in the batch (a test checks).
- `ranking`, top-N from implicit feedback: EASE (Steck, "Embarrassingly Shallow Autoencoders for
  Sparse Data", WWW 2019) fitted in closed form, truncated to rank R (scores = h E D, an encoder
  and a decoder Dense layer), and fed a history whose weights decay with recency
  (floor + (1 - floor) exp(-age / tau), age = 0 for the latest rating). We tried, on the same
  split, a multinomial denoising autoencoder (Liang et al., WWW 2018) and a next-item softmax
  model in Keras: both beat plain EASE on leave-one-out but fell far below it on full ranking.
  Recency weighting is what the timestamp-ordered leave-one-out protocol rewards, and the
  truncation regularises; numbers are on the card. The model is a linear item-item map, so fold-in
  of a new user (`--likes`) is one call without retraining, and "because you rated X" is exact:
  X's term is the largest in the recommended item's score.

keras-rs 0.4.0 was weighed and is not used: its `BruteForceRetrieval` cannot exclude the items a
user already rated (we mask before top-k), and its ranking losses and metrics serve models trained
by gradient descent on sampled lists, which a closed-form model does not need; the NumPy metrics
in `zoo.recsys.evaluation` follow the protocols' exact definitions (sampled negatives, full ranking).

Data: MovieLens-100K from the RecBole wheel (offline; GroupLens licence, research use, never
redistributed), the MovieLens downloads in the catalog, or `--data PATH` for any ratings file
(`zoo.data.ratings`). Metrics and baselines (`zoo.recsys.evaluation`): RMSE and MAE against the
global mean and user+item biases; HR@10 and NDCG@10 (leave-one-out, 99 sampled negatives, three
seeds) and Recall@20, NDCG@20, NDCG@10 over all items, against popularity, item-kNN and EASE.

    zoo demo recommend --user 42 --top 10
    zoo demo recommend --likes "Star Wars,Fargo,Toy Story" --json
    zoo.load("recommend")(similar_to="Fargo", top=5).items     # in Python: the ranked rows
    zoo train recommend --model ranking --preset full
    zoo evaluate recommend --model mf
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from zoo import api, harness, registry
from zoo.data import ratings as ratings_data
from zoo.errors import BadInput, warn
from zoo.recsys import evaluation as ev

APP = "recommend"
MODELS = ("ranking", "mf")
SPLIT_SEED = 0  # one split for every model, baseline and evaluation run
FAISS_ABOVE = 100_000  # items; below this, batched brute force is as fast and exact


@dataclasses.dataclass
class Config:
    model: str = "ranking"
    # mf
    factors: int = 32
    l2: float = 0.1  # on the embedding rows of each batch; biases get a tenth of it
    learning_rate: float = 3e-3
    batch_size: int = 256
    epochs: int = 5
    validation_fraction: float = 0.0  # of the training ratings, to pick the best epoch (see fit_mf)
    # ranking
    ease_l2: float = 600.0
    rank: int = 32
    recency_tau: float = 5.0  # ratings
    recency_floor: float = 0.1
    data: str | None = None
    format: str = "auto"


PRESETS = {
    "quick": Config(learning_rate=1e-2),
    "full": Config(factors=64, epochs=10, rank=128),
}


# -------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="zoo")
class BiasedMF(layers.Layer):
    """(user index, item index) -> predicted rating, both (batch,) int32 -> (batch,) float32.

    Carries its raw user and item ids in its config, so a saved file maps ids by itself.
    """

    def __init__(self, users: list[str], items: list[str], factors: int, l2: float, mean: float, **kwargs):
        super().__init__(**kwargs)
        self.users, self.items, self.factors, self.l2, self.mean = list(users), list(items), factors, l2, mean
        normal = keras.initializers.RandomNormal(stddev=0.01)
        self.user_factors = layers.Embedding(len(users), factors, embeddings_initializer=normal, name="user_factors")
        self.item_factors = layers.Embedding(len(items), factors, embeddings_initializer=normal, name="item_factors")
        self.user_bias = layers.Embedding(len(users), 1, embeddings_initializer="zeros", name="user_bias")
        self.item_bias = layers.Embedding(len(items), 1, embeddings_initializer="zeros", name="item_bias")

    def build(self, user_shape, item_shape=None):
        for embedding in (self.user_factors, self.user_bias, self.item_factors, self.item_bias):
            embedding.build((None,))

    def call(self, user, item):
        p, q = self.user_factors(user), self.item_factors(item)  # (batch, factors)
        b_u, b_i = self.user_bias(user)[:, 0], self.item_bias(item)[:, 0]  # (batch,)
        # Row-wise regulariser: popular items are shrunk as often as they are seen (SGD's classic form).
        self.add_loss(self.l2 * ops.mean(ops.sum(p * p, -1) + ops.sum(q * q, -1) + 0.1 * (b_u * b_u + b_i * b_i)))
        return self.mean + b_u + b_i + ops.sum(p * q, axis=-1)  # row-wise: example k sees only row k

    def compute_output_shape(self, user_shape, item_shape=None):
        return (user_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "users": self.users,
            "items": self.items,
            "factors": self.factors,
            "l2": self.l2,
            "mean": self.mean,
        }


@keras.saving.register_keras_serializable(package="zoo")
class ItemItem(layers.Layer):
    """Weighted history (batch, items) -> scores (batch, items) = h E D, a rank-R item-item map."""

    def __init__(self, items: list[str], rank: int, recency_tau: float = 5.0, recency_floor: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        # How a history is weighted for this model travels with it (recency_history).
        self.items, self.rank, self.recency_tau, self.recency_floor = list(items), rank, recency_tau, recency_floor
        self.encoder = self.add_weight(shape=(len(items), rank), initializer="zeros", name="encoder")
        self.decoder = self.add_weight(shape=(rank, len(items)), initializer="zeros", name="decoder")

    def call(self, history):
        return ops.matmul(ops.matmul(history, self.encoder), self.decoder)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {
            **super().get_config(),
            "items": self.items,
            "rank": self.rank,
            "recency_tau": self.recency_tau,
            "recency_floor": self.recency_floor,
        }


def build_mf(users: list[str], items: list[str], config: Config, mean: float) -> keras.Model:
    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    rating = BiasedMF(users, items, config.factors, config.l2, mean, name="mf")(user, item)
    return keras.Model([user, item], rating, name="recommend_mf")


def build_ranking(items: list[str], config: Config) -> keras.Model:
    history = keras.Input((len(items),), name="history")
    return keras.Model(
        history,
        ItemItem(items, config.rank, config.recency_tau, config.recency_floor, name="item_item")(history),
        name="recommend_ranking",
    )


def kind_of(model: keras.Model) -> str:
    names = {layer.__class__.__name__ for layer in model.layers}
    if "BiasedMF" in names:
        return "mf"
    if "ItemItem" in names:
        return "ranking"
    raise BadInput(f"model {model.name}: not a recommend model")


def core(model: keras.Model):
    """The BiasedMF or ItemItem layer, which holds the ids."""
    return next(layer for layer in model.layers if isinstance(layer, (BiasedMF, ItemItem)))


# ----------------------------------------------------------- fitting EASE


def ease_low_rank(train: np.ndarray, l2: float, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """EASE's item-item weights B (zero diagonal), truncated by SVD: B ~ E D, E (n, R), D (R, n)."""
    left, singular, right = np.linalg.svd(ev.ease_weights(train, l2))
    rank = min(rank, len(singular))
    root = np.sqrt(singular[:rank])
    return (left[:, :rank] * root).astype(np.float32), (right[:rank] * root[:, None]).astype(np.float32)


def recency_history(
    ratings: ratings_data.Ratings, mask: np.ndarray, tau: float, floor: float, items: list[str] | None = None
) -> np.ndarray:
    """(users, items) history: floor + (1 - floor) exp(-age / tau), age 0 = the user's latest rating.

    With `items` (a model's ids), columns follow them and items the model lacks are dropped.
    """
    rows = np.flatnonzero(mask)
    order = rows[np.lexsort((-rows, -ratings.timestamp[rows], ratings.user[rows]))]  # latest first
    user = ratings.user[order]
    starts = np.r_[0, np.flatnonzero(user[1:] != user[:-1]) + 1]
    age = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    column = ratings.item[order] if items is None else _columns(ratings.items, items)[ratings.item[order]]
    keep = column >= 0
    width = ratings.n_items if items is None else len(items)
    history = np.zeros((ratings.n_users, width), np.float32)
    history[user[keep], column[keep]] = floor + (1.0 - floor) * np.exp(-age[keep] / tau)
    return history


def _columns(data_ids: list[str], model_ids: list[str]) -> np.ndarray:
    """For each data item index, its column in the model (-1 where the model has no such item)."""
    position = {m: k for k, m in enumerate(model_ids)}
    return np.array([position.get(i, -1) for i in data_ids], np.int64)


# ------------------------------------------------------------------ serving


def scores(model: keras.Model, history: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(users, items) ranking scores, in batches so memory stays bounded."""
    out = [
        keras.ops.convert_to_numpy(model(history[s : s + batch], training=False)) for s in range(0, len(history), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, history.shape[1]), np.float32)


def top_n(model: keras.Model, history: np.ndarray, k: int, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(users, k) best items not in each history, and their scores; faiss above FAISS_ABOVE items."""
    n_items = history.shape[1]
    if n_items > FAISS_ABOVE and kind_of(model) == "ranking":
        return _top_n_faiss(model, history, k)
    k = min(k, n_items)
    items, values = [], []
    for start in range(0, len(history), batch):
        chunk = history[start : start + batch]
        s = scores(model, chunk, batch)
        s[chunk > 0] = -np.inf  # never recommend what the user already rated
        best = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, best, 1), axis=1, kind="stable")
        items.append(np.take_along_axis(best, order, 1))
        values.append(np.take_along_axis(s, items[-1], 1))
    return np.concatenate(items), np.concatenate(values)


def _top_n_faiss(model: keras.Model, history: np.ndarray, k: int):
    """Exact inner-product search over item vectors D^T for user vectors h E; rated items filtered after."""
    try:
        import faiss
    except ImportError:
        raise BadInput(
            f"{history.shape[1]:,} items: top-N above {FAISS_ABOVE:,} items needs the recsys extra: "
            "pip install 'keras-zoo[recsys]'"
        ) from None

    layer = core(model)
    encoder, decoder = (keras.ops.convert_to_numpy(w) for w in (layer.encoder, layer.decoder))
    index = faiss.IndexFlatIP(decoder.shape[0])
    index.add(np.ascontiguousarray(decoder.T))
    queries = np.ascontiguousarray(history @ encoder, dtype=np.float32)
    extra = int((history > 0).sum(1).max())
    values, items = index.search(queries, k + extra)
    rated = np.take_along_axis(history, np.maximum(items, 0), 1) > 0
    values[rated | (items < 0)] = -np.inf
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(items, order, 1), np.take_along_axis(values, order, 1)


def predict_ratings(model: keras.Model, user: np.ndarray, item: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """MF predictions for index pairs, clipped to the rating scale."""
    out = model.predict([user.astype(np.int32), item.astype(np.int32)], batch_size=8192, verbose=0)
    return np.clip(out, lo, hi)


def mf_scorer(model: keras.Model):
    """MF as a top-N ranker (predicted rating of every item), for the ranking protocols."""
    layer = core(model)
    p, q, b_i = (
        keras.ops.convert_to_numpy(w.embeddings) for w in (layer.user_factors, layer.item_factors, layer.item_bias)
    )
    return lambda history, users: p[users] @ q.T + b_i[:, 0]


# -------------------------------------------------------------- data glue


def load_data(data: Path | None, fmt: str) -> ratings_data.Ratings:
    ratings = ratings_data.load_ratings(data, fmt)
    for warning in ratings.warnings:
        warn(warning)
    if ratings.n_users < 2 or ratings.n_items < 2:
        raise BadInput(
            f"{ratings.source}: need at least 2 users and 2 items, found {ratings.n_users} and {ratings.n_items}"
        )
    ev.check_dense(ratings)
    return ratings


def check_same_ids(model: keras.Model, ratings: ratings_data.Ratings) -> None:
    """Evaluation indexes data and model alike: their ids must agree."""
    layer = core(model)
    if layer.items != ratings.items or (isinstance(layer, BiasedMF) and layer.users != ratings.users):
        raise BadInput(
            f"{ratings.source}: this model was trained on other users or items; evaluate it on "
            "its own data (pass the --data it was trained with)"
        )


def load(weights: str | None, model: str | None) -> keras.Model:
    net = harness.load_model(registry.resolve_weights(APP, weights, model=model), app=APP)
    if model and kind_of(net) != model:
        raise BadInput(f"{weights}: a {kind_of(net)} model, not a {model} one (drop --model)")
    return net


# ---------------------------------------------------------------- training


def fit_mf(run, ratings: ratings_data.Ratings, parts: ev.Split, config: Config) -> keras.Model:
    """Adam on the training ratings for the preset's epochs.

    With validation_fraction > 0 a seeded slice of the training ratings picks the best epoch (never
    the test set); the presets use 0 and a fixed epoch count, because on 100K ratings the 5% slice
    costs more RMSE than choosing the epoch gains.
    """
    rows = np.flatnonzero(parts.train)
    valid = np.random.default_rng(run.seed).random(len(rows)) < config.validation_fraction
    fit_rows, valid_rows = rows[~valid], rows[valid]
    with harness.scope():  # a distributed run's model and optimizer are mirrored on every replica
        model = build_mf(ratings.users, ratings.items, config, float(ratings.rating[fit_rows].mean()))
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="mean_squared_error",
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
    pairs = lambda r: [ratings.user[r], ratings.item[r]]  # noqa: E731
    validation = (pairs(valid_rows), ratings.rating[valid_rows]) if len(valid_rows) else None
    harness.fit(
        run,
        model,
        pairs(fit_rows),
        validation,
        epochs=config.epochs,
        monitor="val_rmse" if validation else "rmse",
        mode="min",
        y=ratings.rating[fit_rows],
        batch_size=config.batch_size,
    )
    return harness.best_model(run)


def fit_ranking(run, ratings: ratings_data.Ratings, parts: ev.Split, config: Config) -> keras.Model:
    """Closed form: EASE on the training interactions, truncated to the model's rank."""
    encoder, decoder = ease_low_rank(ev.interaction_matrix(ratings, parts.train), config.ease_l2, config.rank)
    model = build_ranking(ratings.items, dataclasses.replace(config, rank=encoder.shape[1]))
    model.get_layer("item_item").set_weights([encoder, decoder])
    run.save_checkpoint(model, "best")
    run.log({"epoch": 0, "rank": encoder.shape[1]})
    return harness.best_model(run)


def train(
    *,
    preset: str,
    epochs: int | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    seed: int,
    model: str,
    format: str,
) -> dict:
    config = dataclasses.replace(PRESETS[preset], model=model, data=str(data) if data else None, format=format)
    ratings = load_data(data, format)  # before the run directory exists: bad data costs nothing
    run = harness.start_run(f"{APP}-{model}", config, out, resume, seed, epochs)
    config = run.config
    parts = ev.split(ratings, SPLIT_SEED)
    started = time.time()
    net = (fit_mf if config.model == "mf" else fit_ranking)(run, ratings, parts, config)
    seconds = round(time.time() - started, 1)
    metrics = {"train_seconds": seconds, **evaluate_model(net, ratings, parts)}
    run.write_metrics(metrics)
    return {"run": str(run.path), **{k: v for k, v in metrics.items() if k != "baselines"}}


# -------------------------------------------------------------- evaluation


def evaluate_model(net: keras.Model, ratings: ratings_data.Ratings, parts: ev.Split, baselines: bool = False) -> dict:
    """The model's metrics (and, with `baselines`, the baselines' beside them) on the shared split."""
    lo, hi = float(ratings.rating.min()), float(ratings.rating.max())
    if kind_of(net) == "mf":
        test = parts.rating_test
        out = ev.rmse_mae(ratings.rating[test], predict_ratings(net, ratings.user[test], ratings.item[test], lo, hi))
        out.update(ev.leave_one_out(mf_scorer(net), ratings, parts))
        if baselines:
            out["baselines"] = ev.rating_baselines(ratings, parts.train, test, lo, hi)
            _, _, item_bias = ev.fit_biases(
                ratings.user[parts.train],
                ratings.item[parts.train],
                ratings.rating[parts.train],
                ratings.n_users,
                ratings.n_items,
            )
            out["baselines"]["biases"].update(
                ev.leave_one_out(lambda h, u: np.broadcast_to(item_bias, h.shape).copy(), ratings, parts)
            )
        return out
    layer = core(net)
    loo_history = recency_history(ratings, ~parts.loo_test, layer.recency_tau, layer.recency_floor)
    out = ev.leave_one_out(lambda h, u: scores(net, loo_history[u]), ratings, parts)
    # Full ranking holds out a random 20%: no "next" to predict, so the history is unweighted there.
    out.update(ev.full_ranking(lambda h, u: scores(net, h), ratings, parts))
    if baselines:
        out["baselines"] = ev.ranking_baselines(ratings, parts)
    return out


def official_folds(ratings_path: Path, config: Config) -> dict | None:
    """RMSE/MAE of MF and biases on MovieLens-100K's u1..u5 folds, when u1.base ... u5.test sit beside."""
    folder = Path(ratings_path).parent
    if not all((folder / f"u{k}.{s}").exists() for k in range(1, 6) for s in ("base", "test")):
        return None
    results = []
    for k in range(1, 6):
        base = ratings_data.load_ratings(folder / f"u{k}.base", "udata")
        test = ratings_data.load_ratings(folder / f"u{k}.test", "udata")
        results.append(_fold(base, test, config))
    mean = {key: round(float(np.mean([r[key] for r in results])), 4) for key in results[0]}
    return {"folds": 5, **mean}


def _fold(base: ratings_data.Ratings, test: ratings_data.Ratings, config: Config) -> dict:
    """Train MF on one fold's base (ids re-indexed to the union), score its test."""
    users = sorted(set(base.users) | set(test.users), key=int)
    items = sorted(set(base.items) | set(test.items), key=int)
    u_of, i_of = {u: k for k, u in enumerate(users)}, {i: k for k, i in enumerate(items)}

    def index(r):
        return np.array([u_of[r.users[k]] for k in r.user]), np.array([i_of[r.items[k]] for k in r.item])

    (bu, bi), (tu, ti) = index(base), index(test)
    model = build_mf(users, items, config, float(base.rating.mean()))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mean_squared_error")
    model.fit([bu, bi], base.rating, batch_size=config.batch_size, epochs=config.epochs, verbose=0)
    mf = ev.rmse_mae(test.rating, predict_ratings(model, tu, ti, 1.0, 5.0))
    mu, b_u, b_i = ev.fit_biases(bu, bi, base.rating, len(users), len(items))
    biased = ev.rmse_mae(test.rating, np.clip(mu + b_u[tu] + b_i[ti], 1.0, 5.0))
    return {"rmse": mf["rmse"], "mae": mf["mae"], "biases_rmse": biased["rmse"], "biases_mae": biased["mae"]}


def evaluate(*, weights: str | None, data: Path | None, model: str | None, format: str) -> dict:
    net = load(weights, model)
    ratings = load_data(data, format)
    check_same_ids(net, ratings)
    parts = ev.split(ratings, SPLIT_SEED)
    started = time.time()
    out = {
        "model": kind_of(net),
        "data": ratings.source,
        "users": ratings.n_users,
        "items": ratings.n_items,
        "ratings": len(ratings),
        "train": int(parts.train.sum()),
        "rating_test": int(parts.rating_test.sum()),
        "loo_test": int(parts.loo_test.sum()),
        **evaluate_model(net, ratings, parts, baselines=True),
    }
    if kind_of(net) == "mf":
        folds = official_folds(Path(ratings.source), PRESETS["full"])
        out["official_folds"] = folds or "u1..u5 fold files not found beside the ratings; skipped"
    out["seconds"] = round(time.time() - started, 1)
    return out


# -------------------------------------------------------------------- demo


def _match_items(query: str, model_ids: list[str], info: dict, popularity: np.ndarray) -> list[int]:
    """Model columns for an id, else for a title substring (most-rated first)."""
    query = query.strip()
    if query in model_ids:
        return [model_ids.index(query)]
    needle = query.lower()
    hits = [k for k, item in enumerate(model_ids) if needle and item in info and needle in info[item].title.lower()]
    return sorted(hits, key=lambda k: -popularity[k])


def _label(item: str, title: str | None, year: int | None) -> str:
    if title is None:
        return f"item {item}"
    return f"{title} ({year})" if year else title


def _describe(item: str, info: dict) -> str:
    meta = info.get(item)
    return _label(item, meta and meta.title, meta and meta.year)


def _because(history_row: np.ndarray, layer_weights: tuple[np.ndarray, np.ndarray], column: int) -> int:
    """The rated item whose term h_j (E D)_{j, column} contributes most to the item's score."""
    encoder, decoder = layer_weights
    rated = np.flatnonzero(history_row > 0)
    contributions = history_row[rated] * (encoder[rated] @ decoder[:, column])
    return int(rated[np.argmax(contributions)])


@dataclasses.dataclass
class Recommendations(api.Result):
    """One query's ranked items: a table of flat rows (rank, item, title, year, genres, score, and for a
    user or a fold-in, `because`: the rated item that contributes most to the score)."""

    heading: str  # what was asked, e.g. "items like Fargo (1996):"
    user: str | None = None
    likes: list[str] | None = None  # the item ids --likes matched
    unmatched: list[str] | None = None  # --likes entries that matched nothing
    similar_to: str | None = None  # the item id --similar-to matched
    items: list[dict] = api.shown("table")

    @property
    def text(self) -> str:
        lines = [self.heading]
        for row in self.items:
            label = _label(row["item"], row["title"], row["year"])
            lines.append(f"{row['rank']:2d}. {label}  score {row['score']:.3f}")
            if row.get("because"):
                lines.append(f"    because you rated {row['because']}")
        return "\n".join(lines)


class Predictor(api.Predictor):
    """`zoo.load("recommend", data=None, format="auto")`: the ranking model and the ratings it serves, loaded
    once; a call takes exactly one of `user=`, `likes=` (a new user, folded in without retraining) or
    `similar_to=`."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.ratings = load_data(self.options["data"], self.options["format"])
        self.model = load(self.weights, "ranking" if self.weights is None else None)
        if kind_of(self.model) != "ranking":
            raise BadInput(f"{self.weights}: the demo recommends with a ranking model, not an mf one")
        self.layer = core(self.model)
        self.item_weights = tuple(keras.ops.convert_to_numpy(w) for w in (self.layer.encoder, self.layer.decoder))
        self.info = ratings_data.load_items(self.ratings.source)
        self.history = recency_history(
            self.ratings,
            np.ones(len(self.ratings), bool),
            self.layer.recency_tau,
            self.layer.recency_floor,
            self.layer.items,
        )
        self.popularity = (self.history > 0).sum(0)

    def predict(
        self, inputs, *, user: str | None, top: int, similar_to: str | None, likes: str | None, **loaded
    ) -> Recommendations:
        if inputs is not None:
            raise BadInput("recommend: takes no input; call it with user=, likes= or similar_to=")
        given = [name for name, value in (("--user", user), ("--similar-to", similar_to), ("--likes", likes)) if value]
        if len(given) != 1:
            raise BadInput(
                "recommend: give exactly one of --user ID, --similar-to ITEM, --likes ITEMS"
                + (f" (got {', '.join(given)})" if given else "")
            )
        ids = self.layer.items
        if user:
            if user not in self.ratings.users:
                raise BadInput(
                    f"--user {user}: no such user in {self.ratings.source} (ids run "
                    f"{self.ratings.users[0]} to {self.ratings.users[-1]})"
                )
            rows = self._rows(self.history[self.ratings.users.index(user)], top, because=True)
            return Recommendations(f"for user {user}:", user=user, items=rows)
        if similar_to:
            found = _match_items(similar_to, ids, self.info, self.popularity)
            if not found:
                raise BadInput(f"--similar-to {similar_to}: no item with that id or title")
            one = np.zeros(len(ids), np.float32)
            one[found[0]] = 1.0
            return Recommendations(
                f"items like {_describe(ids[found[0]], self.info)}:",
                similar_to=ids[found[0]],
                items=self._rows(one, top, because=False),
            )
        return self._fold_in(likes, top)

    def exportables(self) -> list:
        """The scorer: a (N, items) history row (recency-weighted ratings, or 1 for each liked item) -> a score
        per item; ranking, excluding what the user rated, and the item ids stay with the caller."""
        from zoo.export import Exportable, batched

        ratings = self.ratings
        check_same_ids(self.model, ratings)
        parts = ev.split(ratings, SPLIT_SEED)
        history = recency_history(ratings, ~parts.loo_test, self.layer.recency_tau, self.layer.recency_floor)

        def hit_rate(run) -> dict:
            measured = ev.leave_one_out(lambda h, users: batched(run, [history[users]]), ratings, parts)
            return {k: measured[k] for k in ("hr@10", "ndcg@10")}

        return [Exportable("scorer", self.model, hit_rate, None, {"items": list(self.layer.items)})]

    def _fold_in(self, likes: str, top: int) -> Recommendations:
        """A new user from a few liked items (ids or titles), scored without retraining."""
        ids = self.layer.items
        wanted = [q for q in likes.split(",") if q.strip()]
        matched = {q: _match_items(q, ids, self.info, self.popularity) for q in wanted}
        missing = [q for q, hits in matched.items() if not hits]
        if len(missing) == len(wanted):
            raise BadInput(f"--likes {likes}: no item matches (give item ids or title words, comma-separated)")
        liked = [hits[0] for hits in matched.values() if hits]
        history = np.zeros(len(ids), np.float32)
        history[liked] = 1.0
        note = f" (no match for: {', '.join(missing)})" if missing else ""
        heading = f"for someone who likes {', '.join(_describe(ids[k], self.info) for k in liked)}{note}:"
        return Recommendations(
            heading, likes=[ids[k] for k in liked], unmatched=missing, items=self._rows(history, top, because=True)
        )

    def _rows(self, history: np.ndarray, top: int, because: bool) -> list[dict]:
        items, values = top_n(self.model, history[None], top)
        rows = []
        for rank, (column, score) in enumerate(zip(items[0], values[0]), 1):
            if not np.isfinite(score):
                break
            item = self.layer.items[column]
            meta = self.info.get(item)
            row = {
                "rank": rank,
                "item": item,
                "title": meta.title if meta else None,
                "year": meta.year if meta else None,
                "genres": list(meta.genres) if meta else [],
                "score": round(float(score), 4),
            }
            if because:
                source = (
                    self.layer.items[_because(history, self.item_weights, int(column))] if (history > 0).any() else None
                )
                row.update(because_item=source, because=source and _describe(source, self.info))
            rows.append(row)
        return rows
