"""How long `zoo gallery` takes cold (every demo runs) and warm (every output cached), and how long
`zoo serve` takes to answer its first page.

    python bench/gallery.py

Each build is a fresh `zoo gallery` process, as a user runs it; the cold one gets an empty
cache (ZOO_CACHE pointed at a temporary folder that links the real cache's datasets and models,
so nothing is downloaded or converted). Serving is timed from the process start to the first
HTTP 200 of its page.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO = [sys.executable, str(REPO / "cli.py")]


def timed(command: list[str], env: dict) -> tuple[float, str]:
    """Seconds, and the command's last line (a build's says which demos ran)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1]


def empty_cache(root: Path) -> dict:
    """An environment whose ZOO_CACHE has no gallery outputs but the real datasets and models."""
    real = Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "keras-zoo")).expanduser()
    cache = root / "cache"
    cache.mkdir()
    for kept in ("datasets", "models"):
        if (real / kept).is_dir():
            (cache / kept).symlink_to(real / kept)
    return {**os.environ, "ZOO_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}


def first_response(env: dict) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen(
        ZOO + ["serve", "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                return time.perf_counter() - start
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("zoo serve exited before answering") from None
                time.sleep(0.05)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        env = empty_cache(Path(root))
        site = Path(root) / "site"
        cold, cold_said = timed(ZOO + ["gallery", "-o", str(site)], env)
        warm, warm_said = timed(ZOO + ["gallery", "-o", str(site)], env)
        serve = first_response(env)
    print(f"zoo gallery, cold cache:           {cold:7.1f} s   ({cold_said})")
    print(f"zoo gallery, warm cache:           {warm:7.1f} s   ({warm_said})")
    print(f"warm / cold:                       {warm / cold:7.3f}")
    print(f"zoo serve, start to first response: {serve:6.1f} s")


if __name__ == "__main__":
    main()
