"""Pipeline vs dlib's own output on the reference photos, and the distances between people.

    .venv/bin/python bench/faces_reference.py

Prints, per reference face: our detector's landmarks vs dlib's, the descriptor distance from
dlib's descriptor (network alone on dlib's chip; our whole pipeline), then every pairwise
distance of the real photos inside packages, and float16 storage's largest descriptor change.
"""

import sys
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.data import faces as face_data  # noqa: E402
from zoo.vision.faces import pipeline  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "faces-reference"


def main():
    rows = [line.rstrip("\n").split("\t") for line in open(REFERENCE / "ref_descriptors.tsv")]
    model, sha = pipeline.load_embedding(None)
    detector = pipeline.Detector()
    photos = face_data.packaged_photos(True)
    print(f"embedding sha256 (weights) {sha[:16]}  detector {detector.kind}")
    chips = np.stack([np.asarray(Image.open(REFERENCE / r[4]).convert("RGB")) for r in rows])
    ref = np.array([[float(v) for v in r[5:]] for r in rows], np.float32)
    network = pipeline.embed(model, chips)
    print(f"network on dlib's chips: max |difference| {np.abs(network - ref).max():.2e}")
    for r, target in zip(rows, ref):
        name = r[0].replace(".bmp", "")
        found = pipeline.find_faces(photos[name], detector)
        if not found:
            print(f"{name}#{r[1]}: no face detected (dlib's box {r[2]})")
            continue
        ours = pipeline.embed(model, np.stack([f.chip for f in found]))
        best = int(np.argmin(np.linalg.norm(ours - target, axis=1)))
        lm = np.array([[int(v) for v in p.split(",")] for p in r[3].split(";")])
        print(
            f"{name}#{r[1]}: pipeline distance to dlib {np.linalg.norm(ours[best] - target):.4f}, landmarks off by "
            f"{np.abs(found[best].landmarks - lm).max()} px, box ours {list(found[best].box)} dlib [{r[2]}]"
        )
    names = sorted(photos)
    t = time.perf_counter()
    found = {n: pipeline.find_faces(photos[n], detector) for n in names}
    print(f"faces per photo: { {n: len(f) for n, f in found.items()} } ({time.perf_counter() - t:.1f} s)")
    free = face_data.packaged_photos(False)
    print(f"faces on face-free photos: { {n: len(pipeline.find_faces(p, detector)) for n, p in free.items()} }")
    vectors = {n: pipeline.embed(model, f[0].chip[None])[0] for n, f in found.items() if f}
    print("pairwise distances (same person marked *):")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if a in vectors and b in vectors:
                same = face_data.PEOPLE[a] == face_data.PEOPLE[b]
                print(f"  {'*' if same else ' '} {a:20s} {b:20s} {np.linalg.norm(vectors[a] - vectors[b]):.3f}")
    half = keras.models.clone_model(model)
    half.set_weights([w.astype(np.float16).astype(np.float32) for w in model.get_weights()])
    print(f"float16 weights: max |descriptor change| {np.abs(pipeline.embed(half, chips) - network).max():.2e}")


if __name__ == "__main__":
    main()
