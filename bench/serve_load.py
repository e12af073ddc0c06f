"""Load on `zoo serve`: concurrent clients on 127.0.0.1 asking for upscale and classify.

    python bench/serve_load.py                 # 16 clients, 20 s of warm-up, then 2 minutes measured
    python bench/serve_load.py --seconds 20    # a shorter run

Starts `zoo serve` as a user does, then each client (a `gradio_client.Client` in a thread of
its own) loops over the two tabs, uploading the first input of each card's first example
(`app.examples`) with that example's options, as a visitor sets them in the page. The first
`--warmup` seconds load the models and fill Gradio's queues and caches; only what follows is
measured. Prints each app's and the overall p50/p99 latency (upload to result, queueing
included), requests per second, and the server's resident memory (VmRSS) after warm-up and at
the end; exits 1 if any request failed or resident memory grew by 10% or more.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradio_client import Client, handle_file  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.data import examples  # noqa: E402
from zoo.gallery import serve  # noqa: E402

APPS = ("upscale", "classify")
MAX_GROWTH = 0.10


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def requests_of(folder: Path) -> dict[str, list]:
    """Each app's endpoint arguments: the first input of its card's first example, and the widgets' values."""
    made = {}
    for app in APPS:
        spec = registry.get(app)
        inputs, options = examples.write(spec.examples[0], folder)
        widgets = []
        for option in serve.offered(spec):
            value = options.get(option.name, option.default)
            widgets.append(
                ""
                if value is None and (serve.choices(spec, option) or option.type == "str")
                else str(value)
                if serve.choices(spec, option)
                else value
            )
        made[app] = [str(inputs[0])] + widgets
    return made


def start_server(port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "serve", "--port", str(port)],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    while True:
        if process.poll() is not None:
            raise SystemExit(f"zoo serve exited before answering:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="How long to measure (after warm-up).")
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds of load before measuring.")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        arguments = requests_of(Path(scratch))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.perf_counter()
        server = start_server(port, Path(scratch) / "serve.log")
        print(
            f"zoo serve up in {time.perf_counter() - started:.1f} s; {args.clients} clients, "
            f"{args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured"
        )
        url = f"http://127.0.0.1:{port}/"
        latencies: dict[str, list[float]] = {app: [] for app in APPS}
        failures: list[str] = []
        measuring, stop = threading.Event(), threading.Event()

        def client(index: int) -> None:
            connection = Client(url, verbose=False)
            turn = index
            while not stop.is_set():
                app = APPS[turn % len(APPS)]
                turn += 1
                upload, *widgets = arguments[app]
                sent = time.perf_counter()
                try:
                    connection.predict(handle_file(upload), *widgets, api_name=f"/{app}")
                except Exception as error:  # noqa: BLE001  (every failure is counted and shown)
                    failures.append(f"{app}: {error!r}")
                    continue
                if measuring.is_set() and not stop.is_set():
                    latencies[app].append(time.perf_counter() - sent)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        try:
            for thread in threads:
                thread.start()
            time.sleep(args.warmup)
            warm = resident_mb(server.pid)
            measuring.set()
            began = time.perf_counter()
            peak = warm
            while time.perf_counter() - began < args.seconds:
                time.sleep(1)
                peak = max(peak, resident_mb(server.pid))
            stop.set()
            elapsed = time.perf_counter() - began
            final = resident_mb(server.pid)
            for thread in threads:
                thread.join(timeout=120)
        finally:
            stop.set()
            server.terminate()
            server.wait(timeout=30)

    every = sorted(t for times in latencies.values() for t in times)
    for name, times in [*latencies.items(), ("all", every)]:
        times = sorted(times)
        if len(times) >= 2:
            p50, p99 = statistics.median(times), statistics.quantiles(times, n=100)[98]
            print(f"{name:9s} {len(times):5d} requests  p50 {p50:6.2f} s  p99 {p99:6.2f} s")
    growth = final / warm - 1
    print(f"throughput: {len(every) / elapsed:.2f} requests/s over {elapsed:.0f} s; failed requests: {len(failures)}")
    print(
        f"resident memory: {warm:.0f} MB after warm-up, {final:.0f} MB at the end (peak {peak:.0f} MB), "
        f"growth {100 * growth:+.1f}%"
    )
    for failure in failures[:10]:
        print("  failed:", failure)
    if failures or growth >= MAX_GROWTH or not every:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
