"""Image captioning: a convolutional encoder and a Transformer decoder, with beam search.

The model follows "Show, Attend and Tell" (Xu et al., ICML 2015) in letting
every generated word attend over a grid of image features, and replaces its
LSTM with a Transformer decoder (Vaswani et al., NeurIPS 2017): pre-norm blocks
of causal self-attention over the words so far, cross-attention over the image
grid and a feed-forward layer. The cross-attention weights of the last block,
averaged over heads, are the attention maps `zoo demo` draws, one per word.

Encoders (`--backbone`): `cnn`, a small CNN trained from scratch (the default,
and what the shipped weights use); a frozen `keras.applications` model with
ImageNet weights (`efficientnetb0`, `mobilenetv3small`, `convnexttiny`); or
`hub:HANDLE_OR_PATH`, a TF Hub handle or SavedModel folder that tensorflow-hub
resolves and `keras.layers.TFSMLayer` runs as a frozen feature extractor (its
serving signature takes images in [0, 1] and returns a feature map or vector).
Keras's safe mode will not load a TFSMLayer from a .keras file, so a hub
backbone runs outside the saved model: training computes its features once per
image, and `zoo evaluate` / `zoo demo` run it when given `--backbone hub:...`.

Data (`zoo.data.captions`): by default generated scenes of coloured shapes,
five captions each, with an `unseen` test split made only of colour-shape
pairs never seen in training, to measure compositional generalisation;
`--dataset flickr8k|coco` (Karpathy splits, downloaded and hash-checked), or
`--data DIR` (images plus captions.txt).

Metrics: corpus BLEU-1..4 and CIDEr-D as coco-caption computes them
(`zoo.text.metrics`), on the seen and unseen splits separately, beside a
nearest-neighbour baseline (each test image gets the first caption of the
training image closest in 16x16 pixels; Devlin et al., "Exploring Nearest
Neighbor Approaches for Image Captioning", 2015). The model card holds the
shipped weights' scores; for Flickr8k, compare with Show, Attend and Tell's
published BLEU-4 (soft and hard attention).

    zoo demo captioning photo.jpg --beam 3 -o maps/    # caption + one attention PNG per word
    zoo.load("captioning", beam=3)("photo.jpg").save("maps")   # the same in Python
    zoo train captioning --preset quick                 # generated scenes, ~10 CPU minutes
    zoo train captioning --preset flickr8k              # needs the downloads
    zoo evaluate captioning --beam 3
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from PIL import Image, ImageDraw

from zoo import api, harness, limits, registry
from zoo.data import captions as caption_data
from zoo.data.captions import END, PAD, START, Tokenizer
from zoo.data.images import input_image, save_image
from zoo.errors import BadInput
from zoo.files import check_output_path
from zoo.text.beam_search import Hypothesis, Tokens, decode_batch
from zoo.text.metrics import caption_scores
from zoo.vision import backbones

APP = "captioning"
TOKENIZER_FILE = "vocab.txt"  # beside a run's checkpoints; shipped weights use <name>.vocab.txt
EVALUATION_IMAGES = 500  # per generated test split
BASELINE_TRAIN_IMAGES = 5000  # training scenes the nearest-neighbour baseline searches
MAP_SIDE = 224  # attention maps are drawn on the photo at this size
SPECIAL_TOKENS = Tokens(pad=PAD, start=START, end=END)
DOMAIN_IMAGES = 2000  # training images whose encoder features the domain check's Gaussian is fitted on


@dataclasses.dataclass
class Config:
    dataset: str = "scenes"  # scenes | flickr8k | coco
    backbone: str = "cnn"  # cnn | efficientnetb0 | mobilenetv3small | convnexttiny | hub:HANDLE_OR_PATH
    image_size: int = 48
    train_images: int = 12800  # generated scenes only; real datasets use their whole split
    val_images: int = 500
    test_images: int = 500
    max_length: int = 16  # token positions, <start> and <end> included: captions of up to 14 words
    min_word_count: int = 1  # rarer words become <unk>
    vocab_size: int = 0  # set from the training captions' tokenizer
    embed_dim: int = 128
    heads: int = 4
    decoder_layers: int = 2
    ff_dim: int = 256
    dropout: float = 0.1
    batch_size: int = 64
    epochs: int = 3
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    beam: int = 3  # for the evaluation at the end of training
    data: str | None = None


PRESETS = {
    "quick": Config(),  # 600 steps: about 8 minutes on a 2-core CPU
    "full": Config(train_images=20000, epochs=5),
    "flickr8k": Config(
        dataset="flickr8k",
        backbone="efficientnetb0",
        image_size=224,
        max_length=24,
        min_word_count=5,
        embed_dim=256,
        ff_dim=512,
        heads=8,
        decoder_layers=3,
        dropout=0.3,
        epochs=20,
        learning_rate=3e-4,
    ),
}


# -------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="zoo")
class LearnedPositions(layers.Layer):
    """Adds a learned vector per position (word index, or cell of the image grid)."""

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=(self.length, input_shape[-1]),
            name="positions",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, x):
        return x + self.positions[: ops.shape(x)[1]]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "length": self.length}


@keras.saving.register_keras_serializable(package="zoo")
class DecoderBlock(layers.Layer):
    """Pre-norm Transformer decoder block; also returns its cross-attention, averaged over heads."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads, self.ff_dim, self.dropout = dim, heads, ff_dim, dropout
        self.self_attention = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="self_attention")
        self.cross_attention = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="cross_attention")
        self.feed_forward = keras.Sequential(
            [layers.Dense(ff_dim, activation="gelu"), layers.Dense(dim), layers.Dropout(dropout)], name="feed_forward"
        )
        self.norms = [layers.LayerNormalization(epsilon=1e-5, name=f"norm{i}") for i in range(3)]

    def build(self, words_shape, features_shape):
        for norm in self.norms:
            norm.build(words_shape)
        self.self_attention.build(words_shape, words_shape)
        self.cross_attention.build(words_shape, features_shape)
        self.feed_forward.build(words_shape)

    def call(self, words, features, training=None):
        h = self.norms[0](words)
        x = words + self.self_attention(h, h, use_causal_mask=True, training=training)
        attended, scores = self.cross_attention(
            self.norms[1](x), features, return_attention_scores=True, training=training
        )
        x = x + attended
        x = x + self.feed_forward(self.norms[2](x), training=training)
        return x, ops.mean(scores, axis=1)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }


