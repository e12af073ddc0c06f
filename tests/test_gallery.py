"""`zoo gallery`: the static site, checked in a real browser (Debian's chromium, driven by Playwright).

The site is built once per module, with the usual demo-output cache (so a second test session
is quick); every page is then served by `python -m http.server` on 127.0.0.1 and loaded in
chromium, which must see every image and audio file, no console or page error, no failed or
outside request. A copy with a missing image must fail the same checks. The notebooks shown are
tiny ones made here, with a picture inline as an executed notebook has it (executing the real
examples takes minutes: tests/test_notebooks.py does that).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from html import unescape
from pathlib import Path

import pytest
from markupsafe import escape
from test_files import unwritable_folder

from zoo import api, registry
from zoo.gallery import build

from conftest import assert_one_line_error

CHROMIUM = Path("/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install 'keras-zoo[dev]'")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(folder: Path):
    """`python -m http.server` on 127.0.0.1 serving `folder`; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base, timeout=1).close()
                break
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


NOTEBOOK_SOURCE = """# %% [markdown]
# # {title}
#
# **Title:** {title}<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** What `{stem}` shows,
# on two lines.
#
# Some prose.

# %%
print("drawn")
"""
PLOT = (40, 30)  # the inline picture's size


def executed_notebook(path: Path, title: str) -> None:
    """A notebook as `make notebooks` leaves it: a markdown header, and a code cell with its printed
    line and its plot inline (a PNG in the cell's display data)."""
    import nbformat
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", PLOT, "steelblue").save(png, "PNG")
    outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="drawn\n"),
        nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(png.getvalue()).decode(), "text/plain": "<Figure>"}
        ),
    ]
    cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nSome prose."),
        nbformat.v4.new_code_cell('print("drawn")', execution_count=1, outputs=outputs),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> tuple[Path, Path]:
    """(examples, executed): three notebook sources, `app_upscale` (upscale's walkthrough) and
    `lesson` executed, `unrun` not."""
    examples, executed = tmp_path_factory.mktemp("examples"), tmp_path_factory.mktemp("executed")
    for stem, title in (("app_upscale", "Upscale, walked through"), ("lesson", "A lesson"), ("unrun", "Not run")):
        (examples / f"{stem}.py").write_text(NOTEBOOK_SOURCE.format(title=title, stem=stem))
        if stem != "unrun":
            executed_notebook(executed / f"{stem}.ipynb", title)
    return examples, executed


