"""A 12-megapixel photo at x2 on this machine: wall time and peak memory, beside Pillow's bicubic.

Each contender runs as its own process (`zoo demo upscale` and a Pillow one-liner) on the
same JPEG; peak memory is that process's maximum resident set size.

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
PILLOW = ("import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('RGB'); "
          "im.resize((im.width * 2, im.height * 2), Image.BICUBIC).save(sys.argv[2])")


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    from skimage import data

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo_12mp.jpg"
        # Real content at 4000x3000: the astronaut photo tiled 8x6 (upsampling would make it unnaturally smooth).
        big = np.tile(data.astronaut(), (6, 8, 1))[:3000, :4000]
        Image.fromarray(big).save(photo, quality=92)
        print(f"input: {photo.name}, 4000x3000 = 12.0 MP; output 8000x6000 PNG")
        zoo_s, zoo_mib = measure([sys.executable, "cli.py", "demo", "upscale", str(photo), "--scale", "2",
                                  "-o", str(Path(folder) / "zoo.png")])
        pil_s, pil_mib = measure([sys.executable, "-c", PILLOW, str(photo), str(Path(folder) / "pillow.png")])
    print(f"{'':14}{'seconds':>9}{'peak MiB':>10}")
    print(f"{'zoo upscale':14}{zoo_s:9.1f}{zoo_mib:10.0f}")
    print(f"{'Pillow bicubic':14}{pil_s:9.1f}{pil_mib:10.0f}")
    print(f"ratio zoo/Pillow: {zoo_s / pil_s:.1f}x time, {zoo_mib / pil_mib:.1f}x memory; "
          f"memory target < 2048 MiB: {'met' if zoo_mib < 2048 else 'MISSED'}")


if __name__ == "__main__":
    main()