def small_cnn(image):
    """48x48 RGB -> a 6x6 grid of 128 features: three stages, each halving the size, then a 3x3 convolution."""
    x = layers.Rescaling(1 / 255.0)(image)
    for stage, (filters, kernel) in enumerate(((32, 5), (64, 3), (128, 3))):
        for i, stride in enumerate((2, 1)):
            x = layers.Conv2D(
                filters,
                kernel if i == 0 else 3,
                strides=stride,
                padding="same",
                use_bias=False,
                name=f"conv{stage}_{i}",
            )(x)
            x = layers.BatchNormalization(name=f"bn{stage}_{i}")(x)
            x = layers.ReLU()(x)
    return x


def application_features(name: str, image):
    """A frozen ImageNet backbone from keras.applications (its weights download once)."""
    backbone = backbones.imagenet(name, tuple(image.shape[1:]))
    backbone.trainable = False
    return backbone(image, training=False)


class HubBackbone:
    """A TF Hub handle or SavedModel folder as a frozen feature extractor (TensorFlow backend only).

    It runs outside the saved model: Keras's safe mode refuses to load a TFSMLayer from a
    .keras file, since that would run an external SavedModel. The saved captioner starts at
    a `HubFeatures` layer that records the handle, and `zoo evaluate` / `zoo demo` run the
    backbone only when told to with `--backbone hub:...`.
    """

    def __init__(self, handle: str):
        try:
            import tensorflow_hub as hub
        except ImportError:
            raise BadInput(f"hub:{handle}: needs tensorflow-hub (pip install 'keras-zoo[text]')") from None
        try:
            self.layer = layers.TFSMLayer(hub.resolve(handle), call_endpoint="serving_default", name="hub_backbone")
        except Exception as error:
            raise BadInput(
                f"hub:{handle}: not a SavedModel with a serving_default signature "
                f"({type(error).__name__}: {str(error)[:100]})"
            ) from None
        self.handle = handle

    def __call__(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """RGB images in [0, 255] -> the backbone's features for images in [0, 1]."""
        batches = []
        for start in range(0, len(images), batch_size):
            features = self.layer(images[start : start + batch_size].astype(np.float32) / 255.0)
            batches.append(
                ops.convert_to_numpy(next(iter(features.values())) if isinstance(features, dict) else features)
            )
        return np.concatenate(batches)


@keras.saving.register_keras_serializable(package="zoo")
class HubFeatures(layers.Layer):
    """Where a hub backbone's features enter a saved captioner; records the backbone and its image size."""

    def __init__(self, handle: str, image_size: int, **kwargs):
        super().__init__(**kwargs)
        self.handle, self.image_size = handle, image_size

    def call(self, features):
        return features

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "image_size": self.image_size}


