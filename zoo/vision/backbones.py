"""Pretrained feature extractors that apps build on: keras.applications ImageNet models, or any .keras model.

Shared by classify (`--backbone` for transfer learning, `--weights imagenet` for the whole
classifier) and captioning (a frozen image encoder). The ImageNet weights download once into
the zoo's cache (`zoo.data.download`: checked against the checksums Keras publishes, a damaged
download refused and retried); offline, the error names the file to place where by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from zoo import harness
from zoo.errors import BadInput

KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class Application:
    """A keras.applications model and its ImageNet weights files as Keras publishes them: with the
    1,000-class classifier and without ("notop"), each with Keras's checksum (md5 or sha256)."""

    constructor: str
    folder: str  # URL of the folder both files are in
    files: tuple[str, str]  # (with classifier, without)
    checksums: tuple[str, str]

    def weights(self, top: bool) -> Path:
        """The weights file, downloaded once into the zoo's cache (zoo.data.download)."""
        from zoo.data.download import download

        name, checksum = self.files[not top], self.checksums[not top]
        return download(self.folder + name, checksum, name, subdir="models")


# keras.applications models that take RGB in [0, 255] and normalise inside, as the zoo's own models do
# (hashes from keras/src/applications, Keras 3).
APPLICATIONS = {
    "efficientnetb0": Application(
        "EfficientNetB0",
        "https://storage.googleapis.com/keras-applications/",
        ("efficientnetb0.h5", "efficientnetb0_notop.h5"),
        ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    ),
    "efficientnetv2b0": Application(
        "EfficientNetV2B0",
        KERAS_WEIGHTS + "efficientnet_v2/",
        ("efficientnetv2-b0.h5", "efficientnetv2-b0_notop.h5"),
        ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff"),
    ),
    "mobilenetv3small": Application(
        "MobileNetV3Small",
        KERAS_WEIGHTS + "mobilenet_v3/",
        ("weights_mobilenet_v3_small_224_1.0_float.h5", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
        ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    ),
    "convnexttiny": Application(
        "ConvNeXtTiny",
        KERAS_WEIGHTS + "convnext/",
        ("convnext_tiny.h5", "convnext_tiny_notop.h5"),
        (
            "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
            "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
        ),
    ),
}
POOLING = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D, layers.Flatten)


def imagenet(
    name: str, input_shape: tuple[int, int, int] | None = None, pooling: str | None = None, top: bool = False
) -> keras.Model:
    """A keras.applications model with ImageNet weights: without its classifier (features), or with
    it (`top`: the 1,000 ImageNet classes' logits, at the model's own 224-pixel input)."""
    application = APPLICATIONS[name]
    weights = application.weights(top)  # a DownloadError names the file to place by hand
    try:
        return getattr(keras.applications, application.constructor)(
            include_top=top,
            weights=str(weights),
            input_shape=None if top else tuple(input_shape),
            pooling=pooling,
            **({"classifier_activation": None} if top else {}),
        )
    except Exception as error:  # a size the model refuses
        raise BadInput(
            f"{name}: could not build it for input {input_shape} ({type(error).__name__}: {str(error)[:100]})"
        ) from None


def features_of(model: keras.Model, source: str) -> keras.Model:
    """`model` cut after its last global pooling (or flatten) layer: images -> feature vectors."""
    pools = [layer for layer in model.layers if isinstance(layer, POOLING)]
    if not pools:
        raise BadInput(
            f"--backbone {source}: model {model.name} has no global pooling or flatten layer to take features from"
        )
    return keras.Model(model.input, pools[-1].output, name="backbone")


def feature_extractor(spec: str, image_side: int) -> keras.Model:
    """`--backbone NAME|PATH` -> images (H, W, C) in [0, 255] -> feature vectors.

    A keras.applications NAME takes RGB at `image_side`; a .keras PATH takes its own input shape.
    """
    if spec in APPLICATIONS:
        return imagenet(spec, (image_side, image_side, 3), pooling="avg")
    path = Path(spec)
    if path.suffix != ".keras" or not path.is_file():
        raise BadInput(f"--backbone {spec}: neither one of {', '.join(APPLICATIONS)} nor a readable .keras file")
    return features_of(harness.load_model(path), spec)
