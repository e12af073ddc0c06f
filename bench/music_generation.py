"""How long `zoo demo music` takes to generate 64 bars, against the naive way, in the same run.

The app samples with `Generator`: the LSTM run one token at a time, carrying
its states. The naive baseline (what most Keras text-generation examples do)
reruns the whole model over the song so far, padded to the context, for every
new token. Both use the same sampling rule; the naive one is timed on fewer
bars and compared per token. Target (issue 4): 64 bars in under 5 s.

    flock /tmp/zoo-cpu.lock .venv/bin/python bench/music_generation.py [--weights FILE] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from zoo.audio import music  # noqa: E402
from zoo.data import music as music_data  # noqa: E402

TARGET_SECONDS = 5.0


def naive_sample(model, prefix: list[int], tokens: int, seed: int) -> list[int]:
    """Rerun the full model over the last `context` tokens for each new token."""
    context, rng, song = music.model_context(model), np.random.default_rng(seed), list(prefix)
    for _ in range(tokens):
        inputs, _, _ = music.pad_rows([music.line_features(song[-context:] + [music_data.PAD])], context)
        last = min(len(song), context) - 1
        logits = np.asarray(model.predict_on_batch(inputs))[0, last].astype(np.float64)
        song.append(music.next_token(logits, song[-1], 1.0, 0, rng))
    return song[len(prefix) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a .keras file (default: the shipped weights)")
    parser.add_argument("--runs", type=int, default=5, help="seeds to time (64 bars each)")
    parser.add_argument("--bars", type=int, default=64)
    args = parser.parse_args()

    started = time.perf_counter()
    model = music.load(args.weights, None)
    generator = music.Generator(model)
    load_seconds = time.perf_counter() - started
    prefix = music.default_prefix()
    generator.sample(prefix, 1, [0])  # warm-up: the first call traces the step function

    times, lengths = [], []
    for seed in range(args.runs):
        started = time.perf_counter()
        song = generator.sample(prefix, args.bars, [seed])[0]
        times.append(time.perf_counter() - started)
        lengths.append(len(song))
    per_token = sum(times) / sum(lengths)

    naive_tokens = 120
    naive_sample(model, prefix, 2, 0)  # warm-up
    started = time.perf_counter()
    naive_sample(model, prefix, naive_tokens, 0)
    naive_per_token = (time.perf_counter() - started) / naive_tokens

    print(f"model load + step model build: {load_seconds:.2f} s")
    print(
        f"stepwise LSTM, {args.bars} bars x {args.runs} seeds: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s, {statistics.mean(lengths):.0f} tokens per song, {per_token * 1e3:.2f} ms/token"
    )
    print(
        f"naive rerun of the whole model ({naive_tokens} tokens): {naive_per_token * 1e3:.2f} ms/token, "
        f"so {naive_per_token * statistics.mean(lengths):.1f} s for {args.bars} bars"
    )
    print(f"speed-up of stepwise over naive: {naive_per_token / per_token:.1f}x")
    verdict = "met" if max(times) < TARGET_SECONDS else "NOT met"
    print(f"target {args.bars} bars < {TARGET_SECONDS:.0f} s: {verdict} (slowest {max(times):.2f} s)")


if __name__ == "__main__":
    main()