def build_encoder(config: Config) -> keras.Model:
    """RGB image in [0, 255] (or a hub backbone's features of it) -> (grid cells, embed_dim) features."""
    side = config.image_size
    if config.backbone.startswith("hub:"):
        handle = config.backbone[4:]
        probe = HubBackbone(handle)(np.zeros((1, side, side, 3), np.float32))
        inputs = keras.Input(probe.shape[1:], name="hub_image_features")
        grid = HubFeatures(handle, side, name="hub_features")(inputs)
    else:
        inputs = keras.Input((side, side, 3), name="image")
        if config.backbone == "cnn":
            grid = small_cnn(inputs)
        elif config.backbone in backbones.APPLICATIONS:
            grid = application_features(config.backbone, inputs)
        else:
            raise BadInput(
                f"--backbone {config.backbone}: expected cnn, {', '.join(backbones.APPLICATIONS)} or hub:HANDLE_OR_PATH"
            )
    if len(grid.shape) not in (2, 4) or None in grid.shape[1:]:
        raise BadInput(
            f"--backbone {config.backbone}: gives features of shape {grid.shape}; "
            "expected a fixed-size (height, width, channels) map or a vector"
        )
    cells = grid.shape[1] * grid.shape[2] if len(grid.shape) == 4 else 1
    x = layers.Reshape((cells, grid.shape[-1]), name="grid_to_sequence")(grid)
    x = layers.Dense(config.embed_dim, name="project")(x)
    x = LearnedPositions(cells, name="grid_positions")(x)
    features = layers.LayerNormalization(epsilon=1e-5, name="features")(x)
    return keras.Model(inputs, features, name="encoder")


def build_decoder(config: Config, cells: int) -> keras.Model:
    """(features, words so far) -> (next-word logits, cross-attention over the grid) at every position."""
    features = keras.Input((cells, config.embed_dim), name="features")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(config.vocab_size, config.embed_dim, name="token_embedding")(tokens)
    x = LearnedPositions(config.max_length, name="token_positions")(x)
    x = layers.Dropout(config.dropout)(x)
    for i in range(config.decoder_layers):
        x, attention = DecoderBlock(config.embed_dim, config.heads, config.ff_dim, config.dropout, name=f"block{i}")(
            x, features
        )
    x = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = layers.Dense(config.vocab_size, name="logits")(x)
    return keras.Model([features, tokens], [logits, attention], name="decoder")


def build_model(config: Config) -> keras.Model:
    """(image, tokens) -> next-token logits; `encoder` and `decoder` are its layers, for decoding."""
    if config.vocab_size < len(caption_data.SPECIAL_TOKENS):
        raise ValueError("set config.vocab_size from the tokenizer before building the model")
    encoder = build_encoder(config)
    decoder = build_decoder(config, encoder.output.shape[1])
    image = keras.Input(encoder.inputs[0].shape[1:], name="image")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    logits, _ = decoder([encoder(image), tokens])
    return keras.Model([image, tokens], logits, name="captioner")


