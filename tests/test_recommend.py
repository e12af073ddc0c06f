"""The recommender app: loaders, both models, both protocols, serving, demo and bad input.

Fast tests run on a small *generated* ratings file with planted structure
(`zoo.data.ratings.write_planted_ratings`: four taste clusters, 300 users, 400 items; not real
people), so they need no MovieLens files. The `slow` tests train on MovieLens-100K from the RecBole
wheel (`pip install --no-deps recbole==1.2.1`) and skip, saying so, when it is not installed.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from zoo import api, harness
from zoo.data import ratings as rd
from zoo.errors import BadInput, ZooWarning
from zoo.recsys import evaluation as ev
from zoo.recsys import recommend as rec

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    return rd.write_planted_ratings(folder / "u.data")


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory):
    """Both models trained once with the app's own `train`, quick preset, on the planted file."""
    runs = tmp_path_factory.mktemp("runs")
    out = {}
    for model, epochs in (("ranking", None), ("mf", 8)):
        out[model] = rec.train(
            preset="quick",
            epochs=epochs,
            data=planted,
            out=runs / model,
            resume=False,
            seed=0,
            model=model,
            format="auto",
        )
        out[model + "_file"] = runs / model / "model.keras"
    return out


# ------------------------------------------------------------------ models


def test_each_mf_score_depends_only_on_its_own_example():
    """keras-io's `ops.tensordot(u, m, 2)` sums over the batch; a row-wise product must not."""
    model = rec.build_mf(
        [str(u) for u in range(5)], [str(i) for i in range(7)], rec.Config(model="mf", factors=4), mean=3.0
    )
    for layer in model.get_layer("mf")._layers:  # random biases too, so every term is exercised
        layer.embeddings.assign(np.random.default_rng(0).normal(size=layer.embeddings.shape).astype("float32"))
    users, items = np.array([0, 1, 2, 3], np.int32), np.array([6, 5, 4, 3], np.int32)
    batch = keras.ops.convert_to_numpy(model([users, items]))
    alone = [float(keras.ops.convert_to_numpy(model([users[k : k + 1], items[k : k + 1]]))[0]) for k in range(4)]
    np.testing.assert_allclose(batch, alone, rtol=1e-5)
    changed = keras.ops.convert_to_numpy(model([np.array([4, 1, 2, 3], np.int32), items]))
    assert changed[0] != pytest.approx(batch[0]) and np.allclose(changed[1:], batch[1:])
    assert batch.shape == (4,)


def test_both_models_beat_their_baselines_on_planted_data(trained, planted):
    mf = rec.evaluate(weights=str(trained["mf_file"]), data=planted, model=None, format="auto")
    assert mf["rmse"] < mf["baselines"]["biases"]["rmse"] - 0.1, mf
    assert mf["baselines"]["biases"]["rmse"] < mf["baselines"]["global_mean"]["rmse"]
    ranking = rec.evaluate(weights=str(trained["ranking_file"]), data=planted, model=None, format="auto")
    assert ranking["hr@10"] > ranking["baselines"]["popularity"]["hr@10"] + 0.2, ranking
    assert ranking["ndcg@10_full"] > ranking["baselines"]["popularity"]["ndcg@10_full"] + 0.05
    assert ranking["hr@10"] >= ranking["baselines"]["ease"]["hr@10"] - 0.05
    assert ranking["negatives"] == 99 and len(ranking["hr_per_seed"]) == 3


def test_saved_models_load_in_safe_mode_with_their_ids(trained):
    for kind in ("ranking", "mf"):
        model = harness.load_model(trained[kind + "_file"], app="recommend")
        assert rec.kind_of(model) == kind and model.name == f"recommend_{kind}"
        assert rec.core(model).items[:3] == ["1", "2", "3"]


# ------------------------------------------------------------- evaluation


def test_split_keeps_test_sets_apart_and_leaves_out_each_users_latest(planted):
    ratings = rd.load_ratings(planted)
    parts = ev.split(ratings)
    assert not (parts.rating_test & parts.loo_test).any()
    assert (parts.train == (~parts.rating_test & ~parts.loo_test)).all()
    assert np.bincount(ratings.user[parts.loo_test]).max() == 1
    for user in range(0, ratings.n_users, 37):
        mine = ratings.user == user
        assert ratings.timestamp[mine & parts.loo_test][0] == ratings.timestamp[mine].max()
    assert 0.17 < parts.rating_test.mean() < 0.23


