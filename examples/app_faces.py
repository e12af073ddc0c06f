# %% [markdown]
# # Face recognition: the `faces` app
#
# **Title:** Face recognition: the `faces` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Enrol people and recognise them in real photos with dlib's embedding rebuilt in Keras,
# read the pipeline in `zoo/vision/faces/`, train a small embedding and measure it beside chance.
#
# "Who is this?" in four steps: find the faces, find five landmarks on each, cut an aligned
# 150x150 chip, and map the chip to a 128-number descriptor such that photos of one person lie
# close together. The last step is dlib's ResNet, read from its `.dat` file and rebuilt with
# Keras layers (no face-identity dataset reaches the machines that built the zoo, so the
# embedding is converted, not trained here). This notebook recognises people through
# `zoo.load`, reads the pipeline (quoted from the running source), trains a small embedding on
# generated identities, and ends with the card's numbers and commands.

# %% tags=["parameters"]
# Parameters. The defaults run in about a minute on a 2-core CPU.
ENROLLED = ("obama", "biden", "grace_hopper", "astronaut")  # one photo each goes into the gallery
QUERIES = ("obama2", "obama3", "obama_partial_face")  # other photos, recognised against the gallery
EPOCHS = 6  # of the small embedding's training (the quick preset: 12; full: 40, on 400 identities)

# %%
import inspect
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib.pyplot as plt
from PIL import Image

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.data.faces import packaged_photos
from zoo.vision.faces import app, landmarks, pipeline, resnet, training  # the modules this notebook reads

start = time.perf_counter()
spec = zoo.apps("faces")[0]
print(spec.summary)

# %% [markdown]
# ## Enrol four people, recognise three photos
#
# The photos are real and ship in packages: the face_recognition project's test photos
# (fetched by `make setup`), Grace Hopper from matplotlib and the astronaut Eileen Collins from
# scikit-image. A gallery is a folder of `<person>/*.jpg`; `zoo.load("faces", gallery=...)`
# embeds it once, then each call finds, aligns, embeds and names the faces of its photos.

# %%
photos = packaged_photos()
gallery = Path(tempfile.mkdtemp()) / "people"
for person in ENROLLED:
    (gallery / person).mkdir(parents=True)
    Image.fromarray(photos[person]).save(gallery / person / f"{person}.jpg")

recognizer = zoo.load("faces", gallery=str(gallery))
results = recognizer([photos[name] for name in QUERIES])
fig, axes = plt.subplots(1, len(QUERIES), figsize=(5 * len(QUERIES), 5))
for ax, name, result in zip(axes, QUERIES, results):
    ax.imshow(result.image)
    ax.set_title(f"{name}: {result.faces[0].label}")
    ax.axis("off")
plt.show()
for result in results:
    print(result.to_dict()["faces"])
assert all(result.faces[0].name == "obama" for result in results)

# %%
same = recognizer.verify(photos["obama"], photos["obama2"])
different = recognizer.verify(photos["obama"], photos["biden"])
print(
    f"obama ~ obama2: distance {same.distance:.3f} (same: {same.same}); "
    f"obama ~ biden: {different.distance:.3f} (same: {different.same}); threshold {same.threshold}"
)
assert same.same and not different.same

# %% [markdown]
# ## How it works: reading `zoo/vision/faces/`
#
# **The pipeline.** A detector (MTCNN) proposes boxes; dlib's regression-tree landmark
# predictor (Kazemi and Sullivan, 2014), ported to NumPy, finds the eyes' corners and the base
# of the nose; a similarity transform cuts the chip exactly as dlib does, so the converted
# network sees what it was trained on:

# %%
print(inspect.getsource(pipeline.find_faces))
print(inspect.getsource(landmarks.extract_chip))
face = pipeline.largest_face(photos["grace_hopper"], "grace_hopper")
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
left.imshow(photos["grace_hopper"])
left.plot(face.landmarks[:, 0], face.landmarks[:, 1], "c.", markersize=10)
left.set_title("five landmarks")
right.imshow(face.chip)
right.set_title(f"aligned chip {face.chip.shape[0]}x{face.chip.shape[1]}")
for ax in (left, right):
    ax.axis("off")
plt.show()

# %% [markdown]
# **The embedding** is dlib's ResNet (29 convolutional layers, 128-d output), read from the
# `.dat` file's own serialisation and rebuilt from its layer list with Keras layers; a residual
# unit of the grammar that rebuilds it:

# %%
print(inspect.getsource(pipeline.embed))
print(inspect.getsource(resnet._unit))

# %% [markdown]
# **Naming** is the nearest enrolled descriptor, if it is nearer than the threshold stored
# with the model (0.6, dlib's):

# %%
print(inspect.getsource(app.identify))

# %% [markdown]
# ## Train a small embedding
#
# `zoo train faces` trains an embedding of one's own with a CosFace margin loss (Wang et al.,
# 2018): class logits $s(\cos\theta_j - m\,[j = y])$ over normalised weights, which pull each
# person's chips together and push people apart by a margin. Offline there are no face
# identities to train on, so its default data are **generated identities: random patterns, not
# faces**; a quarter of them are held out, and all pairs of their images are scored. Chance is
# an equal-error rate (EER) of 0.5.

# %%
print(inspect.getsource(training.CosFace.call))
t0 = time.perf_counter()
small = training.train(
    preset="quick", epochs=EPOCHS, data=None, out=Path(tempfile.mkdtemp()) / "run", resume=False, seed=0
)
print(f"trained {EPOCHS} epochs in {time.perf_counter() - t0:.0f} s")
print({k: v for k, v in small.items() if k not in ("run", "embedding")})
assert small["eer"] < 0.3  # far from chance (0.5) on identities it never saw

# %% [markdown]
# ## The card's numbers and commands
#
# The model card (`zoo/weights/faces.json`; `zoo.apps()` in Python, `zoo info faces` on the
# command line) records how the embedding is built (`zoo faces import-dlib`) and what `zoo
# evaluate faces` measured on all pairs of the packaged photos, beside the baseline (the
# distance between aligned grey chips). Measure it here:

# %%
zoo_cli(["info", "faces"])
measured = app.evaluate(
    weights=None, pairs=None, lfw=False, roc_png=None, threshold=0.6, force=False, reliability_png=None
)
card = spec.entry()
print(
    f"{measured['pairs']} pairs: accuracy {measured['accuracy']}, EER {measured['eer']} "
    f"(the card: {card.metrics['accuracy']}, {card.metrics['eer']}); "
    f"baseline accuracy {measured['baseline']['accuracy']} (the card: {card.baseline['metrics']['accuracy']})"
)
assert measured["accuracy"] == card.metrics["accuracy"] and measured["eer"] == card.metrics["eer"]
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo faces import-dlib                          # build the embedding from the installed dlib model
#     zoo evaluate faces                             # the card's numbers; --lfw with internet
#     zoo faces enroll people/ --db gallery.npz      # a gallery, saved
#     zoo demo faces photo.jpg --db gallery.npz -o boxes.png
#     zoo train faces --data people/                 # an embedding of your own
