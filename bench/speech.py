"""Recognising one spoken digit after the model has loaded: the whole call, file to digit.

`zoo.load("speech")` once, then the predictor on one asterisk prompt (decode, resample, trim,
log-mel, the model, the picture) many times; the median and the 90th percentile, beside the
model alone on ready features. The target is under 50 ms per clip on a 2-core CPU.

    python bench/speech.py [--repeats 50] [--weights TAG|FILE]
"""

import argparse
import time

import numpy as np

import zoo
from zoo.audio import speech
from zoo.data import audio


def timed(function, repeats: int) -> np.ndarray:
    function()  # warm-up: the first call traces the model
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--weights")
    args = parser.parse_args()
    clip = audio.ASTERISK_DIGITS / "7.wav"
    predictor = zoo.load("speech", weights=args.weights)
    whole = timed(lambda: predictor(clip), args.repeats)
    ready = speech.features([speech.speech_window(audio.read_audio(clip))])
    model = timed(lambda: speech.probabilities(predictor.model, ready), args.repeats)
    for name, ms in (("zoo.load('speech')(file)", whole), ("model on features", model)):
        print(
            f"{name:26s} median {np.median(ms):6.1f} ms   p90 {np.percentile(ms, 90):6.1f} ms   ({args.repeats} calls)"
        )
    print(f"target: under 50 ms per clip: {'met' if np.median(whole) < 50 else 'missed'}")


if __name__ == "__main__":
    main()