def test_ranking_metrics_on_a_known_case():
    """One user, target scored first among negatives: HR 1, NDCG 1; scored last: HR 0."""
    ratings = rd.Ratings(
        ["u", "v"],
        [str(i) for i in range(120)],
        np.array([0, 0, 1], np.int32),
        np.array([0, 1, 2], np.int32),
        np.ones(3, np.float32),
        np.array([1, 2, 3]),
    )
    parts = ev.Split(
        train=np.array([True, False, True]), rating_test=np.zeros(3, bool), loo_test=np.array([False, True, False])
    )
    best = ev.leave_one_out(lambda h, u: np.eye(120)[[1]], ratings, parts)
    worst = ev.leave_one_out(lambda h, u: -np.eye(120)[[1]], ratings, parts)
    assert (best["hr@10"], best["ndcg@10"], worst["hr@10"]) == (1.0, 1.0, 0.0)
    full = ev.full_ranking(lambda h, u: np.tile(np.eye(120)[1], (len(u), 1)), ratings, parts)
    assert full["recall@20"] == 1.0 and full["ndcg@10_full"] == 1.0


# ------------------------------------------------------------------ serving


def test_top_n_excludes_rated_items_and_faiss_agrees_with_brute_force(trained, monkeypatch):
    model = harness.load_model(trained["ranking_file"])
    history = np.zeros((3, len(rec.core(model).items)), np.float32)
    history[0, :50] = 1.0
    history[1, [3, 7]] = [0.5, 1.0]
    items, values = rec.top_n(model, history, 20, batch=2)
    assert not np.isin(items[0], np.arange(50)).any() and not np.isin(items[1], [3, 7]).any()
    assert (np.diff(values, axis=1) <= 1e-6).all()
    monkeypatch.setattr(rec, "FAISS_ABOVE", 10)
    pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    fast_items, fast_values = rec.top_n(model, history, 20)
    np.testing.assert_allclose(fast_values, values, rtol=1e-4, atol=1e-6)
    assert (fast_items[:2, :5] == items[:2, :5]).all()  # row 2 (no history) is all ties


# -------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def recommender(trained, planted):
    """The demo's predictor (`zoo.load`, which `zoo demo recommend` calls), loaded once on the planted data."""
    return api.load("recommend", weights=trained["ranking_file"], data=planted)


def test_demo_for_a_user_lists_unrated_items_with_because_lines(recommender, planted):
    result = recommender(user="5", top=5)
    ratings = rd.load_ratings(planted)
    rated = {ratings.items[i] for i in ratings.item[ratings.user == ratings.users.index("5")]}
    rows = result.items
    assert len(rows) == 5 and all(r["item"] not in rated for r in rows)
    assert all(r["because_item"] in rated for r in rows) and result.text.count("because you rated") == 5
    # Planted tastes: user 5 is in cluster 0 (user index 4 % 4); most recommendations should be too.
    assert sum((int(r["item"]) - 1) % 4 == 0 for r in rows) >= 4
    assert all(not isinstance(v, dict) for r in rows for v in r.values())  # a table: flat rows
    json.dumps(result.to_dict())


def test_fold_in_and_similar_items(recommender):
    likes = recommender(likes="1,5,9,bogus", top=5)
    assert likes.likes == ["1", "5", "9"] and likes.unmatched == ["bogus"]
    assert all((int(r["item"]) - 1) % 4 == 0 for r in likes.items)  # items 1, 5, 9 are all taste 0
    similar = recommender(similar_to="2", top=5)
    assert similar.similar_to == "2" and sum((int(r["item"]) - 2) % 4 == 0 for r in similar.items) >= 4
    assert "because" not in similar.items[0]  # a similar-items list has no history to explain it


def test_data_is_fixed_when_the_predictor_loads(recommender, planted):
    with pytest.raises(BadInput, match="data chooses the model"):
        recommender(user="5", data=planted.parent / "other.data")


# ------------------------------------------------------------------ loaders


def test_every_layout_reads_the_same_ratings(tmp_path):
    rows = [("1", "10", "4", "100"), ("1", "20", "3.5", "101"), ("2", "10", "5", "102")]
    layouts = {
        "u.data": "\n".join("\t".join(r) for r in rows),
        "ratings.dat": "\n".join("::".join(r) for r in rows),
        "ratings.csv": "userId,movieId,rating,timestamp\n" + "\n".join(",".join(r) for r in rows),
        "x.tsv": "user\titem\trating\n" + "\n".join("\t".join(r[:3]) for r in rows),
        "ml.inter": (
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join("\t".join(r) for r in rows)
        ),
    }
    for name, text in layouts.items():
        (tmp_path / name).write_text(text + "\n")
        ratings = rd.load_ratings(tmp_path / name)
        assert ratings.users == ["1", "2"] and ratings.items == ["10", "20"], name
        assert ratings.rating.tolist() == [4.0, 3.5, 5.0], name
        assert ratings.timestamp.tolist() == ([-1, -1, -1] if name == "x.tsv" else [100, 101, 102]), name
    assert rd.load_ratings(tmp_path / "u.data", "udata").n_users == 2


