"""Detect, align, embed: a photo in, its faces out as `Face` records, and their descriptors.

- detect: MTCNN (Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
  Convolutional Networks", 2016), or OpenCV's Haar cascade (Viola and Jones, 2001) when MTCNN
  is not installed; dlib's face box is placed from MTCNN's eyes (or the Haar box);
- align: dlib's 5 landmarks in that box and the 150x150 chip cut exactly as dlib does
  (`landmarks.py`);
- embed: the embedding model on the chips, resized for a model trained smaller (`resize_chips`).

Inference (`app.py`) and training on a folder of people (`training.py`) both come through
here, so a trained embedding sees the same aligned chips it will be asked about.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import keras
import numpy as np
from keras import ops

from zoo import harness, registry
from zoo.data import faces as face_data
from zoo.data.images import read_image
from zoo.errors import BadInput, warn
from zoo.vision.faces import landmarks
from zoo.vision.faces.resnet import APP, import_dlib

MIN_SIDE = 20  # photos smaller than this a side are refused
MIN_CONFIDENCE = 0.95  # MTCNN's last stage; 0.7 (its default) lets through a knee in obama_partial_face.jpg
# dlib's HOG face box from MTCNN's keypoints, in units of the eye distance d, in the eyes' frame:
# centre = eye midpoint + (0.035 d along, 0.493 d across) ... fitted on the six reference faces.
BOX_FROM_EYES = (-0.035, 0.493, 2.45)
# dlib's box from a Haar box (x, y, w): same centre x, 0.1 w lower, 0.9 w wide (same six faces).
BOX_FROM_HAAR = (0.0, 0.1, 0.9)


@dataclasses.dataclass
class Face:
    """One face found in a photo."""

    box: tuple[int, int, int, int]  # dlib's face box (left, top, right, bottom) in pixels; may leave the photo
    confidence: float  # the detector's (1.0 for Haar, which gives none)
    landmarks: np.ndarray  # (5, 2) integer (x, y): dlib's eye corners and nose base
    chip: np.ndarray  # (150, 150, 3) uint8 RGB, aligned as dlib's extract_image_chip does


# ------------------------------------------------------------- detection


class Detector:
    """MTCNN if installed (it finds cut-off and turned faces), else OpenCV's Haar cascade."""

    _shared: dict = {}

    @classmethod
    def shared(cls, kind: str = "auto") -> Detector:
        """One detector per kind and process (MTCNN builds three networks)."""
        if kind not in cls._shared:
            cls._shared[kind] = cls(kind)
        return cls._shared[kind]

    def __init__(self, kind: str = "auto"):
        self.kind = "mtcnn" if kind == "auto" and importlib.util.find_spec("mtcnn") else kind
        if self.kind == "auto":
            self.kind = "haar"
        if self.kind == "mtcnn":
            from mtcnn import MTCNN

            self.net = MTCNN()
        else:
            import cv2

            self.net = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def __call__(self, rgb: np.ndarray) -> list[dict]:
        """[{"box": dlib-style (left, top, right, bottom) floats, "confidence"}], largest first."""
        faces = self._mtcnn(rgb) if self.kind == "mtcnn" else self._haar(rgb)
        return sorted(faces, key=lambda f: -(f["box"][2] - f["box"][0]))

    def _mtcnn(self, rgb):
        faces = []
        for found in self.net.detect_faces(rgb):
            if found["confidence"] < MIN_CONFIDENCE:
                continue
            k = {name: np.asarray(p, np.float64) for name, p in found["keypoints"].items()}
            eyes = (k["left_eye"] + k["right_eye"]) / 2
            along = k["right_eye"] - k["left_eye"]
            d = max(float(np.hypot(*along)), 1.0)
            along /= d
            across = np.array([-along[1], along[0]])
            a, b, s = BOX_FROM_EYES
            centre = eyes + a * d * along + b * d * across
            faces.append({"box": _square(centre, s * d), "confidence": float(found["confidence"])})
        return faces

    def _haar(self, rgb):
        import cv2

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = []
        for x, y, w, _ in self.net.detectMultiScale(grey, 1.1, 5, minSize=(30, 30)):
            a, b, s = BOX_FROM_HAAR
            faces.append({"box": _square(np.array([x + w / 2 + a * w, y + w / 2 + b * w]), s * w), "confidence": 1.0})
        return faces


