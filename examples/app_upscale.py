# %% [markdown]
# # Super-resolution: the `upscale` app
#
# **Title:** Super-resolution: the `upscale` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/07<br>
# **Description:** Upscale a held-out photo with the shipped model, read how `zoo/vision/upscale/` works,
# train a small one for a minute and measure it beside bicubic upsampling.
#
# Super-resolution guesses the detail that a small image lost. The zoo's model is a small
# residual CNN on the luma channel that predicts only what bicubic upsampling misses. This
# notebook runs it through the Python face of the zoo (`zoo.load`), reads the key parts of its
# module (quoted from the source, so the quotes are always the running code), trains a small
# version, and ends with the full recipe and the model card's numbers.

# %% tags=["parameters"]
# Parameters. The defaults train for about a minute on a 2-core CPU.
SCALE = 2  # 2, 3 or 4: which shipped model to load and which small one to train
EPOCHS = 4  # of the small training run (the card's quick preset: 10; full: 40)
STEPS_PER_EPOCH = 100  # (quick preset: 100; full: 500)
EVALUATION_PHOTOS = ("chelsea", "coffee")  # held-out photos to measure on (all four: + "china", "grace_hopper")

# %%
import dataclasses
import inspect
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.data import photos
from zoo.vision import upscale  # the app's module, which this notebook reads

start = time.perf_counter()
spec = zoo.apps("upscale")[0]
print(spec.summary)

# %% [markdown]
# ## The shipped model on a held-out photo
#
# `zoo.load` reads the model card, checks the shipped file's sha256 and loads it once; calling
# the predictor on a photo (a path, a PIL image or an array) returns a typed result. Chelsea
# the cat ships inside scikit-image and was held out of training. We shrink her photo by the
# scale factor (the degradation the model learnt to invert), upscale it back, and compare with
# the original and with Pillow's bicubic upsampling.

# %%
upscaler = zoo.load("upscale", scale=SCALE)
original = upscale.crop_to_multiple(photos.photo("chelsea"), SCALE)
small = upscale.downscale(original, SCALE)
result = upscaler(small)
bicubic = np.asarray(Image.fromarray(small).resize(result.image.size, Image.BICUBIC))
print(result.text)
print(result.to_dict())

window = (slice(60, 180), slice(120, 280))  # an eye and the fur around it, where the difference shows
panels = {
    "shrunk input (nearest)": np.asarray(Image.fromarray(small).resize(result.image.size, Image.NEAREST)),
    "bicubic": bicubic,
    f"zoo x{SCALE}": np.asarray(result.image),
    "original": original,
}
fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
for ax, (title, image) in zip(axes, panels.items()):
    ax.imshow(image[window])
    ax.set_title(title)
    ax.axis("off")
plt.show()

model_psnr, model_ssim = upscale.y_metrics(original, np.asarray(result.image), SCALE)
bicubic_psnr, bicubic_ssim = upscale.y_metrics(original, bicubic, SCALE)
print(f"Y-PSNR: bicubic {bicubic_psnr:.2f} dB, zoo {model_psnr:.2f} dB ({model_psnr - bicubic_psnr:+.2f} dB)")
assert result.image.size == (small.shape[1] * SCALE, small.shape[0] * SCALE)
assert model_psnr > bicubic_psnr + 0.5 and model_ssim > bicubic_ssim

saved = result.save(Path(tempfile.mkdtemp()) / f"chelsea_x{SCALE}.png")  # what `zoo demo upscale` writes
assert np.array_equal(np.asarray(Image.open(saved)), np.asarray(result.image))

# %% [markdown]
# ## How it works: reading `zoo/vision/upscale/`
#
# **Bicubic inside the model.** Bicubic upsampling by an integer factor $s$ is a convolution:
# each low-resolution pixel produces $s^2$ output pixels (its *phases*), each a weighted sum of
# a 5x5 neighbourhood with weights from Keys' cubic kernel. Written as a convolution with $s^2$
# output channels followed by depth-to-space, it becomes a fixed Keras layer:

# %%
print(inspect.getsource(upscale.bicubic_subpixel_kernel))
print(inspect.getsource(upscale.BicubicUpsample.call))

# %% [markdown]
# Check that claim: the layer on Chelsea's small luma should equal Pillow's bicubic, up to
# Pillow's rounding to 8 bits and the image borders (the layer mirrors, Pillow clamps).

# %%
luma_small = upscale.rgb_to_ycbcr(small)[..., :1][None]
layer_bicubic = np.asarray(upscale.BicubicUpsample(SCALE)(luma_small))[0, ..., 0] * 255
pillow_bicubic = upscale.luma(bicubic)
inner = (slice(8, -8), slice(8, -8))
difference = np.abs(layer_bicubic - pillow_bicubic)[inner]
print(
    f"BicubicUpsample against Pillow's bicubic, inside the border: mean {difference.mean():.2f}, "
    f"max {difference.max():.2f} grey levels"
)
assert difference.mean() < 1.0

