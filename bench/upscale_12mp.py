"""A 12.6-megapixel photo at x2 on this machine: wall time and peak memory beside Pillow's bicubic,
and the distance to the machine's limit.

Each contender runs as its own process (`zoo demo upscale` with each runtime, and a Pillow one-liner:
bicubic resize, PNG save) on the same JPEG; peak memory is that process's maximum resident set size.
The ONNX runtime's graph is made (and cached) before the timing, by one untimed call on a small photo.
The compute bound: the model's multiply-adds per output pixel, the rate each `zoo demo` achieved over
its whole wall time (start-up, decoding and PNG writing included), and this CPU's matrix-multiply
rate in float32 and bfloat16 (TensorFlow, 2048x2048, best of 5), measured in the same run.

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
        demo = [sys.executable, "cli.py", "demo", "upscale", "--scale", str(SCALE), "--force"]
        small = Path(folder) / "small.png"
        Image.fromarray(big[:64, :64]).save(small)
        for runtime in ("onnx", "onnx-int8"):  # their graphs, made once
            measure([*demo, str(small), "--runtime", runtime, "-o", str(Path(folder) / "small_x2.png")])
        timed = {
            f"zoo, {runtime}": measure([*demo, str(photo), "--runtime", runtime, "-o", str(Path(folder) / "zoo.png")])
            for runtime in ("keras", "onnx", "onnx-int8")
        }
        timed["Pillow bicubic"] = measure([sys.executable, "-c", PILLOW, str(photo), str(Path(folder) / "pil.png")])
    rates = subprocess.run(
        [sys.executable, "-c", MATMUL],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout.split()
    float32_rate, bfloat16_rate = (float(r) for r in rates)
    per_pixel = multiply_adds_per_output_pixel()
    pil_s, pil_mib = timed["Pillow bicubic"]
    print(f"{'':16}{'seconds':>9}{'peak MiB':>10}{'x Pillow time':>15}{'G mult-adds/s':>15}")
    for name, (seconds, mib) in timed.items():
        rate = per_pixel * WIDTH * HEIGHT * SCALE**2 / seconds / 1e9 if name.startswith("zoo") else float("nan")
        print(f"{name:16}{seconds:9.1f}{mib:10.0f}{seconds / pil_s:15.2f}{rate:15.1f}")
    best, (best_s, best_mib) = min(((n, t) for n, t in timed.items() if n.startswith("zoo")), key=lambda x: x[1][0])
    print(
        f"fastest: {best}, {best_s / pil_s:.2f}x Pillow's time (target <= {TIME_TARGET}x: "
        f"{'met' if best_s / pil_s <= TIME_TARGET else 'MISSED'}), peak {best_mib:.0f} MiB (target < "
        f"{MEMORY_TARGET_MIB} MiB: {'met' if best_mib < MEMORY_TARGET_MIB else 'MISSED'})"
    )
    print(
        f"compute: {per_pixel:,.0f} multiply-adds per output pixel; this CPU's matmul: {float32_rate:.1f} "
        f"(float32), {bfloat16_rate:.1f} (bfloat16) G multiply-adds/s"
    )


if __name__ == "__main__":
    main()