@pytest.fixture(scope="module")
def site(tmp_path_factory, notebooks):
    examples, executed = notebooks
    out = tmp_path_factory.mktemp("gallery") / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "EXAMPLES", examples)
        built = build.build(out, notebooks=executed)
    return out, built


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path_factory, monkeypatch):
    """`zoo gallery` shows ./out/notebooks when it exists: each test runs in a folder without one."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("apt-get install chromium")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


# Make every image load now (not when scrolled to), wait for each, and report those that did not decode.
IMAGES_JS = """async () => {
  const images = [...document.images];
  images.forEach(i => { i.loading = "eager"; });
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return images.map(i => [i.getAttribute("src"), i.naturalWidth]);
}"""
AUDIO_JS = """async () => Promise.all([...document.querySelectorAll("audio")].map(a => new Promise(r => {
  const done = () => r([a.getAttribute("src"), a.readyState, a.duration]);
  if (a.readyState >= 1) return done();
  a.onloadedmetadata = a.onerror = done; a.load(); setTimeout(done, 10000);
})))"""


def _media_cut_short(request) -> bool:
    """<audio preload="metadata"> stops its download once it has the header: not a failure
    (a missing file still shows as HTTP 404 and as readyState 0)."""
    return request.resource_type == "media" and request.failure == "net::ERR_ABORTED"


@contextlib.contextmanager
def visit(browser, folder: Path):
    """(page, base URL, problems): a browser tab on the site served from `folder`, which records every
    console or page error, failed or outside request and HTTP error it meets."""
    problems: list[str] = []
    with http_server(folder) as base:
        context = browser.new_context(viewport={"width": 1200, "height": 900})

        def route(request_route):  # nothing may leave 127.0.0.1
            if request_route.request.url.startswith(base):
                request_route.continue_()
            else:
                problems.append(f"outside request: {request_route.request.url}")
                request_route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: None if _media_cut_short(r) else problems.append(f"failed request: {r.url} ({r.failure})"),
        )
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        try:
            yield page, base, problems
        finally:
            context.close()


def check_pages(browser, folder: Path, shots: Path) -> list[str]:
    """Every problem a visitor's browser would meet on the site's pages (empty: none)."""
    with visit(browser, folder) as (page, base, problems):
        for html in sorted(folder.glob("*.html")):
            response = page.goto(base + html.name, wait_until="load")
            if response is None or not response.ok:
                problems.append(f"{html.name}: did not load")
            problems += [
                f"{html.name}: image {src} did not load" for src, width in page.evaluate(IMAGES_JS) if width == 0
            ]
            for src, ready, duration in page.evaluate(AUDIO_JS):
                with wave.open(str(folder / src)) as sound:
                    seconds = sound.getnframes() / sound.getframerate()
                if ready < 1 or abs(duration - seconds) > 0.1:
                    problems.append(
                        f"{html.name}: audio {src} readyState {ready}, {duration} s (file: {seconds:.2f} s)"
                    )
            page.screenshot(path=shots / f"{html.stem}.png")
    return problems


# ------------------------------------------------------------------ the site


@needs_chromium
def test_every_page_loads_in_a_browser_with_every_image_and_sound(site, browser, tmp_path):
    out, built = site
    assert check_pages(browser, out, tmp_path) == []
    apps = [s.name for s in registry.all_specs()]
    assert built["apps"] == apps
    notebooks = ["notebook-app_upscale", "notebook-lesson"]  # `unrun` was not executed: no page
    expected = ["index"] + apps + [f"{a}-source" for a in apps] + notebooks
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(expected)


def test_index_has_one_card_per_app_with_its_headline_metric_beside_the_baseline(site):
    out, _ = site
    index = (out / "index.html").read_text()
    assert index.count('class="card"') == len(registry.all_specs())
    upscale = registry.get("upscale").entry("x2")
    assert f"psnr_y {upscale.metrics['psnr_y']}</b> vs {upscale.baseline['metrics']['psnr_y']}" in index


def test_app_pages_show_every_example_of_the_card_and_the_card(site):
    """Each example's command, then each result drawn by its shown fields' kinds, for any app."""
    out, _ = site
    for spec in registry.all_specs():
        page = (out / f"{spec.name}.html").read_text()
        for entry in spec.weights:
            assert str(escape(entry.command)) in page, spec.name  # as Jinja escapes it
        commands = re.findall(r'<pre class="commands">(.*?)</pre>', page)
        assert len(commands) == (len(spec.examples) if spec.weights else 0), spec.name  # no weights: no showcase
        for shown, example in zip(commands, spec.examples):
            assert unescape(shown).startswith(f"zoo demo {spec.name} "), shown
            for name, value in example.get("options", {}).items():
                assert "--" + name.replace("_", "-") in shown or value is False, (shown, name)
    upscale = (out / "upscale.html").read_text()
    assert '<img src="assets/upscale/ex0_0_image.png" alt="image">' in upscale
    assert "chelsea_low2.png -&gt; image (225x150 -&gt; 450x300)" in upscale  # the result's own line


def test_every_show_kind_is_drawn(tmp_path):
    """One result of each kind through the gallery's writer and template: files that open, data in the page."""
    import numpy as np
    from PIL import Image

    from zoo import api
    from zoo.gallery import outputs

    pixels = np.zeros((20, 30, 3), np.uint8)
    values = {
        "image": pixels,
        "images": [(pixels, "a"), (pixels, "b")],
        "labels": {"cat": 0.25, "dog": 0.75},
        "audio": (8000, np.zeros(4000, np.float32)),
        "text": "hello",
        "table": [{"a": 1, "b": [2, 3]}],
        "animation": (10, [pixels, pixels + 255]),
    }
    assert set(values) == set(api.SHOW_KINDS)
    fields = [outputs.field_record(kind, kind, value, tmp_path, kind) for kind, value in values.items()]
    assert Image.open(tmp_path / "image.png").size == (30, 20)
    assert Image.open(tmp_path / "animation.gif").n_frames == 2
    with wave.open(str(tmp_path / "audio.wav")) as sound:
        assert sound.getnframes() / sound.getframerate() == 0.5
    record = {"examples": [{"command": "zoo demo x", "results": [{"input": None, "text": "t", "fields": fields}]}]}
    assert outputs.picture(record) == "image.png"
    page = (
        build._environment()
        .get_template("showcase.html")
        .render(page=build.AppPage(registry.get("upscale"), None, "assets/x", record, None))
    )
    for drawn in (
        'src="assets/x/image.png"',
        'src="assets/x/images_1.png"',
        "dog 75.0%",
        'src="assets/x/audio.wav"',
        "hello",
        "<th>b</th>",
        "<td>2, 3</td>",
        'src="assets/x/animation.gif"',
    ):
        assert drawn in page, drawn


