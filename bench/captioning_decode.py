"""Captions per second: batched beam search (beam 3) against one-image-at-a-time greedy decoding, in one run.

Both decode the same generated test scenes with the same model (the shipped
weights, or --weights). The baseline is the usual tutorial loop: one image at a
time, greedy, one decoder call per word. The zoo's `beam_search` decodes
`--batch` images together, all their beams in one decoder call per word. Each
variant is run once untimed first, so compilation is not counted.

    flock /tmp/zoo-cpu.lock .venv/bin/python bench/captioning_decode.py [--images 256] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from zoo.data import captions as caption_data  # noqa: E402
from zoo.text import captioning  # noqa: E402


def captions_per_second(decode, images, warm_up: int) -> float:
    decode(images[:warm_up])  # compiles the shapes the timed run uses
    started = time.perf_counter()
    decode(images)
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a .keras file or run directory (default: shipped)")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    model, _ = captioning.load(args.weights, None)
    image_size = captioning.model_limits(model)[0]
    images, _ = caption_data.scenes("test", args.images, image_size)

    def one_at_a_time_greedy(batch):
        return [captioning.beam_search(model, image[None], beam=1) for image in batch]

    def batched(beam):
        return lambda batch: captioning.beam_search(model, batch, beam, args.batch)

    baseline = captions_per_second(one_at_a_time_greedy, images, 1)
    print(f"backend {keras.backend.backend()}, {args.images} scenes {image_size}x{image_size}, batch {args.batch}")
    print(f"greedy, one image at a time : {baseline:8.1f} captions/s  (1.00x)")
    for beam in (1, 3):
        speed = captions_per_second(batched(beam), images, args.batch)
        print(f"beam {beam}, batched           : {speed:8.1f} captions/s  ({speed / baseline:.2f}x)")


if __name__ == "__main__":
    main()
