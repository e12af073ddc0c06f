# %% [markdown]
# # Recommenders: the `recommend` app
#
# **Title:** Recommenders: the `recommend` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Recommend films from MovieLens-100K with the shipped models, read
# `zoo/recsys/recommend.py`, fit small versions in seconds and measure them beside the baselines.
#
# The `recommend` app holds two models on one split of MovieLens-100K (100,000 ratings of
# 1,682 films by 943 people; GroupLens' research licence, read from the copy inside the RecBole
# wheel, never redistributed): `ranking`, a low-rank EASE item-item model for top-N lists, and
# `mf`, biased matrix factorisation for predicting ratings. This notebook asks the shipped
# model for recommendations through `zoo.load`, reads the module's key parts (quoted from the
# running source), fits small versions, and ends with the full recipe and the card's numbers.

# %% tags=["parameters"]
# Parameters. The defaults run in well under a minute.
RANK = 32  # of the small ranking model (the quick preset; the shipped full preset: 128)
MF_EPOCHS = 3  # of the small rating model (the full preset: 10)
USER = "1"  # whose recommendations to show

# %%
import dataclasses
import inspect
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.recsys import evaluation as ev
from zoo.recsys import recommend  # the app's module, which this notebook reads

start = time.perf_counter()
pd.set_option("display.width", 160)  # whole tables when run as a script
spec = zoo.apps("recommend")[0]
print(spec.summary)

# %% [markdown]
# ## The shipped model's recommendations
#
# `zoo.load("recommend")` loads the ranking model and the ratings it serves once; each call
# takes one question: a known user (`user=`), someone new described by films they like
# (`likes=`, folded in without retraining), or films like one film (`similar_to=`). The result's
# `items` is a table; "because" names the rated film that contributes most to each score.

# %%
recommender = zoo.load("recommend")
for question in ({"user": USER}, {"likes": "Star Wars,Toy Story"}, {"similar_to": "Fargo"}):
    result = recommender(top=5, **question)
    print(result.heading)
    display(
        pd.DataFrame(result.items)[
            ["rank", "title", "year", "genres", "score"] + (["because"] if "because" in result.items[0] else [])
        ]
    )

assert len(result.items) == 5 and result.similar_to is not None
assert "Fargo" not in [row["title"] for row in result.items]  # never the film asked about itself

# %% [markdown]
# ## How it works: reading `zoo/recsys/recommend.py`
#
# **EASE** (Steck, 2019) learns an item-item weight matrix $B$ with a zero diagonal that
# reconstructs each user's history from the rest of it, $\min_B \|X - XB\|^2 + \lambda\|B\|^2$,
# in closed form. The zoo truncates $B$ to rank $R$ by SVD, $B \approx ED$, so the model is two
# small matrices and scoring a history $h$ is $hED$: a Keras layer.

# %%
print(inspect.getsource(ev.ease_weights))
print(inspect.getsource(recommend.ease_low_rank))
print(inspect.getsource(recommend.ItemItem))

# %% [markdown]
# **Recency.** Leave-one-out asks for the film each user rated last, so the history a user is
# scored from weighs recent ratings more: $w = f + (1 - f)\, e^{-\text{age}/\tau}$, age 0 for
# the latest rating. The decay travels inside the model's config.

# %%
print(inspect.getsource(recommend.recency_history))
age = np.arange(30)
layer = recommender.layer
plt.plot(age, layer.recency_floor + (1 - layer.recency_floor) * np.exp(-age / layer.recency_tau))
plt.xlabel("age of the rating (0 = the user's latest)")
plt.ylabel("weight in the history")
plt.title(f"the shipped model's recency weights (tau {layer.recency_tau}, floor {layer.recency_floor})")
plt.show()

# %% [markdown]
# **Because you rated X** is exact for a linear model: the score of film $j$ is a sum over the
# rated films $i$ of $h_i (ED)_{ij}$, so the largest term names the reason.

# %%
print(inspect.getsource(recommend._because))

# %% [markdown]
# ## Fit small versions and measure them
#
# The same split as every model and baseline of the app (`ev.split`, seed 0): for ranking,
# each user's latest rating held out and ranked among 99 sampled films they never rated
# (HR@10, NDCG@10), and a random 20% ranked among all films; for ratings, RMSE on a held-out
# 20%. The ranking model is closed form (seconds); matrix factorisation trains with Adam.

# %%
ratings = recommend.load_data(None, "auto")
parts = ev.split(ratings, recommend.SPLIT_SEED)
print(f"{len(ratings):,} ratings, {ratings.n_users} users, {ratings.n_items} films")
print(inspect.getsource(recommend.fit_ranking))

