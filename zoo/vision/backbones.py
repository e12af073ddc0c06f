"""Pretrained feature extractors that apps build on: keras.applications ImageNet models, or any .keras model.

Shared by classify (`--backbone` for transfer learning) and captioning (a frozen image
encoder). The ImageNet weights download once through `keras.utils.get_file`'s cache;
offline, the error names the file to place there by hand.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import keras
from keras import layers

from zoo import harness
from zoo.errors import BadInput

# keras.applications models that take RGB in [0, 255] and normalise inside, as the zoo's own models do.
APPLICATIONS = {"efficientnetb0": "EfficientNetB0", "mobilenetv3small": "MobileNetV3Small",
                "convnexttiny": "ConvNeXtTiny"}
POOLING = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D, layers.Flatten)


def imagenet(name: str, input_shape: tuple[int, int, int], pooling: str | None = None) -> keras.Model:
    """A keras.applications model without its classifier, with ImageNet weights."""
    try:
        return getattr(keras.applications, APPLICATIONS[name])(include_top=False, weights="imagenet",
                                                               input_shape=tuple(input_shape), pooling=pooling)
    except Exception as error:  # offline (a URL fetch failure), or a size the model refuses
        url = re.search(r"https?://[^\s:]+", str(error))
        if url:
            cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
            raise BadInput(f"--backbone {name}: its ImageNet weights could not be downloaded from {url.group(0)}; "
                           f"offline, place {url.group(0).rsplit('/', 1)[-1]} in {cache}/") from None
        raise BadInput(f"--backbone {name}: could not build it for input {input_shape} "
                       f"({type(error).__name__}: {str(error)[:100]})") from None


def features_of(model: keras.Model, source: str) -> keras.Model:
    """`model` cut after its last global pooling (or flatten) layer: images -> feature vectors."""
    pools = [layer for layer in model.layers if isinstance(layer, POOLING)]
    if not pools:
        raise BadInput(f"--backbone {source}: model {model.name} has no global pooling or flatten layer "
                       "to take features from")
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
