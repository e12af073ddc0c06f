"""Training a face embedding of one's own: a small residual CNN with a CosFace margin loss
(Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018), through
`harness.fit` (so `--resume` and `--distribute` apply as for every harness app).

    zoo train faces --data people/        # people/<name>/*.jpg

Each photo's largest face is found and aligned by the same pipeline as inference
(`pipeline.gallery_chips`), and its chip resized to the preset's side as `pipeline.embed`
resizes it, so the embedding learns from exactly what it will be shown. Offline, generated
identities (`zoo.data.faces.generated_identities`: random patterns, not faces) stand in for
chips. A quarter of the people are held out, and all pairs of their photos are scored
(`evaluation.score`; chance is an EER of 0.5). The run's `embedding.keras` is `--weights RUN`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from zoo import harness
from zoo.data import faces as face_data
from zoo.vision.faces import evaluation
from zoo.vision.faces.pipeline import gallery_chips, resize_chips, squared_distances


@dataclasses.dataclass
class Config:
    size: int = 32  # side of the training chips
    width: int = 32  # channels of the first stage; doubled per stage
    dims: int = 64  # embedding size
    margin: float = 0.35  # CosFace additive cosine margin
    scale: float = 30.0  # CosFace logit scale
    people: int = 40  # generated identities (offline), a quarter held out
    per_person: int = 12
    batch_size: int = 64
    steps_per_epoch: int = 20
    epochs: int = 12
    learning_rate: float = 2e-3
    data: str | None = None


PRESETS = {
    "quick": Config(),
    "full": Config(size=64, width=48, dims=128, people=400, per_person=20, epochs=40),
}


@keras.saving.register_keras_serializable(package="zoo")
class CosFace(layers.Layer):
    """Logits s * (cos(theta_j) - m [j = label]) over L2-normalised class weights (Wang et al., 2018)."""

    def __init__(self, classes: int, margin: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.margin, self.scale = classes, margin, scale

    def build(self, input_shape):
        self.centres = self.add_weight(
            shape=(input_shape[0][-1], self.classes), initializer="glorot_normal", name="centres"
        )

    def call(self, inputs):
        embedding, labels = inputs
        cosine = ops.matmul(embedding, self.centres / ops.norm(self.centres, axis=0, keepdims=True))
        onehot = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.classes)
        return self.scale * (cosine - self.margin * onehot)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "margin": self.margin, "scale": self.scale}


@keras.saving.register_keras_serializable(package="zoo")
class L2Normalize(layers.Layer):
    def call(self, x):
        return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-9)


def build_model(config: Config) -> keras.Model:
    """A small ResNet-like embedding: (N, size, size, 3) RGB in [0, 255] -> (N, dims), unit length.

    Down-sampling uses 3x3 stride-2 convolutions (no strided 1x1 projection: see the oneDNN note).
    """
    image = keras.Input((config.size, config.size, 3), name="face_rgb")
    x = layers.Rescaling(1 / 127.5, -1.0, name="scale")(image)
    width = config.width
    for stage in range(3):
        x = layers.Conv2D(width, 3, strides=1 if stage == 0 else 2, padding="same", name=f"stage{stage}_down")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"stage{stage}_bn")(x)  # short runs: fast statistics
        x = layers.ReLU()(x)
        y = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"stage{stage}_a")(x)
        y = layers.Conv2D(width, 3, padding="same", name=f"stage{stage}_b")(y)
        x = layers.ReLU()(layers.Add(name=f"stage{stage}_add")([x, y]))
        width *= 2
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(config.dims, name="projection")(x)
    return keras.Model(image, L2Normalize(name="unit")(x), name="faces_cosface")


def training_model(embedding: keras.Model, classes: int, config: Config) -> keras.Model:
    image = keras.Input(embedding.input.shape[1:], name="face_rgb")
    label = keras.Input((1,), name="label", dtype="int32")
    logits = CosFace(classes, config.margin, config.scale, name="cosface")([embedding(image), label])
    return keras.Model([image, label], logits, name="faces_cosface_training")


def identities(config: Config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(chips (N, size, size, 3), person labels): a folder's aligned faces, or generated identities."""
    if not config.data:
        return face_data.generated_identities(config.people, config.per_person, config.size, seed)
    names, chips, _ = gallery_chips(Path(config.data))
    return resize_chips(chips, config.size), np.unique(names, return_inverse=True)[1]


def split_identities(images: np.ndarray, labels: np.ndarray):
    """(train images, train labels 0..K-1, held-out images, held-out labels): held-out are unseen people."""
    people = np.unique(labels)
    held = people[: max(2, len(people) // 4)]
    test = np.isin(labels, held)
    train_labels = np.searchsorted(np.unique(labels[~test]), labels[~test])
    return images[~test], train_labels, images[test], labels[test]


def verification_rate(embedding: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict:
    """All pairs of held-out photos, scored (EER, AUC, accuracy at the best threshold); chance is 0.5 EER."""
    vectors = np.asarray(embedding.predict(np.asarray(images, np.float32), verbose=0))
    i, j = np.triu_indices(len(labels), 1)
    distances = np.sqrt(np.maximum(squared_distances(vectors, vectors)[i, j], 0))
    row, _ = evaluation.score(distances, labels[i] == labels[j])
    return {"held_out_people": int(len(np.unique(labels))), "held_out_pairs": int(len(i)), **row, "chance_eer": 0.5}


class Batches(harness.EpochSeeded):
    """({"face_rgb", "label"}, label) batches drawn at random each step, with horizontal flips;
    the draws are a function of (seed, epoch, step), so a resumed run draws what it would have."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int, seed: int):
        super().__init__(seed)
        self.images, self.labels, self.batch_size, self.steps = images, labels, batch_size, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = self.rng(index)
        pick = rng.choice(len(self.labels), min(self.batch_size, len(self.labels)), replace=False)
        images = self.images[pick].astype(np.float32)
        flip = rng.random(len(pick)) < 0.5
        images[flip] = images[flip, :, ::-1]
        return inputs(images, self.labels[pick])


def inputs(images: np.ndarray, labels: np.ndarray) -> tuple[dict, np.ndarray]:
    """The training model's ({"face_rgb", "label"}, label) for these photos."""
    labels = labels.astype(np.int32)
    return {"face_rgb": images.astype(np.float32), "label": labels[:, None]}, labels


def train(*, preset: str, epochs: int | None, data: Path | None, out: Path | None, resume: bool, seed: int) -> dict:
    config = dataclasses.replace(PRESETS[preset], data=str(data) if data else None)
    run = harness.start_run("faces", config, out, resume, seed, epochs)
    config = run.config
    x, y, held_x, held_y = split_identities(*identities(config, run.seed))
    order = np.random.default_rng(run.seed).permutation(len(y))
    validation, fitted = order[: max(1, len(y) // 10)], order[max(1, len(y) // 10) :]
    with harness.scope():  # a distributed run's model and optimizer are mirrored on every replica
        embedding = build_model(config)
        model = training_model(embedding, int(y.max()) + 1, config)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    harness.fit(
        run,
        model,
        Batches(x[fitted], y[fitted], config.batch_size, config.steps_per_epoch, run.seed),
        inputs(x[validation], y[validation]),
        epochs=config.epochs,
    )
    trained = harness.best_model(run).get_layer(embedding.name)
    final = run.file("embedding.keras")
    trained.save(final)
    metrics = verification_rate(trained, held_x, held_y)
    run.write_metrics(metrics)
    return {"run": str(run.path), "embedding": str(final), **metrics}