def test_titles_years_and_genres_from_each_metadata_layout(tmp_path):
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1" + "|0" * 13 + "\n")
    assert rd.load_items(tmp_path / "u.data")["1"] == rd.ItemInfo(
        "Toy Story", 1995, ("Animation", "Children's", "Comedy")
    )
    (tmp_path / "u.item").unlink()
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n2,"Jumanji, The (1995)",Adventure|Fantasy\n')
    assert rd.load_items(tmp_path / "ratings.csv")["2"] == rd.ItemInfo("Jumanji, The", 1995, ("Adventure", "Fantasy"))
    (tmp_path / "movies.dat").write_text("3::Heat (1995)::Action|Crime\n")
    (tmp_path / "movies.csv").unlink()
    assert rd.load_items(tmp_path / "ratings.dat")["3"].year == 1995


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1\t10\t4\t100\n1\t20\n", ":2: malformed row"),
        ("user,rating\n1,4\n", "no item column"),
        ("1\t10\tfour\t100\n", "rating 'four' is not a number"),
        ("", "empty file"),
        ("userId,movieId,rating\n", "no ratings"),
        ("1\t10\t4\tyesterday\n", "timestamp 'yesterday'"),
    ],
)
def test_bad_ratings_files_are_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / ("r.csv" if text.startswith("user") else "u.data")
    path.write_text(text)
    with pytest.raises(BadInput, match=fragment) as error:
        rd.load_ratings(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_duplicate_pairs_are_a_counted_warning_keeping_the_latest(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t2\t200\n1\t10\t5\t300\n1\t20\t3\t100\n2\t10\t4\t50\n1\t10\t1\t250\n")
    ratings = rd.load_ratings(path)
    assert len(ratings) == 3
    assert ratings.warnings == [f"{path}: 2 duplicate (user, item) rating(s); kept the latest of each"]
    assert ratings.rating[(ratings.user == 0) & (ratings.item == 0)].tolist() == [5.0]
    with pytest.warns(ZooWarning, match="2 duplicate"):  # the app passes it on the one way (`zoo: warning:`)
        rec.load_data(path, "auto")


def test_cli_bad_input_is_one_line_and_exit_2(zoo, trained, planted, tmp_path):
    weights = trained["ranking_file"]
    common = ("demo", "recommend", "--weights", weights, "--data", planted)
    assert_one_line_error(zoo(*common, "--user", "99999"), "--user 99999", "no such user")
    assert_one_line_error(zoo(*common, "--similar-to", "no-such-item"), "--similar-to", "no item")
    assert_one_line_error(zoo(*common, "--likes", "nope,nada"), "--likes", "no item matches")
    assert_one_line_error(zoo(*common), "exactly one of")
    (tmp_path / "bad.csv").write_text("user,item\n1,2\n")
    assert_one_line_error(
        zoo("demo", "recommend", "--weights", weights, "--data", tmp_path / "bad.csv", "--user", "1"),
        "bad.csv",
        "no rating column",
    )
    assert_one_line_error(
        zoo("evaluate", "recommend", "--weights", weights, "--data", tmp_path / "missing.csv"), "missing.csv"
    )
    ok = zoo(*common, "--user", "3", "--top", "3", "--json")
    assert ok.code == 0, ok.err
    [record] = json.loads(ok.out)
    assert record["user"] == "3" and [row["rank"] for row in record["items"]] == [1, 2, 3]


# --------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def ml100k():
    if rd.recbole_ml100k() is None:
        pytest.skip("MovieLens-100K is not installed: `pip install --no-deps recbole==1.2.1` ships it")
    return rd.default_ratings_file()


@pytest.mark.slow
def test_ml100k_targets_of_issue_12(ml100k, tmp_path):
    ranking = rec.train(
        preset="full", epochs=None, data=None, out=tmp_path / "r", resume=False, seed=0, model="ranking", format="auto"
    )
    assert ranking["hr@10"] >= 0.69 and ranking["ndcg@10"] >= 0.41 and ranking["ndcg@10_full"] >= 0.42, ranking
    report = rec.evaluate(weights=str(tmp_path / "r" / "model.keras"), data=None, model=None, format="auto")
    assert report["hr@10"] >= report["baselines"]["ease"]["hr@10"]
    assert report["ndcg@10"] >= report["baselines"]["ease"]["ndcg@10"]
    mf = rec.train(
        preset="full", epochs=None, data=None, out=tmp_path / "m", resume=False, seed=0, model="mf", format="auto"
    )
    assert mf["rmse"] <= 0.91 and mf["train_seconds"] < 120, mf


def test_official_folds_are_used_when_present(planted, tmp_path):
    """u1..u5 .base/.test beside the ratings (here cut from the planted file) -> MF and biases per fold."""
    lines = planted.read_text().splitlines()[:4000]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    for k in range(1, 6):
        test = [line for n, line in enumerate(lines) if n % 5 == k - 1]
        base = [line for n, line in enumerate(lines) if n % 5 != k - 1]
        (tmp_path / f"u{k}.test").write_text("\n".join(test) + "\n")
        (tmp_path / f"u{k}.base").write_text("\n".join(base) + "\n")
    folds = rec.official_folds(tmp_path / "u.data", rec.Config(model="mf", factors=8, epochs=2, learning_rate=2e-2))
    assert folds["folds"] == 5 and folds["rmse"] < folds["biases_rmse"], folds
    assert rec.official_folds(planted, rec.Config()) is None  # no fold files beside it


@pytest.mark.slow  # two interpreter start-ups, about 20 s
@pytest.mark.jax
def test_shipped_files_give_the_same_scores_under_jax(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed")
    import subprocess
    import sys

    script = (
        "import numpy as np, json; from zoo import harness, registry; from zoo.recsys import recommend as rec\n"
        "r = harness.load_model(registry.resolve_weights('recommend', 'ranking'), app='recommend')\n"
        "m = harness.load_model(registry.resolve_weights('recommend', 'mf'), app='recommend')\n"
        "h = np.zeros((1, len(rec.core(r).items)), np.float32); h[0, [0, 49]] = 1\n"
        "print(json.dumps([rec.top_n(r, h, 5)[0].tolist(), m.predict([np.array([0, 1]), np.array([0, 1])], "
        "verbose=0).tolist()]))"
    )
    outputs = []
    for backend in ("jax", "tensorflow"):
        env = {**__import__("os").environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outputs[0][0] == outputs[1][0]
    np.testing.assert_allclose(outputs[0][1], outputs[1][1], rtol=1e-5)


@pytest.mark.parametrize("tag", ["ranking", "mf"])  # a few seconds: every run checks the card
def test_card_numbers_are_those_of_the_shipped_files(ml100k, tag):
    from zoo import registry

    entry = registry.get("recommend").entry(tag)
    report = rec.evaluate(weights=tag, data=None, model=None, format="auto")
    assert {k: report[k] for k in entry.metrics} == entry.metrics
    best = report["baselines"]["ease" if tag == "ranking" else "biases"]
    assert {k: best[k] for k in entry.baseline["metrics"]} == entry.baseline["metrics"]


def test_fast_numeric_parser_agrees_with_the_row_by_row_one(planted, tmp_path, monkeypatch):
    fast = rd.load_ratings(planted)
    csv_file = tmp_path / "ratings.csv"
    csv_file.write_text("userId,movieId,rating,timestamp\n" + planted.read_text().replace("\t", ","))
    from_csv = rd.load_ratings(csv_file)
    monkeypatch.setattr(rd, "_parse_numeric", lambda path, fmt: None)
    slow = rd.load_ratings(planted)
    for other in (slow, from_csv):
        assert other.users == fast.users and other.items == fast.items
        for field in ("user", "item", "rating", "timestamp"):
            assert (getattr(other, field) == getattr(fast, field)).all(), field


def test_bad_data_fails_before_a_run_directory_exists(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t4\t100\n2\t10\t\n")
    with pytest.raises(BadInput, match=":2: rating '' is not a number"):
        rec.train(
            preset="quick",
            epochs=None,
            data=tmp_path / "u.data",
            out=tmp_path / "run",
            resume=False,
            seed=0,
            model="ranking",
            format="auto",
        )
    assert not (tmp_path / "run").exists()


def test_too_large_for_dense_matrices_is_refused_in_one_line(planted, monkeypatch):
    monkeypatch.setattr(ev, "MAX_DENSE_CELLS", 1000)
    with pytest.raises(BadInput, match="too large for this app's dense matrices"):
        rec.load_data(planted, "auto")