def token_accuracy(y_true, y_pred):
    """Next-word accuracy over real (non-padding) positions."""
    mask = ops.cast(ops.not_equal(y_true, PAD), "float32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)


# --------------------------------------------------------------------- data


class CaptionBatches(harness.EpochSeeded):
    """((images, words in), words out) batches; each image gets one of its references at random each epoch."""

    def __init__(self, images: np.ndarray, token_sets: np.ndarray, batch_size: int, seed: int):
        super().__init__(seed)
        self.images, self.token_sets, self.batch_size = images, token_sets, batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        rng = self.rng(index)
        rows = self.shuffled(len(self.images))[index * self.batch_size : (index + 1) * self.batch_size]
        choice = rng.integers(self.token_sets.shape[1], size=len(rows))
        sequences = self.token_sets[rows, choice]
        return (self.images[rows].astype(np.float32), sequences[:, :-1]), sequences[:, 1:]


def encode_references(tokenizer: Tokenizer, references: list[list[str]], length: int, count: int) -> np.ndarray:
    """(images, count, length) token ids; an image with fewer references repeats them in turn."""
    return np.stack(
        [np.stack([tokenizer.encode(refs[i % len(refs)], length) for i in range(count)]) for refs in references]
    )


def training_splits(config: Config, max_words: int) -> tuple[tuple, tuple]:
    """(train, validation), each (images, references); a folder keeps its last tenth for validation."""
    if config.data:
        images, references = caption_data.caption_folder(Path(config.data), max_words, config.image_size)
        if len(images) < 2:
            raise BadInput(f"{config.data}: need at least 2 captioned images (1 is held out for validation)")
        held = max(1, len(images) // 10)
        return (images[:-held], references[:-held]), (images[-held:], references[-held:])
    if config.dataset == "scenes":
        return (
            caption_data.scenes("train", config.train_images, config.image_size),
            caption_data.scenes("val", config.val_images, config.image_size),
        )
    check_dataset(config.dataset)
    return tuple(caption_data.karpathy_split(config.dataset, s, config.image_size) for s in ("train", "val"))


def test_splits(
    dataset: str, data: Path | None, image_size: int, max_words: int, count: int = EVALUATION_IMAGES
) -> dict[str, tuple]:
    """Named test splits: seen and unseen combinations for scenes, else one "test" split."""
    if data:
        return {"test": caption_data.caption_folder(Path(data), max_words, image_size)}
    if dataset == "scenes":
        return {
            "seen": caption_data.scenes("test", count, image_size),
            "unseen": caption_data.scenes("unseen", count, image_size),
        }
    check_dataset(dataset)
    return {"test": caption_data.karpathy_split(dataset, "test", image_size)}


def check_dataset(dataset: str) -> None:
    if dataset != "scenes" and dataset not in caption_data.KARPATHY_FILES:
        raise BadInput(f"--dataset {dataset}: expected scenes, {', '.join(caption_data.KARPATHY_FILES)}")


# ----------------------------------------------------------------- decoding


def model_limits(model: keras.Model) -> tuple[int, int]:
    """(image side, token positions) of a captioner."""
    hub = _hub_layer(model)
    side = hub.image_size if hub else model.inputs[0].shape[1]
    return side, model.get_layer("decoder").get_layer("token_positions").length


def _hub_layer(model: keras.Model) -> HubFeatures | None:
    found = [layer for layer in model.get_layer("encoder").layers if isinstance(layer, HubFeatures)]
    return found[0] if found else None


def model_inputs(model: keras.Model, images: np.ndarray, backbone: str | None = None) -> np.ndarray:
    """What the model takes for these images: the images, or their features from the hub backbone."""
    return input_encoder(model, backbone)(images)


def input_encoder(model: keras.Model, backbone: str | None = None):
    """The function from images to what the model takes: none, or the hub backbone its weights were trained on."""
    hub = _hub_layer(model)
    if hub is None:
        return lambda images: images
    if not backbone or not backbone.startswith("hub:"):
        raise BadInput(
            f"this model reads features of hub:{hub.handle}; pass --backbone hub:{hub.handle} "
            "to run that SavedModel (Keras's safe mode will not run it from the weights file)"
        )
    return HubBackbone(backbone[4:])


def beam_search(model: keras.Model, images: np.ndarray, beam: int = 3, batch_size: int = 64) -> list[list[Hypothesis]]:
    """The `beam` most probable captions of each image, best first; beam=1 is greedy decoding.

    Images are decoded `batch_size` at a time, all their beams in one decoder call per step.
    """
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    max_length = model_limits(model)[1]
    results = []
    for start in range(0, len(images), batch_size):
        features = ops.convert_to_numpy(encoder(images[start : start + batch_size].astype(np.float32), training=False))
        results += decode_batch(
            features, lambda f, t: decoder.predict_on_batch([f, t]), beam, max_length, SPECIAL_TOKENS
        )
    return results


def encoder_features(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The encoder's grid of features, averaged over the grid: one vector per image (the domain check's)."""
    encoder = model.get_layer("encoder")
    return np.concatenate(
        [
            ops.convert_to_numpy(
                ops.mean(encoder(images[start : start + batch_size].astype(np.float32), training=False), axis=1)
            )
            for start in range(0, len(images), batch_size)
        ]
    )


def fit_limits(model: keras.Model, train_inputs: np.ndarray, val_inputs: np.ndarray) -> limits.ModelLimits:
    """The domain check (zoo.limits): one Gaussian of the encoder features of training images, its
    threshold on validation images. Captions have no classes to calibrate: the temperature stays 1."""
    train_inputs = train_inputs[:DOMAIN_IMAGES]
    return limits.ModelLimits.fit(
        encoder_features(model, train_inputs),
        np.zeros(len(train_inputs), np.int64),
        encoder_features(model, val_inputs),
    )


def caption_images(model: keras.Model, tokenizer: Tokenizer, images: np.ndarray, beam: int) -> list[str]:
    return [tokenizer.decode(hypotheses[0].tokens) for hypotheses in beam_search(model, images, beam)]


def attention_map(photo: np.ndarray, weights: np.ndarray, word: str) -> np.ndarray:
    """The photo (square, MAP_SIDE pixels), dimmed where the word did not look, with the word written on it."""
    side = math.isqrt(len(weights))
    grid = weights.reshape(side, side) if side * side == len(weights) else weights.reshape(1, -1)
    grid = (grid - grid.min()) / max(float(grid.max() - grid.min()), 1e-8)
    heat = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((MAP_SIDE, MAP_SIDE), Image.BILINEAR))
    picture = caption_data.square_image(photo, MAP_SIDE).astype(np.float32)
    shaded = Image.fromarray((picture * (0.2 + 0.8 * heat[..., None] / 255.0)).astype(np.uint8))
    draw = ImageDraw.Draw(shaded)
    draw.rectangle([0, 0, 8 + 7 * len(word), 16], fill=(0, 0, 0))
    draw.text((4, 2), word, fill=(255, 255, 255))
    return np.asarray(shaded)


# --------------------------------------------------------------- evaluation


def nearest_neighbour_captions(
    train_images: np.ndarray, train_references: list[list[str]], images: np.ndarray, side: int = 16
) -> list[str]:
    """The baseline: each image gets the first caption of the training image nearest in side x side pixels."""

    def pixels(batch):
        return (
            np.stack([np.asarray(Image.fromarray(i).resize((side, side), Image.BOX)) for i in batch])
            .reshape(len(batch), -1)
            .astype(np.float32)
        )

    train, query = pixels(train_images), pixels(images)
    distances = (query**2).sum(1)[:, None] - 2 * query @ train.T + (train**2).sum(1)[None]
    return [train_references[j][0] for j in distances.argmin(axis=1)]


def score_splits(
    model: keras.Model, tokenizer: Tokenizer, splits: dict, beam: int, backbone: str | None = None
) -> dict:
    """BLEU-1..4 and CIDEr-D of the model's captions on each split."""
    return {
        name: {
            **caption_scores(
                caption_images(model, tokenizer, model_inputs(model, images, backbone), beam),
                [[caption_data.normalize(r) for r in refs] for refs in references],
            ),
            "images": len(images),
        }
        for name, (images, references) in splits.items()
    }


def scene_baseline(splits: dict, image_size: int) -> dict:
    train_images, train_references = caption_data.scenes("train", BASELINE_TRAIN_IMAGES, image_size)
    return {
        "name": f"nearest neighbour ({BASELINE_TRAIN_IMAGES} training scenes, 16x16 pixels)",
        **{
            name: caption_scores(nearest_neighbour_captions(train_images, train_references, images), references)
            for name, (images, references) in splits.items()
        },
    }


def tokenizer_beside(weights: Path) -> Path:
    """A weights file's tokenizer: <name>.vocab.txt beside it, else vocab.txt in its folder."""
    named = weights.with_name(weights.stem + ".vocab.txt")
    return named if named.exists() else weights.with_name(TOKENIZER_FILE)


def load(weights: str | Path | None, tokenizer: Path | None) -> tuple[keras.Model, Tokenizer]:
    """The shipped or given weights and their tokenizer, checked to fit each other."""
    path = registry.resolve_weights(APP, weights)
    tokenizer_path = Path(tokenizer) if tokenizer else tokenizer_beside(path)
    vocabulary = Tokenizer.load(tokenizer_path)
    model = harness.load_model(path, app=APP)
    try:
        words = model.get_layer("decoder").get_layer("token_embedding").input_dim
    except ValueError:
        raise BadInput(f"{path}: not a captioning model (no decoder with a token embedding)") from None
    if words != len(vocabulary):
        raise BadInput(f"{tokenizer_path}: has {len(vocabulary)} tokens, but {path} was trained with {words}")
    return model, vocabulary


# ---------------------------------------------------------- CLI entry points


def run_training(
    config: Config, out: Path | None = None, resume: bool = False, seed: int = 0, epochs: int | None = None
) -> dict:
    """Train, keep the best checkpoint by validation loss, and score it on the test splits."""
    run = harness.start_run(APP, config, out, resume, seed, epochs) if resume else None
    config = run.config if run else config
    max_words = config.max_length - 2
    (train_images, train_references), (val_images, val_references) = training_splits(config, max_words)
    tests = (
        {"val": (val_images, val_references)}
        if config.data
        else test_splits(config.dataset, None, config.image_size, max_words, config.test_images)
    )
    if run:
        tokenizer = Tokenizer.load(run.file(TOKENIZER_FILE))
    else:
        tokenizer = Tokenizer.fit([c for refs in train_references for c in refs], config.min_word_count)
        config = dataclasses.replace(config, vocab_size=len(tokenizer))
        run = harness.start_run(APP, config, out, resume, seed, epochs)
        config = run.config
        tokenizer.save(run.file(TOKENIZER_FILE))
    with harness.scope():  # a distributed run's model is mirrored on every replica
        model = build_model(config)
    # A hub backbone is frozen and outside the model: its features are computed once, here.
    train_images, val_images = (model_inputs(model, x, config.backbone) for x in (train_images, val_images))
    references_per_image = max(len(r) for r in train_references)
    batches = CaptionBatches(
        train_images,
        encode_references(tokenizer, train_references, config.max_length, references_per_image),
        config.batch_size,
        seed,
    )
    val_tokens = encode_references(tokenizer, val_references, config.max_length, 1)[:, 0]
    validation = ((val_images.astype(np.float32), val_tokens[:, :-1]), val_tokens[:, 1:])
    steps = config.epochs * len(batches)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        max(steps - config.warmup_steps, 1),
        warmup_target=config.learning_rate,
        warmup_steps=min(config.warmup_steps, steps),
    )
    with harness.scope():  # ... and so is its optimizer
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
            metrics=[token_accuracy],
        )
    harness.fit(run, model, batches, validation, epochs=config.epochs, monitor="val_loss", mode="min")
    best = harness.best_model(run)
    metrics = {"beam": config.beam, **score_splits(best, tokenizer, tests, config.beam, config.backbone)}
    run.write_metrics(metrics)
    fit_limits(best, train_images, val_images).save(run.file(limits.LIMITS_FILE), force=True)
    return {"run": str(run.path), **metrics}


