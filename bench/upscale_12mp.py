"""A 12.6-megapixel photo at x2 on this machine: wall time and peak memory beside Pillow's bicubic,
and the distance to the machine's limit.

Each contender runs as its own process (`zoo demo upscale` and a Pillow one-liner: bicubic resize,
PNG save) on the same JPEG; peak memory is that process's maximum resident set size. The compute
bound: the model's multiply-adds per output pixel, the rate `zoo demo` achieved over its whole
wall time (start-up, decoding and PNG writing included), and this CPU's matrix-multiply rate in
float32 and bfloat16 (TensorFlow, 2048x2048, best of 5), measured in the same run.

    python bench/upscale_12mp.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, SCALE = 4096, 3072, 2
MEMORY_TARGET_MIB, TIME_TARGET = 1024, 3.0
PILLOW = (
    "import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('RGB'); "
    "im.resize((im.width * 2, im.height * 2), Image.BICUBIC).save(sys.argv[2])"
)
MATMUL = """
import time, tensorflow as tf
for dtype in (tf.float32, tf.bfloat16):
    a = tf.cast(tf.random.uniform((2048, 2048)), dtype)
    best = float("inf")
    for _ in range(6):
        start = time.perf_counter(); tf.matmul(a, a).numpy(); best = min(best, time.perf_counter() - start)
    print(2048 ** 3 / best / 1e9)
"""


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def multiply_adds_per_output_pixel() -> float:
    from zoo.vision import upscale

    return upscale.multiply_adds_per_output_pixel(upscale.load(None, SCALE))


def main() -> None:
    from skimage import data

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo_12mp.jpg"
        # Real content at 4096x3072: the astronaut photo tiled 8x6 (upsampling would make it unnaturally smooth).
        big = np.tile(data.astronaut(), (6, 8, 1))[:HEIGHT, :WIDTH]
        Image.fromarray(big).save(photo, quality=92)
        print(
            f"input: {photo.name}, {WIDTH}x{HEIGHT} = {WIDTH * HEIGHT / 1e6:.1f} MP; "
            f"output {WIDTH * SCALE}x{HEIGHT * SCALE} PNG"
        )
        zoo_s, zoo_mib = measure(
            [
                sys.executable,
                "cli.py",
                "demo",
                "upscale",
                str(photo),
                "--scale",
                str(SCALE),
                "-o",
                str(Path(folder) / "zoo.png"),
            ]
        )
        pil_s, pil_mib = measure([sys.executable, "-c", PILLOW, str(photo), str(Path(folder) / "pillow.png")])
    rates = subprocess.run(
        [sys.executable, "-c", MATMUL],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout.split()
    float32_rate, bfloat16_rate = (float(r) for r in rates)
    per_pixel = multiply_adds_per_output_pixel()
    achieved = per_pixel * WIDTH * HEIGHT * SCALE**2 / zoo_s / 1e9
    print(f"{'':14}{'seconds':>9}{'peak MiB':>10}")
    print(f"{'zoo upscale':14}{zoo_s:9.1f}{zoo_mib:10.0f}")
    print(f"{'Pillow bicubic':14}{pil_s:9.1f}{pil_mib:10.0f}")
    ratio = zoo_s / pil_s
    verdict = "met" if ratio <= TIME_TARGET else "MISSED"
    print(
        f"ratio zoo/Pillow: {ratio:.1f}x time (target <= {TIME_TARGET}x: {verdict}), "
        f"{zoo_mib / pil_mib:.1f}x memory; peak memory target < {MEMORY_TARGET_MIB} MiB: "
        f"{'met' if zoo_mib < MEMORY_TARGET_MIB else 'MISSED'}"
    )
    print(
        f"compute: {per_pixel:,.0f} multiply-adds per output pixel; achieved {achieved:.1f} G multiply-adds/s "
        f"over the whole run; this CPU's matmul: {float32_rate:.1f} (float32), {bfloat16_rate:.1f} (bfloat16) "
        f"G multiply-adds/s"
    )


if __name__ == "__main__":
    main()
