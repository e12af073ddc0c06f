"""How fast the light commands answer, against bare Python and against importing TensorFlow.

python bench/cli_startup.py [--repeat 5]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def best_of(command: list[str], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    python = [sys.executable]
    cases = {
        "python -c pass (baseline)": python + ["-c", "pass"],
        "zoo --help": python + ["cli.py", "--help"],
        "zoo list": python + ["cli.py", "list"],
        "zoo info upscale": python + ["cli.py", "info", "upscale"],
        "zoo demo upscale --help": python + ["cli.py", "demo", "upscale", "--help"],
        "import tensorflow (avoided)": python + ["-c", "import tensorflow"],
    }
    baseline = None
    print(f"{'command':30}{'best s':>8}{'median s':>10}{'x baseline':>12}")
    for name, command in cases.items():
        best, median = best_of(command, repeat if "tensorflow" not in name else 1)
        baseline = baseline or best
        print(f"{name:30}{best:8.3f}{median:10.3f}{best / baseline:12.1f}")


if __name__ == "__main__":
    main()
