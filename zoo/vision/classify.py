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

    zoo train classify --preset long           # Fashion-MNIST, the shipped recipe
    zoo train classify --data photos/          # photos/<class>/*.jpg
    zoo evaluate classify
    zoo demo classify shoe.jpg --top 3 --explain -o shoe_gradcam.png
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image

from zoo import harness, registry
from zoo.data import labelled_images
from zoo.data.images import read_image, save_image
from zoo.data.labelled_images import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, LabelledImages
from zoo.errors import BadInput
from zoo.files import atomic_output, check_output_path, output_for
from zoo.vision import backbones

AUGMENTATIONS = ("flip", "shift", "erase")
DATASETS = {"fashion-mnist": (labelled_images.fashion_mnist, FASHION_MNIST_CLASSES, True),
            "cifar10": (labelled_images.cifar10, CIFAR10_CLASSES, False)}  # loader, classes, dark background


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
    "quick": Config(widths=(16, 32, 64), steps=1720, batch_size=64, learning_rate=8e-3, augment=("flip",),
                    label_smoothing=0.0, dropout=0.0),
    # Narrower than 32-64-128 so that 10 epochs of Fashion-MNIST fit the half hour on a 2-core CPU.
    "full": Config(widths=(24, 48, 96), steps=4300, augment=("flip", "shift")),
    # The shipped Fashion-MNIST weights: twice as wide, three times as long, with random erasing;
    # 30 epochs, over an hour on a 2-core CPU with bf16 instructions (model card).
    "long": Config(widths=(48, 96, 192), steps=12900, augment=("flip", "shift", "erase"), dropout=0.2,
                   precision="mixed_bfloat16"),
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
        return {**super().get_config(), "names": self.names, "dark_background": self.dark_background,
                "mirrored": self.mirrored}


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
    return ClassLabels(config.class_names, config.dark_background, "flip" in config.augment, dtype="float32",
                       name="labels")(logits)


def backbone_model(config: Config, extractor: keras.Model) -> keras.Model:
    """A new classifier head on a pretrained feature extractor."""
    pixels = keras.Input(tuple(config.image_shape), name="pixels")
    # Inference mode inside, always: batch norm keeps its pretrained statistics while fine-tuning.
    x = extractor(pixels, training=False)
    return keras.Model(pixels, classifier_head(x, config), name="classify")


def class_names(model: keras.Model) -> list[str]:
    return model.get_layer("labels").names


# --------------------------------------------------------------------- data