def train(
    *,
    preset: str,
    epochs: int | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    seed: int,
    dataset: str | None,
    backbone: str | None,
) -> dict:
    config = PRESETS[preset]
    config = dataclasses.replace(
        config,
        dataset=dataset or config.dataset,
        backbone=backbone or config.backbone,
        data=str(data) if data else None,
    )
    return run_training(config, out, resume, seed, epochs)


def evaluate(
    *,
    weights: str | None,
    data: Path | None,
    dataset: str,
    beam: int,
    tokenizer: Path | None,
    backbone: str | None,
    output: Path | None,
    force: bool,
) -> dict:
    """BLEU and CIDEr on the test splits beside the baseline; on generated scenes, the domain check
    too (zoo.limits), fitted anew as `train` does, against real photos; `-o DIR` writes DIR/limits.npz."""
    path = registry.resolve_weights(APP, weights)
    targets = limits.output_files(output, (limits.LIMITS_FILE,), force)
    model, vocabulary = load(path, tokenizer)
    image_size, max_length = model_limits(model)
    splits = test_splits(dataset, data, image_size, max_words=max_length - 2)
    result = {
        "dataset": "folder " + str(data) if data else dataset,
        "beam": beam,
        **score_splits(model, vocabulary, splits, beam, backbone),
    }
    if dataset == "scenes" and not data:
        result["baseline"] = scene_baseline(splits, image_size)
        encode = input_encoder(model, backbone)
        fitted = fit_limits(
            model,
            *(
                encode(caption_data.scenes(split, count, image_size)[0])
                for split, count in (("train", DOMAIN_IMAGES), ("val", EVALUATION_IMAGES))
            ),
        )
        photos = np.stack([caption_data.square_image(photo, image_size) for photo in limits.photo_crops()])
        result["domain"] = limits.domain_report(
            fitted.check,
            fitted.gaussians.score(encoder_features(model, encode(splits["seen"][0]))),
            {"photos": fitted.gaussians.score(encoder_features(model, encode(photos)))},
        )
        if targets:
            result["written"] = str(fitted.save(targets[0], force))
    return result