def test_examples_sharing_a_model_are_each_called_with_their_own_options(tmp_path, monkeypatch):
    """One predictor per choice of load-time options; each call gets exactly its example's options."""
    from dataclasses import dataclass

    from zoo.gallery import outputs

    @dataclass
    class Said(api.Result):
        said: str = api.shown("text")

    calls, loads = [], []

    class Fake:
        takes_inputs = False

        def __call__(self, **options):
            calls.append(options)
            return Said(str(options))

    monkeypatch.setattr(api, "load", lambda app, **options: loads.append(options) or Fake())
    spec = registry.get("recommend")
    record = outputs.make(spec, [([], {"user": "1", "top": 5}), ([], {"likes": "Fargo"})], tmp_path)
    assert len(loads) == 1
    assert [(c["user"], c["likes"], c["top"]) for c in calls] == [("1", None, 5), (None, "Fargo", 10)]
    assert [e["command"] for e in record["examples"]] == [
        "zoo demo recommend --user 1 --top 5",
        "zoo demo recommend --likes Fargo",
    ]


def test_the_site_has_its_icon(site):
    out, _ = site
    assert '<link rel="icon" href="favicon.ico">' in (out / "index.html").read_text()
    from PIL import Image

    assert Image.open(out / "favicon.ico").format == "ICO"


def test_the_cache_key_covers_the_app_modules_own_code(tmp_path, monkeypatch):
    from zoo.gallery import outputs

    spec = registry.get("upscale")
    files = outputs.source_files(spec.module)
    package = Path(outputs.__file__).parents[1]
    upscale_files = {package / "vision" / "upscale" / name for name in ("__init__.py", "model.py", "onnx_runtime.py")}
    assert upscale_files | {package / "data" / "images.py", package / "api.py"} <= set(files)  # lazy imports too
    assert not any("tensorflow" in str(f) or "keras" in f.name for f in files)  # the zoo's own files only
    (tmp_path / "inputs").mkdir()
    copy = tmp_path / "upscale.py"
    copy.write_text(files[-1].read_text())
    monkeypatch.setattr(outputs, "source_files", lambda module: [copy])
    before = outputs.cache_key(spec, tmp_path / "inputs")
    copy.write_text(copy.read_text() + "\n# the drawing changed\n")
    assert outputs.cache_key(spec, tmp_path / "inputs") != before


def test_a_fresh_cache_picks_the_default_weights_without_building_them(tmp_path, monkeypatch):
    """Weights an app builds on first use do not exist yet; the page still names the entry the demo will use."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    for spec in registry.all_specs():
        entry = build.default_entry(spec)
        if entry is not None and entry.built_by:
            assert not entry.path.exists()
        if entry is not None:
            assert entry in spec.weights


def test_source_page_reads_like_an_example_with_contents_and_highlighting(site):
    out, _ = site
    page = (out / "upscale-source.html").read_text()
    assert '<p class="lead">Super-resolution: upscale a photo 2x, 3x or 4x' in page
    anchors = re.findall(r'<a href="#([^"]+)">', page)
    assert len(anchors) >= 5 and all(f'id="{a}"' in page for a in anchors)
    assert "build_model" in page.split('<nav class="toc">')[1].split("</nav>")[0]
    defined = r'<span class="k">def</span>(<span class="w">)? (</span>)?<span class="nf">build_model</span>'
    assert re.search(defined, page)
    assert '"""Super-resolution' not in page  # the docstring is the prose, not repeated as code


def test_pages_reference_nothing_outside_the_site(site):
    out, _ = site
    for html in out.glob("*.html"):
        text = html.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), html.name
        for target in re.findall(r'(?:src|href)="([^"#]+)"', text):
            assert target.startswith("data:image/png;base64,") or (out / target).is_file(), (html.name, target[:60])


