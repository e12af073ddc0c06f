"""Identification against 10,000 enrolled people, and whole-photo time beside the embedding alone.

    nice .venv/bin/python bench/faces_speed.py

Identification: one 128-d query against 10,000 random unit-ish descriptors (the gallery's size,
not its content, sets the cost), median of 200 calls of `app.identify`. Whole photo: detect
(MTCNN) + 5 landmarks + chip + embed on scikit-image's astronaut (512x512, one face), beside
the embedding of one ready chip; medians of 5 runs after one warm-up.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.data import faces as face_data  # noqa: E402
from zoo.vision.faces import app, landmarks, pipeline  # noqa: E402


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    rng = np.random.default_rng(0)
    gallery = (rng.normal(size=(10_000, 128)) * 0.12).astype(np.float32)
    names = np.array([f"person{i}" for i in range(10_000)])
    query = gallery[1234:1235] + 0.01
    app.identify(query, names, gallery, 0.6)
    ident = median_ms(lambda: app.identify(query, names, gallery, 0.6), 200)
    print(f"identify 1 face vs 10,000 enrolled: {ident:.2f} ms (target < 20 ms)")
    model, _ = pipeline.load_embedding(None)
    detector = pipeline.Detector()
    photo = face_data.packaged_photos(True)["astronaut"]
    chip = pipeline.find_faces(photo, detector)[0].chip[None]
    embed = median_ms(lambda: pipeline.embed(model, chip), 5)
    detect = median_ms(lambda: detector(photo), 5)
    box = detector(photo)[0]["box"]
    points = median_ms(lambda: landmarks.predict(landmarks.shape_predictor(), photo, box), 5)
    whole = median_ms(lambda: pipeline.embed(model, pipeline.find_faces(photo, detector)[0].chip[None]), 5)
    print(
        f"astronaut 512x512: whole photo {whole:.0f} ms = detect {detect:.0f} + landmarks {points:.0f} "
        f"+ chip/embed; embedding alone {embed:.0f} ms; ratio whole/embedding {whole / embed:.1f}x"
    )


if __name__ == "__main__":
    main()