# %% [markdown]
# **The network** learns only the residual over that bicubic image. A head convolution, a body of
# residual blocks (EDSR's, without batch normalisation), and a sub-pixel convolution whose $s^2$
# channels depth-to-space rearranges into the $s$ times larger grid. Two zero initialisations
# make an untrained model exactly bicubic, so training can only add detail:

# %%
print(inspect.getsource(upscale.build_model))
untrained = upscale.build_model(upscale.Config(scale=SCALE))
assert np.allclose(np.asarray(untrained(luma_small)), np.asarray(upscale.BicubicUpsample(SCALE)(luma_small)))
print(f"untrained model == bicubic: True; {untrained.count_params():,} parameters")

# %% [markdown]
# **Tiled inference.** A 12-megapixel photo does not fit in a CPU's cache as one batch of
# activations, so `upscale_to_image` runs tile by tile, each tile with a margin wider than the
# network's receptive field: the tiled result equals the whole-image result.

# %%
print(inspect.getsource(upscale.upscale_to_image))
tiled = upscale.upscale_image(upscaler.model, small, tile=64)
assert np.array_equal(tiled, np.asarray(result.image))  # 64-pixel tiles give the very same pixels

# %% [markdown]
# **Training data** are random patches of the training photos, shrunk with the same bicubic
# filter as the evaluation, flipped and rotated; **the metric** is PSNR and SSIM on luma with a
# border of `scale` pixels cropped, the convention of super-resolution papers.

# %%
print(inspect.getsource(upscale.PatchDataset.__getitem__))
print(inspect.getsource(upscale.y_metrics))

# %% [markdown]
# ## Train a small one
#
# The module's own pieces, at a fraction of the quick preset: the same model, patches from the
# photos that ship in the wheels (the held-out four never among them), L1 loss, Adam on a cosine
# schedule. Then the small model, the shipped one and bicubic on the same held-out photos.

# %%
config = dataclasses.replace(upscale.PRESETS["quick"], scale=SCALE, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)
training = [p for name, p in photos.sample_photos("train").items() if name not in upscale.VALIDATION_PHOTOS]
patches = upscale.PatchDataset(training, SCALE, config.patch, config.batch_size, config.steps_per_epoch, seed=0)

keras.utils.set_random_seed(0)
small_model = upscale.build_model(config)
schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * config.steps_per_epoch)
small_model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mean_absolute_error")
t0 = time.perf_counter()
history = small_model.fit(patches, epochs=config.epochs, verbose=2)
print(f"trained {config.epochs * config.steps_per_epoch} steps in {time.perf_counter() - t0:.0f} s")

held_out = {name: photos.photo(name) for name in EVALUATION_PHOTOS}
small_scores = upscale.evaluate_model(small_model, held_out)
shipped_scores = upscale.evaluate_model(upscaler.model, held_out)
print(f"{'':>22} {'Y-PSNR':>8} {'SSIM':>7}   on {', '.join(EVALUATION_PHOTOS)}")
print(f"{'bicubic (baseline)':>22} {small_scores['bicubic_psnr_y']:8.2f} {small_scores['bicubic_ssim_y']:7.4f}")
print(f"{'small, just trained':>22} {small_scores['psnr_y']:8.2f} {small_scores['ssim_y']:7.4f}")
print(f"{'shipped':>22} {shipped_scores['psnr_y']:8.2f} {shipped_scores['ssim_y']:7.4f}")
assert small_scores["gain_db"] > 0.5  # a minute of training already beats bicubic...
assert shipped_scores["gain_db"] > small_scores["gain_db"]  # ...and the full recipe beats a minute

# %% [markdown]
# ## The full recipe and the card's numbers
#
# The model card (`zoo/weights/upscale.json`; `zoo.apps()` in Python, `zoo info` on the command
# line) records, for each shipped file, the command that trained it, where, how long it took,
# and what `zoo evaluate` measured beside the baseline on the four held-out photos. The Chelsea number
# measured above must be the card's own, to 0.1 dB.

# %%
zoo_cli(["info", "upscale"])  # the card as `zoo info upscale` prints it

card_entry = spec.entry(f"x{SCALE}")
card_chelsea = card_entry.extra.get("per_image", {}).get("chelsea")
if card_chelsea:  # the card's per-photo numbers for the shipped file: the notebook measures the same
    print(f"Chelsea: the card says {card_chelsea['psnr_y']} dB, this notebook measured {model_psnr:.3f} dB")
    assert abs(card_chelsea["psnr_y"] - model_psnr) < 0.1
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo train upscale --scale 2                  # the quick preset: 10 x 100 steps, ~8 minutes on 2 CPU cores
#     zoo train upscale --scale 2 --preset full    # the recipe of the shipped files (a GPU: ~4 minutes)
#     zoo evaluate upscale --scale 2 --weights runs/upscale-x2-...   # beside bicubic, on the held-out photos
#     zoo demo upscale photo.jpg --scale 4         # your photo