config = dataclasses.replace(recommend.PRESETS["quick"], rank=RANK)
t0 = time.perf_counter()
encoder, decoder = recommend.ease_low_rank(ev.interaction_matrix(ratings, parts.train), config.ease_l2, config.rank)
small_ranking = recommend.build_ranking(ratings.items, config)
small_ranking.get_layer("item_item").set_weights([encoder, decoder])
fit_seconds = time.perf_counter() - t0
small_scores = recommend.evaluate_model(small_ranking, ratings, parts)
shipped_scores = recommend.evaluate_model(recommender.model, ratings, parts)
print(f"rank-{RANK} EASE fitted in {fit_seconds:.1f} s")

# %%
keras.utils.set_random_seed(0)
mf_config = dataclasses.replace(recommend.PRESETS["quick"], epochs=MF_EPOCHS)
train_rows = np.flatnonzero(parts.train)
mf = recommend.build_mf(ratings.users, ratings.items, mf_config, float(ratings.rating[train_rows].mean()))
mf.compile(optimizer=keras.optimizers.Adam(mf_config.learning_rate), loss="mean_squared_error")
mf.fit(
    [ratings.user[train_rows], ratings.item[train_rows]],
    ratings.rating[train_rows],
    batch_size=mf_config.batch_size,
    epochs=MF_EPOCHS,
    verbose=2,
)
test_rows = parts.rating_test
lo, hi = float(ratings.rating.min()), float(ratings.rating.max())
mf_scores = ev.rmse_mae(
    ratings.rating[test_rows], recommend.predict_ratings(mf, ratings.user[test_rows], ratings.item[test_rows], lo, hi)
)
rating_baselines = ev.rating_baselines(ratings, parts.train, test_rows, lo, hi)

# %%
ranking_card, mf_card = spec.entry("ranking"), spec.entry("mf")
table = pd.DataFrame(
    [
        {
            "model": f"EASE, rank {RANK}, just fitted",
            **{k: small_scores[k] for k in ("hr@10", "ndcg@10", "ndcg@10_full")},
        },
        {"model": "ranking, shipped", **{k: shipped_scores[k] for k in ("hr@10", "ndcg@10", "ndcg@10_full")}},
        {
            "model": ranking_card.baseline["name"] + " (card)",
            **{k: ranking_card.baseline["metrics"][k] for k in ("hr@10", "ndcg@10", "ndcg@10_full")},
        },
    ]
).set_index("model")
display(table.round(4))
ratings_table = pd.DataFrame(
    [
        {"model": f"biased MF, {MF_EPOCHS} epochs, just trained", **mf_scores},
        {"model": "mf, shipped (card)", "rmse": mf_card.metrics["rmse"], "mae": mf_card.metrics["mae"]},
        *(
            {"model": name, **{k: v for k, v in scores.items() if k in ("rmse", "mae")}}
            for name, scores in rating_baselines.items()
        ),
    ]
).set_index("model")
display(ratings_table.round(4))

ax = table["hr@10"].plot.barh(xlim=(0.3, 0.75), title="HR@10, leave-one-out with 99 sampled negatives")
plt.show()

# Recency weighting is what lifts both above plain EASE on leave-one-out; rank 32 does as well as 128 there.
for scores in (small_scores, shipped_scores):
    assert scores["hr@10"] > ranking_card.baseline["metrics"]["hr@10"] + 0.05
    assert abs(scores["ndcg@10_full"] - ranking_card.baseline["metrics"]["ndcg@10_full"]) < 0.01  # level on full
assert mf_scores["rmse"] < rating_baselines["global_mean"]["rmse"]

# %% [markdown]
# ## The full recipe and the card's numbers
#
# The model card (`zoo/weights/recommend.json`; `zoo.apps()` in Python, `zoo info recommend` on
# the command line) records each file's training command, wall time and what `zoo evaluate`
# measured beside the baselines. The shipped ranking model, measured above on the same split,
# must give the card's numbers.

# %%
zoo_cli(["info", "recommend"])
for metric in ("hr@10", "ndcg@10", "ndcg@10_full"):
    print(f"{metric}: the card {ranking_card.metrics[metric]}, this notebook {shipped_scores[metric]:.4f}")
    assert abs(ranking_card.metrics[metric] - shipped_scores[metric]) < 1e-3
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo train recommend --preset full --model ranking   # the shipped ranking model (about 30 s)
#     zoo train recommend --preset full --model mf        # the shipped rating model
#     zoo evaluate recommend --model ranking              # with every baseline beside it
#     zoo demo recommend --likes "Fargo,Toy Story"        # a new user, folded in
#     zoo train recommend --model ranking --data ratings.csv   # your own ratings
