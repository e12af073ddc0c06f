"""The shipped classifier's test accuracy, recomputed from what a user runs: `zoo demo classify --json` on PNG files.

    .venv/bin/python bench/classify_demo_accuracy.py [--weights TAG|FILE] [--images 10000]

Writes the official Fashion-MNIST test images as PNG files named by their true class,
runs the CLI on them (`zoo demo classify DIR/*.png --json --top 1`, one process), and
counts the top-1 labels that match; then prints `zoo evaluate classify`'s accuracy on the
same images beside it. The two agree when the demo's path (read the file, convert it,
fit it to the input, average the mirror view if the model learnt mirrors) sees the same
pixels as the evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from PIL import Image  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.data import labelled_images  # noqa: E402

ZOO = Path(sys.executable).with_name("zoo")


def demo_accuracy(weights: str, images: int) -> float:
    test = labelled_images.fashion_mnist("test")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(images):
            paths.append(Path(tmp) / f"{i:05d}_{test.labels[i]}.png")
            Image.fromarray(test.images[i, :, :, 0]).save(paths[-1])
        shown = subprocess.run(
            [str(ZOO), "demo", "classify", *map(str, paths), "--weights", weights, "--json", "--top", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    names = list(test.class_names)
    correct = [names.index(r["top"][0]["label"]) == int(Path(r["input"]).stem.split("_")[1]) for r in json.loads(shown)]
    return sum(correct) / len(correct)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default=registry.get("classify").default_weights)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    from_demo = demo_accuracy(args.weights, args.images)
    evaluated = registry.call("classify", "evaluate", weights=args.weights)["accuracy"]
    print(
        f"{args.weights}: zoo demo classify --json on {args.images:,} PNG files: {from_demo:.4f}; "
        f"zoo evaluate classify (all 10,000 test images): {evaluated:.4f}"
    )


if __name__ == "__main__":
    main()
