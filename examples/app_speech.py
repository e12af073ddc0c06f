# %% [markdown]
# # Spoken digits: the `speech` app
#
# **Title:** Spoken digits: the `speech` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Hear spoken digits with the shipped DS-CNN, read `zoo/audio/speech.py`, train a small
# model on real voices for a minute and measure it beside a nearest-neighbour baseline.
#
# The `speech` app hears one spoken digit (0-9) in any recording: silence trimmed, the speech
# centred in a one-second window, 40 log-mel bands every 10 ms, and a small
# depthwise-separable CNN. It learns from four real speakers (the Free Spoken Digit Dataset)
# beside over a hundred synthetic voices, with augmentation that makes one voice sound like
# many. This notebook hears a held-out speaker through `zoo.load`, reads the module's key parts
# (quoted from the running source), trains a small model on the real voices alone, and ends
# with the card's recipe and numbers.

# %% tags=["parameters"]
# Parameters. The defaults train for about a minute on a 2-core CPU.
EPOCHS = 3  # of the small model, on the real training recordings only (the quick preset: 6, with synthetic voices)
SHOWN = (3, 7, 10)  # which of the asterisk recordings (0-9, then "oh") to show and play

# %%
import dataclasses
import inspect
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.audio import speech  # the app's module, which this notebook reads
from zoo.data import audio

start = time.perf_counter()
spec = zoo.apps("speech")[0]
print(spec.summary)

# %% [markdown]
# ## A speaker the model never heard
#
# Debian's `asterisk-core-sounds-en-wav` package holds a telephone system's prompts: one
# woman saying 0-9 and "oh", at 8 kHz. No recording of her was used in training (the four
# FSDD speakers are men). `zoo.load("speech")` loads the model; a call takes recordings (paths,
# or `(sample rate, samples)` pairs) and returns, for each, the digit, every digit's
# probability, the log-mel picture the model saw, and the audio.

# %%
listener = zoo.load("speech")
clips = audio.asterisk_clips()
heard = listener([(audio.SAMPLE_RATE, clip.samples) for clip in clips])
correct = [h.digit == c.digit for h, c in zip(heard, clips)]
print(f"asterisk speaker: {sum(correct)} of {len(clips)} right")
fig, axes = plt.subplots(1, len(SHOWN), figsize=(5 * len(SHOWN), 3))
for ax, index in zip(axes, SHOWN):
    ax.imshow(heard[index].picture)
    ax.set_title(f"said {clips[index].digit}, heard {heard[index].digit} ({heard[index].confidence:.0%})")
    ax.axis("off")
plt.show()
for index in SHOWN:
    display(Audio(clips[index].samples, rate=audio.SAMPLE_RATE))
print(heard[SHOWN[0]].to_dict())
assert sum(correct) >= 9

# %% [markdown]
# ## How it works: reading `zoo/audio/speech.py`
#
# **The front end** trims silence, refuses what cannot be one digit, and centres the speech in
# the model's one-second window; the log-mel frames are in dB below the clip's loudest, so
# loudness does not matter:

# %%
print(inspect.getsource(speech.speech_window))
print(inspect.getsource(audio.log_mel))

# %% [markdown]
# **Augmentation** makes a recording sound as another room, line, speaker and pace might:
# speed (tempo and pitch together), reverberation, a telephone band and coloured noise, fresh
# every epoch; the features then get a frequency warp (vocal tract length perturbation), and
# SpecAugment's masks act inside the model while it trains.

# %%
print(inspect.getsource(speech.augment))
rng = np.random.default_rng(0)
fsdd = speech.real_speakers(speech.PRESETS["quick"])
example = audio.trim(fsdd[0].samples)
fig, axes = plt.subplots(1, 4, figsize=(16, 2.6))
for ax, title in zip(axes, ["as recorded", "augmented", "augmented", "augmented"]):
    window, warp = (
        (speech.speech_window(example), 1.0)
        if title == "as recorded"
        else speech.augment(example, rng, speech.PRESETS["quick"])
    )
    ax.imshow(audio.log_mel(window, warp).T[::-1], aspect="auto", cmap="viridis")
    ax.set_title(f"{fsdd[0].name}: {title}")
    ax.axis("off")