def maps_folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise BadInput(f"{path}: -o must be a folder for the attention maps")
    return path


@dataclasses.dataclass
class Captioned(api.Result):
    """One photo's caption, every beam with its log-probability, and where each word looked."""

    input: str
    caption: str = api.shown("text")
    beams: list[dict] = api.shown("table")  # [{"caption": ..., "log_prob": ...}], most probable first
    attention_maps: list[str] = dataclasses.field(default_factory=list)  # the PNGs `save` wrote, one per word
    domain: limits.Domain | None = None  # the domain check (None: the model has no limits beside it)
    note: str | None = api.shown("text")  # what the model knows and what to do instead, when the photo is outside it
    attention: list[tuple[Image.Image, str]] = api.shown("images", rich=True)  # (map, word) per word
    named: bool = dataclasses.field(default=True, repr=False, metadata={"rich": True})  # the line names the input

    @property
    def text(self) -> str:
        line = f"{self.input}: {self.caption}" if self.named else self.caption
        return line + (f"\n  note: {self.note}" if self.note else "")

    def save(self, path: str | Path, force: bool = False) -> Path:
        """One attention PNG per word in the folder `path`; all checked before the first is written."""
        folder = maps_folder(Path(path))
        stem = "image" if self.input.startswith("<") else Path(self.input).stem  # <array>, <PIL image>
        paths = [folder / f"{stem}_{i:02d}_{word.strip('<>')}.png" for i, (_, word) in enumerate(self.attention, 1)]
        folder.mkdir(parents=True, exist_ok=True)
        for target in paths:
            check_output_path(target, force)
        for target, (picture, _) in zip(paths, self.attention):
            save_image(np.asarray(picture), target, force=force)
        self.attention_maps, self.output = [str(p) for p in paths], str(folder)
        return folder