@needs_chromium
def test_a_notebook_page_is_linked_from_its_app_and_shows_its_plot_inline(site, browser):
    out, _ = site
    with visit(browser, out) as (page, base, problems):
        page.goto(base + "upscale.html", wait_until="load")
        page.click("text=Notebook: Upscale, walked through")
        page.wait_for_load_state("load")
        assert page.url == base + "notebook-app_upscale.html"
        images = page.evaluate(IMAGES_JS)
        plots = [width for src, width in images if src.startswith("data:image/png;base64,")]
        assert plots == [PLOT[0]]  # decoded by the browser, at its size
        assert "drawn" in page.inner_text("article.notebook .output_stdout")
        assert page.query_selector("article.notebook .highlight")  # the code, highlighted by the site's CSS
        page.click("text=← upscale")
        assert page.url == base + "upscale.html"
    assert problems == []


def test_the_other_notebooks_are_on_the_index_and_one_not_executed_says_how(site):
    out, built = site
    assert built["notebooks"] == ["app_upscale", "lesson"] and built["notebooks_not_executed"] == ["unrun"]
    index = (out / "index.html").read_text()
    assert '<a href="notebook-lesson.html">Notebook: A lesson</a>' in index
    assert "What <code>lesson</code> shows, on two lines." in index  # the header's description, on one line
    unrun = index.split("Notebook: Not run")[1].split("</p>")[0]
    assert "not executed yet: <code>make notebooks</code>" in unrun
    assert "app_upscale" not in index  # an app's notebook is on its page
    assert not (out / "notebook-unrun.html").exists()
    assert "Notebook:" not in (out / "classify.html").read_text()  # no examples/app_classify.py here


def test_a_notebook_executed_before_its_source_changed_says_so(notebooks, monkeypatch):
    examples, executed = notebooks
    monkeypatch.setattr(build, "EXAMPLES", examples)
    assert not any(n.stale for n in build.find_notebooks(executed))
    later = (executed / "lesson.ipynb").stat().st_mtime + 60
    os.utime(examples / "lesson.py", (later, later))
    try:
        found = {n.stem: n for n in build.find_notebooks(executed)}
    finally:
        os.utime(examples / "lesson.py", (later - 120, later - 120))
    assert found["lesson"].stale and not found["app_upscale"].stale
    assert "Executed before <code>examples/lesson.py</code> last changed" in build._environment().get_template(
        "notebook.html"
    ).render(notebook=found["lesson"], app=None, pages=[])


def test_the_default_weights_reliability_diagram_is_drawn_from_the_bins_on_the_card(site):
    """Before and after temperature scaling, for every app whose default weights' card stores the bins."""
    from PIL import Image

    out, _ = site
    calibrated = []
    for spec in registry.all_specs():
        entry = build.default_entry(spec)
        calibration = entry.extra.get("limits", {}).get("calibration", {}) if entry else {}
        page = (out / f"{spec.name}.html").read_text()
        if "reliability" not in calibration:
            assert "reliability.png" not in page, spec.name
            continue
        calibrated.append(spec.name)
        assert f'<img src="assets/{spec.name}/reliability.png"' in page
        assert f"{100 * calibration['ece_after']:.2f}% after temperature scaling" in page
        assert Image.open(out / "assets" / spec.name / "reliability.png").format == "PNG"
    assert "classify" in calibrated


def test_the_cli_shows_the_notebooks_make_notebooks_executed(zoo, site, notebooks, tmp_path, monkeypatch):
    examples, executed = notebooks
    monkeypatch.setattr(build, "EXAMPLES", examples)
    monkeypatch.setattr(api, "load", lambda *a, **k: pytest.fail("a cached demo ran again"))  # the site's are cached
    shutil.copytree(executed, tmp_path / "out" / "notebooks")
    monkeypatch.chdir(tmp_path)
    done = zoo("gallery", "-o", "site")
    assert done.code == 0 and "notebooks: 2 of 3 executed, make notebooks executes them" in done.out, done
    assert (tmp_path / "site" / "notebook-lesson.html").is_file()
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(executed, elsewhere)
    (elsewhere / "lesson.ipynb").unlink()
    assert zoo("gallery", "-o", "site", "--notebooks", elsewhere).code == 0
    assert not (tmp_path / "site" / "notebook-lesson.html").exists()