plt.show()

# %% [markdown]
# **The model** is "Hello Edge"'s DS-CNN (Zhang et al., 2017): a strided convolution, then
# depthwise-separable blocks, global pooling and one dense layer:

# %%
print(inspect.getsource(speech.build_model))

# %% [markdown]
# What ships is two of them, their probabilities averaged: one hears the log-mels as they are,
# the other each band less its mean over the clip, which cancels a microphone's colouring. Left
# out of training, each FSDD speaker is missed by one of the two, and by the pair less often:

# %%
print(inspect.getsource(speech.BandMeanNormalization.call))
print(inspect.getsource(speech.averaged))
print([layer.name for layer in listener.model.layers])

# %% [markdown]
# ## Train a small model on the real voices
#
# The quick preset's network, trained on the four FSDD speakers' training recordings only
# (indices 10-49 of each digit; no synthetic voices), augmented as above, for a few epochs.
# Measured on FSDD's own test split (indices 0-4) and on the asterisk speaker, beside the
# shipped model and a nearest neighbour on mean log-mel frames over the same training clips.

# %%
config = dataclasses.replace(speech.PRESETS["quick"], epochs=EPOCHS)
train_real = [c for c in fsdd if c.index not in speech.VALIDATION_INDICES and c.index not in speech.TEST_INDICES]
test_real = [c for c in fsdd if c.index in speech.TEST_INDICES]
batches = speech.DigitBatches([], train_real, config, seed=0)
keras.utils.set_random_seed(0)
small = speech.build_model(config)
for layer in small.layers:  # a run of 150 steps: running statistics that forget their start (1, 0) sooner
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = 0.9  # Keras's default 0.99 keeps 22% of the start after 150 steps
small.compile(
    optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
)
t0 = time.perf_counter()
small.fit(batches, epochs=EPOCHS, verbose=2)
print(f"{small.count_params():,} parameters, {len(train_real)} recordings, trained in {time.perf_counter() - t0:.0f} s")

neighbour = speech.NearestNeighbour(train_real)
rows = {
    "nearest neighbour (baseline)": (neighbour.accuracy(test_real), neighbour.accuracy(clips)),
    "small, real voices only": (speech.accuracy(small, test_real), speech.accuracy(small, clips)),
    "shipped": (speech.accuracy(listener.model, test_real), speech.accuracy(listener.model, clips)),
}
print(f"{'':>30} {'FSDD test split':>16} {'asterisk (held out)':>20}")
for name, (fsdd_accuracy, asterisk_accuracy) in rows.items():
    print(f"{name:>30} {fsdd_accuracy:16.1%} {asterisk_accuracy:20.1%}")
# A minute of training learns the four voices it hears far above chance (10%), not yet past the nearest
# neighbour; the shipped pair (synthetic voices beside the real ones) beats it, most on a new voice.
assert rows["small, real voices only"][0] > 0.3
assert all(shipped > baseline for shipped, baseline in zip(rows["shipped"], rows["nearest neighbour (baseline)"]))
assert rows["shipped"][1] > rows["nearest neighbour (baseline)"][1] + 0.5

# %% [markdown]
# ## The full recipe and the card's numbers
#
# The model card (`zoo/weights/speech.json`; `zoo.apps()` in Python, `zoo info speech` on the
# command line) records the training command, its wall time and what `zoo evaluate speech`
# measured on every real speaker beside the baselines.

# %%
zoo_cli(["info", "speech"])
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo train speech --preset full             # the shipped pair (the card's command)
#     zoo evaluate speech --loso full            # leave one speaker out: the card's loso_full
#     zoo train speech --hold-out real           # synthetic voices only
#     zoo evaluate speech --loso quick           # leave one speaker out, once per FSDD speaker
#     zoo demo speech recording.wav              # your recording
#     zoo demo speech --say 7                    # espeak-ng says it, the model hears it
