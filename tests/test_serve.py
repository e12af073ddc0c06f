"""`zoo serve`: the Gradio demo, started as a user starts it and driven through gradio_client."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="pip install 'keras-zoo[web]'")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`zoo serve` (every tab) on a free port, as a user starts it; yields a connected client."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "cli.py", "serve", "--port", str(port)], cwd=REPO,
                                   stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=2).close()
                break
            time.sleep(0.2)
        yield gradio_client.Client(url, verbose=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()  # SIGTERM closes the server cleanly


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    path = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()[:90, :120]).save(path)
    return path


def test_uploads_are_upscaled_and_classified_and_a_corrupt_one_shows_an_error(server, photo, tmp_path):
    """One test, so that one server (one TensorFlow start-up) serves them under pytest-xdist."""
    upscaled, size = server.predict(gradio_client.handle_file(photo), "3", api_name="/upscale")
    assert Image.open(upscaled).size == (360, 270) and size == "120x90 -> 360x270 (3x)"
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    with pytest.raises(gradio_client.exceptions.AppError, match="broken.jpg: corrupt or truncated image"):
        server.predict(gradio_client.handle_file(corrupt), "2", api_name="/upscale")
    again, _ = server.predict(gradio_client.handle_file(photo), "2", api_name="/upscale")
    assert Image.open(again).size == (240, 180)  # the server went on

    labels, gradcam = server.predict(gradio_client.handle_file(photo), api_name="/classify")
    confidences = [c["confidence"] for c in labels["confidences"]]
    assert labels["label"] == labels["confidences"][0]["label"] and confidences == sorted(confidences, reverse=True)
    assert 0 < sum(confidences) <= 1.0001
    assert min(Image.open(gradcam).size) >= 28


@pytest.mark.slow  # two more models and a 500-step episode rendered to GIF: about 40 s on 2 cores
def test_music_and_rl_tabs_make_a_song_and_an_episode(server):
    wav, roll, midi = server.predict(3, 1.0, 2, "chorales", api_name="/music")
    assert Path(wav).read_bytes()[:4] == b"RIFF" and Image.open(roll).size[0] > 100 and Path(midi).stat().st_size
    gif, text = server.predict("CartPole-v1", 0, api_name="/rl")
    assert Image.open(gif).format == "GIF" and "return" in text


def test_a_port_in_use_is_a_one_line_error(zoo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(zoo("serve", "--port", port), f"--port {port}", "in use")


def test_an_app_without_a_tab_is_a_one_line_error(zoo):
    assert_one_line_error(zoo("serve", "recommend"), "recommend", "no interactive demo")
    assert_one_line_error(zoo("serve", "upscal"), "did you mean 'upscale'")