OUTSIDE_NOTE = (
    "this photo is outside what the model has seen (the images it was trained on), so the caption is "
    "a guess; to caption photos, train on captioned ones: zoo train captioning --data YOUR_FOLDER "
    "(or --preset flickr8k)"
)


class Predictor(api.Predictor):
    """`zoo.load("captioning", beam=3)`: photos in, captions out, with every beam and the attention maps.

    `tokenizer` and `backbone` (a hub model's feature extractor) shape the loaded model.
    """

    def __init__(self, spec, options):
        super().__init__(spec, options)
        path = registry.resolve_weights(APP, self.weights)
        self.model, self.vocabulary = load(path, self.options["tokenizer"])
        self.encode = input_encoder(self.model, self.options["backbone"])
        self.image_size = model_limits(self.model)[0]
        self.limits = limits.load_beside(APP, path)  # the domain check (zoo.limits)

    def predict(self, inputs, **options) -> list[Captioned]:
        photos = [input_image(source) for source in inputs]  # all checked before any work
        batch = self.encode(np.stack([caption_data.square_image(photo, self.image_size) for _, photo in photos]))
        domains = self.limits.domains(encoder_features(self.model, batch)) if self.limits else [None] * len(photos)
        results = []
        for (name, photo), hypotheses, domain in zip(photos, beam_search(self.model, batch, options["beam"]), domains):
            best = hypotheses[0]
            words = [self.vocabulary.words[t] for t in best.tokens]
            beams = [
                {"caption": self.vocabulary.decode(h.tokens), "log_prob": round(h.log_prob, 4)} for h in hypotheses
            ]
            attention = [
                (Image.fromarray(attention_map(photo, looked, word)), word)
                for looked, word in zip(best.attention, words)
            ]
            note = None if domain is None or domain.in_domain else OUTSIDE_NOTE
            results.append(
                Captioned(
                    name,
                    beams[0]["caption"],
                    beams,
                    domain=domain,
                    note=note,
                    attention=attention,
                    named=len(inputs) > 1,
                )
            )
        return results

    def target(self, source: Path | None, output: Path | None, many: bool, force: bool) -> Path | None:
        """-o names a folder for every input's attention maps; without it, none are written."""
        return None if output is None else maps_folder(output)

    def exportables(self) -> list:
        """Two graphs, the loop with the caller (docs/export.md shows it): `encoder`, uint8 RGB at the model's
        size (N, side, side, 3) -> the grid of features; `decoder_step`, those features and the caption so far
        (N, T) int32 token ids from <start> -> the next token's logits (N, vocabulary) and where it looked
        (N, cells). Fitting a photo to the square stays with the caller (`caption_data.square_image`)."""
        from zoo.export import Exportable

        if _hub_layer(self.model) is not None:
            raise BadInput("captioning: a hub backbone runs outside the weights file; export needs a built-in encoder")
        side, max_length = model_limits(self.model)
        pixels = keras.Input((side, side, 3), dtype="uint8", name="pixels")
        encoder = keras.Model(pixels, self.model.get_layer("encoder")(ops.cast(pixels, "float32")), name="encoder")
        decoder = exportable_decoder(self.model.get_layer("decoder"))
        features = keras.Input(decoder.inputs[0].shape[1:], name="features")
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        logits, attention = decoder([features, tokens])
        step = keras.Model(
            [features, tokens], {"logits": logits[:, -1], "attention": attention[:, -1]}, name="decoder_step"
        )
        splits = test_splits("scenes", None, side, max_length - 2, count=EXPORT_SCENES)

        def scores(run_step, encoder) -> dict:
            return {
                name: caption_scores(
                    [self.vocabulary.decode(c) for c in greedy_captions(encoder, run_step, images, max_length)],
                    [[caption_data.normalize(r) for r in refs] for refs in references],
                )
                for name, (images, references) in splits.items()
            } | {"images": len(splits["seen"][0]) + len(splits["unseen"][0]), "decoding": "greedy"}

        vocabulary = {
            "words": self.vocabulary.words,
            "special_tokens": dataclasses.asdict(SPECIAL_TOKENS),
            "max_length": max_length,
        }
        no_int8 = (
            "captioning is not quantised to int8: each word is the argmax of quantised logits, fed back into the "
            "next step; --quantize float16 halves both parts"
        )
        return [
            Exportable("encoder", encoder, None, None, {"image_size": side, "input": ENCODER_INPUT}, no_int8=no_int8),
            Exportable("decoder_step", step, scores, None, vocabulary, uses=("encoder",), no_int8=no_int8),
        ]


