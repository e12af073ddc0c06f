"""`zoo serve`: the Gradio demo, started as a user starts it and driven through gradio_client; its tabs
are made from the cards and the result types, which the cheap tests below check in-process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from test_images import bomb_png

from zoo import api, registry
from zoo.data import examples
from zoo.errors import BadInput

from conftest import assert_one_line_error

gradio_client = pytest.importorskip("gradio_client", reason="pip install 'keras-zoo[web]'")
httpx = pytest.importorskip("httpx")
from zoo.gallery import serve  # noqa: E402  (after the skip: it needs the web extra's modules to be useful)

REPO = Path(__file__).resolve().parents[1]
APPS = [spec.name for spec in registry.all_specs()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`zoo serve` (every tab) on a free port, as a user starts it; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "cli.py", "serve", "--port", str(port)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(900):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=2).close()
                break
            time.sleep(0.2)
        yield url
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


def widget_values(spec: registry.AppSpec, options: dict) -> list:
    """What a visitor sets in the tab's widgets to run a demo with `options` (the card's defaults elsewhere)."""
    values = []
    for option in serve.offered(spec):
        value = options.get(option.name, option.default)
        if serve.choices(spec, option) or option.type in ("str", "path"):
            value = "" if value is None else str(value)
        values.append(value)
    return values


# ------------------------------------------------------------ through HTTP


def test_an_upload_is_upscaled_and_the_record_is_the_apis(server, photo):
    client = gradio_client.Client(server, verbose=False)
    upscaled, text, record = client.predict(gradio_client.handle_file(photo), "3", api_name="/upscale")
    assert Image.open(upscaled).size == (360, 270)
    assert text == "cat.png -> image (120x90 -> 360x270)"  # the upload's name, not the server's path to it
    expected = api.load("upscale", scale=3)(str(photo)).to_dict()
    assert record == {**expected, "input": "cat.png", "text": text}


def test_bad_uploads_get_their_message_while_other_clients_are_served(server, photo, tmp_path):
    """A 30 MB upload, a decompression bomb and a corrupt file, while a second client keeps asking."""
    served, failed, done = [], [], threading.Event()

    def other_client():
        client = gradio_client.Client(server, verbose=False)
        while not done.is_set() or not served:
            try:
                upscaled, _, _ = client.predict(gradio_client.handle_file(photo), "2", api_name="/upscale")
                served.append(Image.open(upscaled).size)
            except Exception as error:  # noqa: BLE001  (any failure of a good request is the finding)
                failed.append(repr(error))
                return

    other = threading.Thread(target=other_client)
    other.start()
    try:
        client = gradio_client.Client(server, verbose=False)
        corrupt = tmp_path / "broken.jpg"
        corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
        with pytest.raises(gradio_client.exceptions.AppError, match="broken.jpg: corrupt or truncated image"):
            client.predict(gradio_client.handle_file(corrupt), "2", api_name="/upscale")
        with pytest.raises(gradio_client.exceptions.AppError, match=r"bomb.png: .*decompression-bomb guard"):
            client.predict(gradio_client.handle_file(bomb_png(tmp_path)), "2", api_name="/upscale")
        big = tmp_path / "big.png"
        big.write_bytes(os.urandom(30_000_000))
        limit = serve.MAX_UPLOAD_MB * 2**20
        with pytest.raises(ValueError, match=f"exceeds the maximum file size of {limit} bytes"):  # the client's check
            client.predict(gradio_client.handle_file(big), "2", api_name="/upscale")
        with big.open("rb") as sent:  # the server's own, for a client that does not check first
            refused = httpx.post(client.upload_url, files=[("files", ("big.png", sent))], timeout=60)
        assert refused.status_code == 413 and f"maximum allowed size of {limit} bytes" in refused.text
    finally:
        done.set()
        other.join(timeout=300)
    assert failed == [] and served and set(served) == {(240, 180)}


def test_every_tab_answers_its_cards_first_example_as_the_api_does(server, tmp_path):
    """The tabs come from the cards, so one loop covers every app, and any added later."""
    client = gradio_client.Client(server, verbose=False)
    quick = {"upscale", "classify"}  # the others load bigger models or run longer; see the slow test
    for spec in [registry.get(app) for app in APPS if app in quick]:
        _answers_like_the_api(client, spec, tmp_path / spec.name)


@pytest.mark.slow  # every model, and an episode and a song rendered: minutes on 2 cores
def test_every_other_tab_answers_its_cards_first_example(server, tmp_path):
    client = gradio_client.Client(server, verbose=False)
    for spec in [registry.get(app) for app in APPS if app not in ("upscale", "classify") and registry.get(app).weights]:
        _answers_like_the_api(client, spec, tmp_path / spec.name)


def _answers_like_the_api(client, spec: registry.AppSpec, folder: Path) -> None:
    folder.mkdir()
    inputs, options = examples.write(spec.examples[0], folder)
    upload = [gradio_client.handle_file(inputs[0])] if inputs else []
    *shown, text, record = client.predict(*upload, *widget_values(spec, options), api_name=f"/{spec.name}")
    predictor = api.load(spec.name, **options)
    expected = predictor(str(inputs[0])) if inputs else predictor()
    wanted = expected.to_dict()
    if inputs:  # the page names the upload by its name, not by a path on the server
        wanted = json.loads(json.dumps(wanted).replace(str(inputs[0]), inputs[0].name))
    assert record == wanted and text == wanted["text"], spec.name
    kinds = api.shown_kinds(type(expected))
    assert len(shown) == len(kinds), spec.name
    for (name, _), value in zip(kinds, shown):
        assert (value is None) == (getattr(expected, name) is None), (spec.name, name)


def test_a_port_in_use_is_a_one_line_error(zoo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(zoo("serve", "--port", port), f"--port {port}", "in use")


def test_an_unknown_app_is_a_one_line_error(zoo):
    assert_one_line_error(zoo("serve", "upscal"), "did you mean 'upscale'")


# ------------------------------------------------------------- in-process


def test_an_app_without_a_predictor_has_no_tab(monkeypatch):
    monkeypatch.setattr(registry, "load_module", lambda spec: types.ModuleType(spec.module))
    assert serve.tabs(None) == []
    with pytest.raises(BadInput, match=r"upscale: no interactive demo yet \(no Predictor in its module\)"):
        serve.tabs("upscale")


def test_an_app_without_shipped_weights_has_no_tab(monkeypatch):
    """The server offers no --weights, so such a tab could only fail; its module is not even imported."""
    bare = {s.name: dataclasses.replace(s, weights=()) for s in registry.all_specs()}
    monkeypatch.setattr(registry, "get", bare.__getitem__)
    monkeypatch.setattr(registry, "all_specs", lambda: tuple(bare.values()))
    monkeypatch.setattr(registry, "load_module", lambda spec: pytest.fail("imported an app without weights"))
    assert serve.tabs(None) == []
    with pytest.raises(BadInput, match=r"upscale: no interactive demo yet \(no shipped weights\)"):
        serve.tabs("upscale")


@pytest.mark.parametrize("app", APPS)
def test_widgets_are_the_cards_options(app):
    """Defaults, ranges and choices come from the card, the one source of truth."""
    gr = pytest.importorskip("gradio")
    spec = registry.get(app)
    for option in serve.offered(spec):
        widget = serve._widget(gr, spec, option)
        assert widget.label == option.name.replace("_", " ")
        listed = serve.choices(spec, option)
        if listed:
            assert [value for _, value in widget.choices][-len(listed) :] == [str(c) for c in listed]
            assert widget.value == ("" if option.default is None else str(option.default))
        elif option.type == "flag":
            assert widget.value is bool(option.default)
        elif option.type in ("int", "float"):
            assert widget.value == option.default
            assert (widget.minimum, widget.maximum) == (option.min, option.max)
        else:
            assert widget.value == (option.default or "")
    offered = {o.name for o in serve.offered(spec)}
    assert not offered & {"weights", "output", "force"}
    assert all(o.selects_weights for o in spec.parameters("demo") if o.at_load and o.name in offered)


def test_predictors_load_once_per_choice_of_load_options(monkeypatch):
    loads = []
    monkeypatch.setattr(api, "load", lambda app, **options: loads.append(options) or object())
    predictors, spec = serve.Predictors(), registry.get("upscale")
    first = predictors.get(spec, {"scale": "2"})
    assert predictors.get(spec, {"scale": 2}) is first  # the widget's "2" and the card's 2 are one choice
    assert predictors.get(spec, {"scale": 3}) is not first
    assert loads == [{"scale": 2}, {"scale": 3}]


def test_a_missing_upload_is_a_message_unless_the_app_can_do_without(monkeypatch, tmp_path):
    gr = pytest.importorskip("gradio")

    @dataclasses.dataclass
    class Said(api.Result):
        said: str = api.shown("text")

    calls = []

    class Fake:
        def __call__(self, *inputs, **options):
            calls.append(inputs)
            return Said("heard")

    monkeypatch.setattr(api, "load", lambda app, **options: Fake())

    def handler(spec):
        return serve.Handler(serve.Tab(spec, serve.offered(spec), (("said", "text"),)), serve.Predictors(), tmp_path)

    spec = registry.get("upscale")
    with pytest.raises(gr.Error, match="upload a file first"):
        handler(spec)(None, "2")
    optional = dataclasses.replace(spec.declared("demo"), inputs_optional=True)
    said, line, record = handler(dataclasses.replace(spec, actions={**spec.actions, "demo": optional}))(None, "2")
    assert calls == [()] and said == "heard" and record["said"] == "heard"