def load_data(config: Config, seed: int, shape: tuple[int, int, int] | None = None
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
    config = dataclasses.replace(config, image_shape=everything.images.shape[1:], class_names=tuple(classes),
                                 dark_background=dark)
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
        picked = self.shuffled(len(self.images))[index * self.batch_size: (index + 1) * self.batch_size]
        pixels = self.augment(self.images[picked].astype(np.float32), training=True)
        return keras.ops.convert_to_numpy(pixels), self.targets[picked]


def training_batches(images: np.ndarray, targets: np.ndarray, config: Config, seed: int):
    """Shuffled, augmented batches of uint8 images: a parallel tf.data pipeline under TensorFlow."""
    augment = augmenter(config)
    if keras.backend.backend() != "tensorflow":
        return AugmentedBatches(images, targets, config.batch_size, augment, seed)
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices((images, targets))
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(config.batch_size)
            .map(lambda x, y: (augment(tf.cast(x, "float32"), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


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


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class probabilities; for a model trained on mirror images too, the mean over both views
    (test-time augmentation: the two views' errors are partly independent)."""
    views = [images, images[:, :, ::-1]] if model.get_layer("labels").mirrored else [images]
    probabilities = [keras.ops.softmax(model.predict(view.astype(np.float32), batch_size=batch_size, verbose=0))
                     for view in views]
    return keras.ops.convert_to_numpy(sum(probabilities) / len(probabilities))


def classification_metrics(model: keras.Model, data: LabelledImages) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    predicted = predict_probabilities(model, data.images).argmax(axis=-1)
    classes = len(data.class_names)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (data.labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {"accuracy": round(float(np.mean(predicted == data.labels)), 4), "images": len(data),
            "per_class_accuracy": {n: round(float(a), 4) for n, a in zip(data.class_names, per_class)},
            "confusion_matrix": confusion.tolist()}


def plot_confusion(metrics: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(metrics["per_class_accuracy"])
    confusion = np.array(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.6 * len(names)))
    ax.imshow(confusion, cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > confusion.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {metrics['accuracy']:.2%} on {metrics['images']} images")
    fig.tight_layout()
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def load(weights: str | Path | None) -> keras.Model:
    model = harness.load_model(registry.resolve_weights("classify", weights), app="classify")
    try:
        model.get_layer("labels")
    except ValueError:
        raise BadInput(f"{weights}: not a classify model (no 'labels' layer with class names)") from None
    return model


def _test_set(model: keras.Model, data: Path | None) -> LabelledImages:
    """The model's own test set, or a class folder whose classes must be the model's."""
    names = class_names(model)
    if data is None:
        for name, (loader, classes, _) in DATASETS.items():
            if list(classes) == names:
                return loader("test")
        raise BadInput(f"this model's classes ({', '.join(names[:4])}, ...) are no built-in dataset's; pass --data DIR")
    folder = labelled_images.class_folder(Path(data), model.input_shape[1])
    if list(folder.class_names) != names:
        raise BadInput(f"{data}: class folders {list(folder.class_names)} are not the model's classes {names}")
    return labelled_images.conform(folder, model.input_shape[1:])


# ---------------------------------------------------------- CLI entry points


def compile_for_training(model: keras.Model, config: Config, steps: int) -> None:
    """AdamW on a one-cycle schedule (warm-up, then cosine decay to zero), smoothed cross-entropy."""
    warmup = int(config.warmup * steps)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate / 25, steps - warmup,
                                                      warmup_target=config.learning_rate, warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                  # On a CPU, TensorFlow's oneDNN convolutions outrun XLA's (bench/classify_throughput.py);
                  # JAX always compiles.
                  jit_compile=keras.backend.backend() != "tensorflow")


def train(*, preset: str, epochs: int | None, data: Path | None, out: Path | None, resume: bool, seed: int,
          dataset: str, augment: str | None, backbone: str | None) -> dict:
    config = PRESETS[preset]
    config = dataclasses.replace(config, dataset=dataset, data=str(data) if data else None, backbone=backbone,
                                 augment=augmentations(augment, config.augment, folder=data is not None))
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
    harness.fit(run, model, batches, validation, epochs=config.epochs, monitor="val_accuracy", mode="max",
                shuffle=False)  # batches come shuffled
    best = harness.best_model(run)
    held_out = test_set if test_set is not None else validation_set
    metrics = {"split": "test" if test_set is not None else "validation", **classification_metrics(best, held_out)}
    run.write_metrics(metrics)
    plot_confusion(metrics, run.file("confusion.png"))
    return {"run": str(run.path), "split": metrics["split"], "accuracy": metrics["accuracy"],
            "per_class_accuracy": metrics["per_class_accuracy"]}


def fine_tuning(run: harness.Run, model: keras.Model, extractor: keras.Model, config: Config, batches, validation,
                steps_per_epoch: int) -> Config:
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


def evaluate(*, weights: str | None, data: Path | None) -> dict:
    model = load(weights)
    metrics = classification_metrics(model, _test_set(model, data))
    metrics.pop("confusion_matrix")
    return metrics


def demo(*, inputs: list[Path], weights: str | None, output: Path | None, force: bool, top: int,
         explain: bool) -> list[dict]:
    if output is not None and not explain:
        raise BadInput(f"-o {output}: only --explain writes a file (add --explain)")
    photos = [read_image(p) for p in inputs]
    model = load(weights)
    targets = [check_output_path(output_for(p, output, f"{p.stem}_gradcam.png", len(inputs) > 1), force)
               for p in inputs] if explain else [None] * len(inputs)
    names = class_names(model)
    batch = np.stack([prepare(model, photo) for photo in photos])
    probabilities = predict_probabilities(model, batch)
    results = []
    for source, pixels, probs, target in zip(inputs, batch, probabilities, targets):
        ranked = [{"label": names[i], "probability": round(float(probs[i]), 4)}
                  for i in np.argsort(-probs)[: min(top, len(names))]]
        text = f"{source}: " + ", ".join(f"{r['label']} {r['probability']:.1%}" for r in ranked)
        result = {"input": str(source), "top": ranked}
        if target is not None:
            from zoo.vision import explain as explainer

            heatmap = explainer.grad_cam(model, pixels, names.index(ranked[0]["label"]))
            save_image(explainer.overlay(explainer.as_image(pixels), heatmap), target, force=force)
            result["explanation"] = str(target)
            text += f" (Grad-CAM for {ranked[0]['label']}: {target})"
        results.append({**result, "text": text})
    return results


def explainable(weights: str | Path | None):
    """The model, its input preparation and its class names, for `zoo explain` and `zoo visualize`."""
    from zoo.vision.explain import Explainable

    model = load(weights)
    return Explainable(model, lambda rgb: prepare(model, rgb), class_names(model))