def _square(centre, side) -> tuple[float, float, float, float]:
    half = side / 2
    return (float(centre[0] - half), float(centre[1] - half), float(centre[0] + half), float(centre[1] + half))


def find_faces(rgb: np.ndarray, detector: Detector | None = None) -> list[Face]:
    """Every face in a photo, largest first, each with its landmarks and aligned chip."""
    faces = []
    for found in (detector or Detector.shared())(rgb):
        points = landmarks.predict(landmarks.shape_predictor(), rgb, found["box"])
        faces.append(
            Face(
                tuple(int(round(v)) for v in found["box"]),
                found["confidence"],
                points,
                landmarks.extract_chip(rgb, points),
            )
        )
    return faces


def largest_face(rgb: np.ndarray, name: str, detector: Detector | None = None) -> Face | None:
    """The photo's largest face (None: none found), with a warning naming the photo when it has several."""
    faces = find_faces(rgb, detector)
    if len(faces) > 1:
        warn(f"{name}: {len(faces)} faces; using the largest")
    return faces[0] if faces else None


def gallery_chips(folder: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(person of each chip, chips, warnings) of DIR/<person>/*.jpg: the largest face of each photo;
    photos without a face are skipped, with a warning."""
    names, chips, warnings = [], [], []
    for person, paths in face_data.gallery(folder).items():
        for path in paths:
            faces = find_faces(read_image(path, min_side=MIN_SIDE))
            if not faces:
                warnings.append(f"{path}: no face found; skipped")
                continue
            if len(faces) > 1:
                warnings.append(f"{path}: {len(faces)} faces; using the largest")
            names.append(person)
            chips.append(faces[0].chip)
    for message in warnings:
        warn(message)
    if not names:
        raise BadInput(f"{folder}: no face found in any photo")
    return names, np.stack(chips), warnings


# ------------------------------------------------------------- the embedding


def embedding_path(weights: str | Path | None) -> Path:
    """`--weights` (a .keras file, a training run, a tag), else dlib's embedding, converted into
    the cache on first use."""
    if weights is not None and (Path(weights) / "embedding.keras").is_file():
        return Path(weights) / "embedding.keras"  # a training run: its embedding, not the CosFace head
    try:
        return registry.resolve_weights(APP, weights)
    except registry.NotBuilt as missing:
        missing.path.parent.mkdir(parents=True, exist_ok=True)
        import_dlib(source=None, output=missing.path, force=False)
        return missing.path


_LOADED: dict = {}  # (path, mtime) -> (model, sha): a 22 MB model loads once per process


def load_embedding(weights: str | Path | None) -> tuple[keras.Model, str]:
    """(embedding model: (N, side, side, 3) RGB -> (N, D), its weights' sha256)."""
    path = embedding_path(weights)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _LOADED:
        model = harness.load_model(path, app=APP)  # a built file: its weights checked against the card
        if len(model.output.shape) != 2:
            raise BadInput(f"{path}: model {model.name!r} is not a faces embedding")
        _LOADED[key] = model, harness.weights_sha256(model)
    return _LOADED[key]


def resize_chips(chips: np.ndarray, side: int) -> np.ndarray:
    """(N, 150, 150, 3) chips as float32 (N, side, side, 3), bilinear: what an embedding of that side sees."""
    pixels = np.asarray(chips, np.float32)
    if pixels.shape[1] == side:
        return pixels
    return keras.ops.convert_to_numpy(ops.image.resize(pixels, (side, side)))


def embed(model: keras.Model, chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 chips -> (N, D) float32 descriptors."""
    if len(chips) == 0:
        return np.zeros((0, model.output.shape[-1]), np.float32)
    pixels = resize_chips(chips, model.input.shape[1])
    return np.asarray(model.predict(pixels, verbose=0, batch_size=32), np.float32)


def squared_distances(queries: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
    """(Q, E) squared Euclidean distances: |a - b|^2 = |a|^2 - 2ab + |b|^2, one matrix product."""
    return (queries**2).sum(1)[:, None] - 2 * queries @ enrolled.T + (enrolled**2).sum(1)[None, :]