# ---------------------------------------------------------------- export

EXPORT_SCENES = 100  # per generated test split, for the exported parts' caption scores
ENCODER_INPUT = (
    "uint8 RGB at image_size x image_size: a photo centre-cropped to a square and resized "
    "(zoo.data.captions.square_image: Pillow's BOX filter down, bicubic up)"
)


def exportable_decoder(decoder: keras.Model) -> keras.Model:
    """A copy of the decoder whose GELUs go through erf rather than erfc (TensorFlow's way, which ONNX
    lacks): the same function, with the same weights."""
    copy = keras.models.clone_model(decoder)
    copy.set_weights(decoder.get_weights())
    for block in (layer for layer in copy.layers if isinstance(layer, DecoderBlock)):
        for dense in block.feed_forward.layers:
            if getattr(dense, "activation", None) is keras.activations.gelu:
                dense.activation = gelu_by_erf
    return copy


def gelu_by_erf(x):
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


def greedy_captions(encoder, step, images: np.ndarray, max_length: int) -> list[list[int]]:
    """Greedy decoding through exported parts (`zoo.export.Runner`s): each image's word ids, as `beam_search`
    with beam 1 finds them (never <pad> or <start>; at most max_length - 2 words, then <end>)."""
    features = encoder([images])
    tokens = np.full((len(images), 1), START, np.int32)
    running = np.ones(len(images), bool)
    for _ in range(max_length - 2):
        logits = step({"features": features, "tokens": tokens})["logits"]
        logits[:, [PAD, START]] = -np.inf
        chosen = np.where(running, logits.argmax(axis=-1), PAD).astype(np.int32)
        running &= chosen != END
        tokens = np.concatenate([tokens, chosen[:, None]], axis=1)
        if not running.any():
            break
    return [[t for t in row[1:] if t not in (PAD, END)] for row in tokens.tolist()]