@needs_chromium
def test_the_checker_catches_a_missing_image(site, browser, tmp_path):
    out, _ = site
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "assets" / "upscale" / "ex0_0_image.png").unlink()
    problems = check_pages(browser, broken, tmp_path)
    assert any("image assets/upscale/ex0_0_image.png did not load" in p for p in problems), problems
    assert any(p.startswith("HTTP 404") for p in problems), problems


def test_a_rebuild_uses_the_cache_and_replaces_the_previous_gallery(site, monkeypatch, tmp_path):
    out, built = site
    (out / "stale.html").write_text("from the last build")
    monkeypatch.setattr(api, "load", lambda *a, **k: pytest.fail("a cached demo ran again"))
    # The run the default classify weights came from (the card's `--out`), as if kept.
    spec = registry.get("classify")
    run = tmp_path / re.search(r"--out (\S+)", spec.entry(spec.default_weights).command).group(1)
    run.mkdir(parents=True)
    next((out / "assets" / "classify").glob("*.png")).rename(run / "curves.png")
    monkeypatch.setattr(build, "ROOT", tmp_path)
    again = build.build(out)
    assert again["demos_run"] == [] and again["apps"] == built["apps"]
    assert not (out / "stale.html").exists() and (out / build.MARKER).exists()
    assert json.loads((out / build.MARKER).read_text())["apps"] == built["apps"]
    assert '<img class="wide" src="assets/classify/curves.png"' in (out / "classify.html").read_text()
    assert (out / "assets" / "classify" / "curves.png").read_bytes() == (run / "curves.png").read_bytes()
    assert "curves.png" not in (out / "upscale.html").read_text()  # its run was not kept


# ----------------------------------------------------------------- bad input


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_refuses_a_folder_that_is_not_a_gallery_without_force(zoo, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    assert_one_line_error(zoo("gallery", "-o", mine), str(mine), "not a previous gallery", "--force")
    assert siblings(mine) == ["thesis.txt"] and siblings(tmp_path) == ["mine"]
    assert zoo("gallery", "-o", mine, "--force").code == 0
    assert "thesis.txt" not in siblings(mine) and (mine / "index.html").is_file()


def test_an_unwritable_folder_is_a_one_line_error(zoo, tmp_path):
    target = unwritable_folder(tmp_path) / "site"
    assert_one_line_error(zoo("gallery", "-o", target), str(target), "cannot write")
    assert not target.exists()


def test_a_missing_weights_file_is_a_one_line_error_before_any_work(zoo, tmp_path, monkeypatch):
    weights = tmp_path / "weights"  # the shipped cards and files, but one
    weights.mkdir()
    for shipped in registry.WEIGHTS_DIR.iterdir():
        if shipped.name != "upscale_x3.keras":
            (weights / shipped.name).symlink_to(shipped)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    registry.all_specs.cache_clear()
    monkeypatch.setattr(api, "load", lambda *a, **k: pytest.fail("a demo ran"))
    try:
        assert_one_line_error(zoo("gallery", "-o", tmp_path / "site"), "upscale_x3.keras", "missing")
    finally:
        registry.all_specs.cache_clear()
    assert siblings(tmp_path) == ["weights"]


def test_missing_or_unreadable_notebooks_are_a_one_line_error_before_any_work(zoo, notebooks, tmp_path, monkeypatch):
    examples, executed = notebooks
    monkeypatch.setattr(build, "EXAMPLES", examples)
    monkeypatch.setattr(api, "load", lambda *a, **k: pytest.fail("a demo ran"))
    site = tmp_path / "site"
    assert_one_line_error(zoo("gallery", "-o", site, "--notebooks", tmp_path / "nowhere"), "nowhere", "make notebooks")
    damaged = tmp_path / "damaged"
    shutil.copytree(executed, damaged)
    (damaged / "lesson.ipynb").write_text('{"cells": [')
    assert_one_line_error(zoo("gallery", "-o", site, "--notebooks", damaged), "lesson.ipynb", "not a readable notebook")
    assert siblings(tmp_path) == ["damaged"]


def test_a_failed_build_leaves_the_previous_gallery_and_no_temporary_folder(site, tmp_path, monkeypatch):
    out = tmp_path / "site"
    shutil.copytree(site[0], out)

    def crash(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_write_pages", crash)
    with pytest.raises(RuntimeError):
        build.build(out)
    assert siblings(tmp_path) == ["site"] and siblings(out) == siblings(site[0])
