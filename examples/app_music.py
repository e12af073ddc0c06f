# %% [markdown]
# # Music generation: the `music` app
#
# **Title:** Music generation: the `music` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Generate a melody with the shipped chorale LSTM and hear it, read `zoo/audio/music.py`,
# train a small model for a minute and score it beside a Kneser-Ney n-gram.
#
# The `music` app is a language model over melody tokens (a METER token, then a pitch or rest
# and a duration per note), a two-layer LSTM told where in the bar each token falls and what
# the parts above its line play at that moment. It is trained on Bach's chorales from
# music21's corpus (offline), split by hymn tune. This notebook generates a song through
# `zoo.load`, reads the module's key parts (quoted from the running source), trains a small
# model, and ends with the card's recipe and numbers. The first run tokenises the corpus
# (about two minutes on a 2-core CPU); later runs read it from the cache.

# %% tags=["parameters"]
# Parameters. The defaults train for about a minute on a 2-core CPU.
BARS = 8  # of the generated song
SEED = 0
EPOCHS = 2  # of the small model (the quick preset: 10 epochs of 34 updates; shipped: the card's command)

# %%
import dataclasses
import inspect
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import matplotlib.pyplot as plt
from IPython.display import Audio, display

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.audio import music  # the app's module, which this notebook reads
from zoo.data import music as music_data

start = time.perf_counter()
spec = zoo.apps("music")[0]
print(spec.summary)

# %% [markdown]
# ## A generated song
#
# `zoo.load("music")` loads the chorale model (`corpus="folk"` loads the folk-song one); a call
# samples a song, seeded, and returns its tokens, its sound (rendered with fluidsynth and a
# General MIDI soundfont when installed, else a small NumPy synthesiser) and its piano roll.

# %%
composer = zoo.load("music")
song = composer(bars=BARS, seed=SEED)
print(song.text)
print(song.to_dict())
plt.figure(figsize=(12, 3))
plt.imshow(song.piano_roll)
plt.axis("off")
plt.show()
sample_rate, samples = song.audio
display(Audio(samples.T if samples.ndim == 2 else samples, rate=sample_rate))
bar_length, events = music_data.decode(song.tokens)
assert song.events > 0 and abs(sum(d for _, d in events) - BARS * bar_length) < 1e-6  # exactly BARS bars

# %% [markdown]
# ## Continue a tune you play or hum
#
# `primer=` takes a MIDI file, or a recording of a tune sung, hummed or played (any file
# `zoo.data.audio` reads). pYIN (Mauch & Dixon, 2014) tracks its pitch frame by frame, runs of one
# pitch become notes, and the median note becomes a quarter note (a recording has no written
# beat). Here a known tune, played by fluidsynth's General MIDI piano into a WAV file, is
# transcribed back and continued.

# %%
import tempfile
from pathlib import Path

played = [(67, 1.0), (69, 1.0), (71, 2.0), (72, 1.0), (71, 0.5), (69, 0.5), (67, 1.0), (64, 2.0), (62, 1.0)]
rate, sound, renderer = music_data.render_audio(played, 4.0, tempo=96)
tune = Path(tempfile.mkdtemp()) / "tune.wav"
music_data.write_wav(tune, rate, sound)
_, heard = music_data.read_primer(tune)
print(f"played by {renderer}; heard:", heard)
continued = composer(bars=BARS, seed=SEED, primer=tune)
print(continued.text)
plt.figure(figsize=(12, 3))
plt.imshow(continued.piano_roll)
plt.axis("off")
plt.show()
# Every pitch comes back; the last note rings on in the piano's decay, so its length may not.
assert [p for p, _ in heard if p is not None][: len(played)] == [p for p, _ in played]
assert continued.primer_events == len(heard)

# %% [markdown]
# ## How it works: reading `zoo/audio/music.py`
#
# **Tokens.** A melody is a METER token, then for each note or rest a pitch-or-rest token and
# a duration token, snapped to the durations the corpus uses:

# %%
print(inspect.getsource(music_data.encode))
print("the first tokens of the song:", song.tokens[:12])

# %% [markdown]
# **The model** is an LSTM language model with two extra inputs beside each token: where in
# the bar it falls, and the pitches (and remaining durations) of the parts above the line, so
# that a chorale's four lines get one joint probability, soprano, then alto given soprano, and
# so on. The same layers run a token at a time when generating:

# %%
print(inspect.getsource(music.forward))
print(inspect.getsource(music.next_token))

# %% [markdown]
# **The baseline** is an interpolated Kneser-Ney n-gram over the same tokens, whose order and
# discount are tuned on the validation tunes: the strongest n-gram that can be picked fairly.
# The metric is the negative log-likelihood per token of the held-out tunes (lower is better;
# its exponential is the perplexity).

# %%
print(inspect.getsource(music.ngram_baseline))

# %% [markdown]
# ## Train a small model
#
# The quick preset (128 LSTM units) for a couple of epochs of random transpositions of the
# training lines, then the held-out tunes scored by the small model, the shipped one and the
# n-gram.

# %%
splits = music.load_lines("chorales", None)
config = dataclasses.replace(music.PRESETS["quick"], epochs=EPOCHS)
rows = music.TransposedRows(splits["train"], config, SEED)
keras.utils.set_random_seed(SEED)
small = music.build_model(config)
small.compile(
    optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(config.learning_rate, EPOCHS * len(rows)), clipnorm=1.0
    ),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
t0 = time.perf_counter()
small.fit(rows, epochs=EPOCHS, verbose=2)
print(f"{small.count_params():,} parameters, {EPOCHS * len(rows)} updates in {time.perf_counter() - t0:.0f} s")

baseline = music.ngram_baseline(splits, config.transpose)
scores = {
    "small, just trained": music.model_nll(small, splits["test"]),
    "shipped": music.model_nll(composer.model, splits["test"]),
    baseline["name"]: baseline["nll"],
}
for name, nll in scores.items():
    print(f"{name:>70}: NLL {nll:.3f} per token, perplexity {math.exp(nll):.3f}")
plt.barh(list(scores), [math.exp(v) for v in scores.values()])
plt.xlabel(f"perplexity on the {len(splits['test'])} held-out lines (lower is better)")
plt.show()
assert scores["small, just trained"] < math.log(music_data.VOCAB_SIZE) - 1  # far better than uniform
assert scores["shipped"] < baseline["nll"] < scores["small, just trained"]

# %% [markdown]
# ## The full recipe and the card's numbers
#
# The model card (`zoo/weights/music.json`; `zoo.apps()` in Python, `zoo info music` on the
# command line) records each model's training commands (the chorale model starts from the
# folk model), wall times and what `zoo evaluate music` measured beside the n-gram.

# %%
zoo_cli(["info", "music"])
card = spec.entry("chorales")
print(
    f"shipped NLL: the card {card.metrics['nll']}, this notebook {scores['shipped']:.4f}; "
    f"n-gram: the card {card.baseline['metrics']['nll']}, this notebook {baseline['nll']}"
)
assert abs(card.metrics["nll"] - scores["shipped"]) < 1e-3
assert abs(card.baseline["metrics"]["nll"] - baseline["nll"]) < 1e-3
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     KERAS_BACKEND=jax zoo train music --corpus folk --preset full --epochs 28   # the folk model
#     KERAS_BACKEND=jax zoo train music --preset finetune --init folk             # chorales, from it
#     zoo evaluate music                                 # beside the n-gram, with the copy check
#     zoo demo music --bars 16 --seed 3 -o song.mid      # song.mid, song.wav, song.png
