"""`zoo gallery -o site/`: a static site of every app's card, fresh demo outputs, source and notebooks.

Every check comes before any work (the destination, every shipped weights
file, the executed notebooks), and the site is written into a temporary
sibling folder that is renamed into place only when complete, so a failed
build leaves the old gallery, or nothing, behind. A previous gallery is
recognised by its marker file and replaced; any other existing folder needs
--force. The pages are plain HTML and CSS with relative links and no fonts,
scripts or requests from elsewhere, so the site works from file:// and offline.

The notebooks (examples/*.py) are shown as `make notebooks` executed them (`--notebooks DIR`,
by default out/notebooks/ when it exists), rendered by nbconvert with their plots inline as
data: URLs; the build never executes them (all eleven take minutes) and names the command for
any not executed yet. `examples/app_<name>.py` is app <name>'s walkthrough, linked from its
page; the others are listed on the index. An app whose default weights carry calibration (the
card's `extra.limits.calibration`, written by `zoo evaluate`) shows its reliability diagram,
drawn from the bins stored there, without running the model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe
from PIL import Image, ImageDraw

from zoo import __version__, limits, registry
from zoo.errors import BadInput
from zoo.gallery import outputs, source

MARKER = ".zoo-gallery"
HERE = Path(__file__).parent
ROOT = HERE.parents[1]  # where the cards' `--out runs/...` training commands ran
EXAMPLES = ROOT / "examples"  # the notebooks' sources, jupytext .py files (not in an installed package)
NOTEBOOKS = Path("out/notebooks")  # where `make notebooks` writes them executed: `zoo gallery`'s default
APP_NOTEBOOK = "app_"  # examples/app_<name>.py walks through app <name>


@dataclass
class Notebook:
    """One of examples/*.py: its keras.io header, and its cells as executed, rendered to HTML."""

    stem: str
    title: str
    description: str
    cells: str | None = None  # None: not executed yet
    stale: bool = False  # executed before its source last changed

    @property
    def href(self) -> str:
        return f"notebook-{self.stem}.html"

    @property
    def app(self) -> str | None:
        return self.stem.removeprefix(APP_NOTEBOOK) if self.stem.startswith(APP_NOTEBOOK) else None


@dataclass
class AppPage:
    spec: registry.AppSpec
    entry: registry.WeightsEntry | None
    assets: str  # folder of the app's pictures, relative to the site
    record: dict | None  # the showcase's record; None for an app without shipped weights
    curves: str | None  # the shipped run's training curves, if that run was kept
    reliability: str | None = None  # the default weights' reliability diagram, if their card stores its bins
    notebook: Notebook | None = None  # examples/app_<name>.py

    @property
    def calibration(self) -> dict | None:
        """What `zoo evaluate` measured of the default weights' calibration (zoo.limits), if the card has it."""
        return self.entry.extra.get("limits", {}).get("calibration") if self.entry else None

    @property
    def headline(self) -> dict | None:
        """The card's first metric on the default weights, beside its baseline's value."""
        if self.entry is None or not self.spec.metrics:
            return None
        metric = self.spec.metrics[0]
        return {
            "metric": metric,
            "value": self.entry.metrics.get(metric),
            "baseline": self.entry.baseline.get("metrics", {}).get(metric),
            "baseline_name": self.entry.baseline.get("name", ""),
        }


# ------------------------------------------------------------------- checks


def check_destination(output: Path, force: bool) -> None:
    """Refuse, before any work, a destination that is not ours to replace."""
    if output.exists() and not output.is_dir():
        raise BadInput(f"{output}: exists and is not a folder")
    if output.is_dir() and not (output / MARKER).exists() and not force:
        raise BadInput(
            f"{output}: exists and is not a previous gallery (no {MARKER} marker); pass --force to replace it"
        )


def check_weights(spec: registry.AppSpec) -> None:
    """Verify every shipped weights file of an app: present, with the card's sha256 (else BadInput).

    Files an app builds on first use (`built_by`) are built by its demo and checked when they load.
    """
    for entry in spec.weights:
        if not entry.built_by:
            registry.resolve_weights(spec.name, entry.tag)


def check_notebooks(folder: Path | None) -> None:
    """A folder of executed notebooks that exists, and nbconvert to render them."""
    if folder is None:
        return
    if not folder.is_dir():
        raise BadInput(f"--notebooks {folder}: no such folder (`make notebooks` writes {NOTEBOOKS})")
    _notebook_exporter()


def _notebook_exporter():
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        raise BadInput("nbconvert is not installed: pip install 'keras-zoo[notebooks]'") from None
    return HTMLExporter(template_name="basic")  # the cells and their outputs only: no scripts, no CDN


def _temporary_sibling(output: Path) -> Path:
    parent = output.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=parent))
    except OSError as error:  # read-only or special file systems, which os.access can't foresee for root
        raise BadInput(f"{output}: cannot write in folder {parent} ({error.strerror})") from None


# ------------------------------------------------------------------ content


def metric_rows(entry: registry.WeightsEntry) -> list[tuple[str, str, str]]:
    """(metric, value, baseline value) for every metric, nested ones flattened as `outer / inner`."""
    baseline = entry.baseline.get("metrics", {})

    def flat(values: dict, prefix: str = "") -> dict:
        rows = {}
        for key, value in values.items():
            rows.update(flat(value, f"{prefix}{key} / ") if isinstance(value, dict) else {prefix + key: value})
        return rows

    mine, theirs = flat(entry.metrics), flat(baseline)
    return [(key, _show(value), _show(theirs.get(key, ""))) for key, value in mine.items()]


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def curves_of(entry: registry.WeightsEntry) -> Path | None:
    """The training curves PNG of the run that made the shipped file, if that run directory was kept."""
    found = re.search(r"--out (\S+)", entry.command)
    curves = ROOT / found.group(1) / "curves.png" if found else None
    return curves if curves is not None and curves.is_file() else None


def default_entry(spec: registry.AppSpec) -> registry.WeightsEntry | None:
    """The weights entry the first showcase example uses, picked as the registry picks it, without
    looking at the file (a file built on first use does not exist until the app's demo builds it)."""
    if not spec.weights:
        return None
    options = spec.typed("demo", spec.examples[0].get("options", {}) if spec.examples else {})
    selectors = {o.name: options[o.name] for o in spec.parameters("demo") if o.selects_weights}
    return registry.shipped_entry(spec, **selectors)


def header(source: str) -> dict[str, str]:
    """keras.io's header fields of a jupytext notebook (`# **Title:** ...<br>`), each on one line."""
    fields = re.findall(r"^# \*\*([\w ]+):\*\* (.*?)(?=^# \*\*|^#$)", source, re.M | re.S)
    return {
        name.lower(): " ".join(line.lstrip("#").strip() for line in value.splitlines()).removesuffix("<br>")
        for name, value in fields
    }


def find_notebooks(executed: Path | None) -> list[Notebook]:
    """Every notebook of examples/, rendered from its executed copy in `executed` where there is one."""
    found, exporter = [], None
    for path in sorted(EXAMPLES.glob("*.py")):
        fields = header(path.read_text())
        notebook = Notebook(path.stem, fields.get("title", path.stem), fields.get("description", ""))
        ipynb = executed / f"{path.stem}.ipynb" if executed else None
        if ipynb is not None and ipynb.is_file():
            exporter = exporter or _notebook_exporter()
            try:
                notebook.cells, _ = exporter.from_filename(str(ipynb))
            except Exception as error:  # a damaged file raises ValueError, TypeError, AttributeError...
                raise BadInput(f"{ipynb}: not a readable notebook ({type(error).__name__})") from None
            notebook.stale = ipynb.stat().st_mtime < path.stat().st_mtime
        found.append(notebook)
    return found


def draw_calibration(page: AppPage, site: Path) -> str | None:
    """The reliability diagram of the default weights, from the bins their card stores; its path in the site."""
    stored = (page.calibration or {}).get("reliability")
    if not stored:
        return None
    title = f"{page.entry.file}: {sum(stored['before']['count']):,} held-out inputs"
    limits.plot_calibration(page.calibration, site / page.assets / "reliability.png", title)
    return f"{page.assets}/reliability.png"


def app_page(spec: registry.AppSpec, cache: Path, site: Path) -> tuple[AppPage, bool]:
    """The app's page data, its outputs copied into the site; (page, whether the demo ran now)."""
    entry = default_entry(spec)
    assets = site / "assets" / spec.name
    assets.mkdir(parents=True)
    page, fresh = AppPage(spec, entry, f"assets/{spec.name}", None, None), False
    if entry is not None and spec.examples:
        folder, page.record, fresh = outputs.showcase(spec, cache)
        shutil.copytree(folder, assets, dirs_exist_ok=True)
        (assets / outputs.RECORD).unlink()
        if kept := curves_of(entry):
            shutil.copy(kept, assets / "curves.png")
            page.curves = f"assets/{spec.name}/curves.png"
    page.reliability = draw_calibration(page, site)
    return page, fresh


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(metric_rows=metric_rows, version=__version__)
    environment.filters["code_spans"] = code_spans
    return environment


def code_spans(text: str) -> markupsafe.Markup:
    """Plain text with its `backticked` spans as <code>, the rest escaped (a notebook's description)."""
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(markupsafe.escape(text))))


def write_favicon(path: Path) -> None:
    """The site's icon, a white z on the accent colour: without one, every page served over HTTP
    makes the browser ask for /favicon.ico and log the 404 in its console."""
    icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(179, 38, 30, 255))
    draw.line([(8, 9), (23, 9), (8, 23), (23, 23)], fill="white", width=4)
    icon.save(path, sizes=[(16, 16), (32, 32)])


def _write_pages(site: Path, pages: list[AppPage], notebooks: list[Notebook]) -> None:
    environment = _environment()
    write_favicon(site / "favicon.ico")
    (site / "style.css").write_text((HERE / "style.css").read_text() + "\n" + source.pygments_css() + "\n")
    apps = {page.spec.name for page in pages}
    others = [notebook for notebook in notebooks if notebook.app not in apps]  # the lecture's, on the index
    (site / "index.html").write_text(environment.get_template("index.html").render(pages=pages, notebooks=others))
    for notebook in notebooks:
        if notebook.cells is not None:
            context = {"notebook": notebook, "app": notebook.app if notebook.app in apps else None, "pages": pages}
            (site / notebook.href).write_text(environment.get_template("notebook.html").render(**context))
    for page in pages:
        context = {"page": page, "spec": page.spec, "pages": pages}
        (site / f"{page.spec.name}.html").write_text(environment.get_template("app.html").render(**context))
        (site / f"{page.spec.name}-source.html").write_text(
            environment.get_template("source.html").render(literate=source.literate(page.spec.module), **context)
        )


# -------------------------------------------------------------------- build


def build(output: Path, force: bool = False, notebooks: Path | None = None) -> dict:
    """Build the site into `output`, with the executed notebooks in `notebooks` (None: none executed);
    returns what was built and how long it took."""
    started = time.perf_counter()
    output = Path(output)
    check_destination(output, force)
    check_notebooks(notebooks)
    specs = registry.all_specs()
    for spec in specs:  # every weights file checked before any work
        check_weights(spec)
    shown = find_notebooks(notebooks)  # rendered before any demo runs: an unreadable one stops the build
    site = _temporary_sibling(output)
    try:
        made = [app_page(spec, outputs.default_cache(), site) for spec in specs]
        pages = [page for page, _ in made]
        for page in pages:
            page.notebook = next((n for n in shown if n.app == page.spec.name), None)
        _write_pages(site, pages, shown)
        (site / MARKER).write_text(json.dumps({"zoo": __version__, "apps": [p.spec.name for p in pages]}) + "\n")
        os.chmod(site, 0o755)  # mkdtemp makes the folder private; a site is for reading
        _swap_into_place(site, output)
    except BaseException:
        shutil.rmtree(site, ignore_errors=True)
        raise
    return {
        "output": str(output),
        "apps": [p.spec.name for p in pages],
        "demos_run": [page.spec.name for page, fresh in made if fresh],
        "notebooks": [notebook.stem for notebook in shown if notebook.cells is not None],
        "notebooks_not_executed": [notebook.stem for notebook in shown if notebook.cells is None],
        "seconds": round(time.perf_counter() - started, 2),
    }


def _swap_into_place(site: Path, output: Path) -> None:
    """Rename the finished site onto `output`; a previous one is moved aside first, then removed."""
    old = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=site.parent))
        os.replace(output, old / "site")
    os.replace(site, output)
    if old is not None:
        shutil.rmtree(old)
