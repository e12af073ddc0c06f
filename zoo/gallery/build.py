"""`zoo gallery -o site/`: a static site of every app's card, fresh demo outputs and source.

Every check comes before any work (the destination, every shipped weights
file), and the site is written into a temporary sibling folder that is
renamed into place only when complete, so a failed build leaves the old
gallery, or nothing, behind. A previous gallery is recognised by its marker
file and replaced; any other existing folder needs --force. The pages are
plain HTML and CSS with relative links and no fonts, scripts or requests
from elsewhere, so the site works from file:// and offline.
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
from PIL import Image, ImageDraw

from zoo import __version__, registry
from zoo.errors import BadInput
from zoo.gallery import outputs, source

MARKER = ".zoo-gallery"
HERE = Path(__file__).parent
ROOT = HERE.parents[1]  # where the cards' `--out runs/...` training commands ran


@dataclass
class AppPage:
    spec: registry.AppSpec
    entry: registry.WeightsEntry | None
    assets: str  # folder of the app's pictures, relative to the site
    record: dict | None  # the showcase's record; None for an app without shipped weights
    curves: str | None  # the shipped run's training curves, if that run was kept

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


def app_page(spec: registry.AppSpec, cache: Path, site: Path) -> tuple[AppPage, bool]:
    """The app's page data, its outputs copied into the site; (page, whether the demo ran now)."""
    entry = default_entry(spec)
    assets = site / "assets" / spec.name
    assets.mkdir(parents=True)
    record, fresh, curves = None, False, None
    if entry is not None and spec.examples:
        folder, record, fresh = outputs.showcase(spec, cache)
        shutil.copytree(folder, assets, dirs_exist_ok=True)
        (assets / outputs.RECORD).unlink()
        if kept := curves_of(entry):
            shutil.copy(kept, assets / "curves.png")
            curves = f"assets/{spec.name}/curves.png"
    return AppPage(spec, entry, f"assets/{spec.name}", record, curves), fresh


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(metric_rows=metric_rows, version=__version__)
    return environment


def write_favicon(path: Path) -> None:
    """The site's icon, a white z on the accent colour: without one, every page served over HTTP
    makes the browser ask for /favicon.ico and log the 404 in its console."""
    icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(179, 38, 30, 255))
    draw.line([(8, 9), (23, 9), (8, 23), (23, 23)], fill="white", width=4)
    icon.save(path, sizes=[(16, 16), (32, 32)])


def _write_pages(site: Path, pages: list[AppPage]) -> None:
    environment = _environment()
    write_favicon(site / "favicon.ico")
    (site / "style.css").write_text((HERE / "style.css").read_text() + "\n" + source.pygments_css() + "\n")
    (site / "index.html").write_text(environment.get_template("index.html").render(pages=pages))
    for page in pages:
        context = {"page": page, "spec": page.spec, "pages": pages}
        (site / f"{page.spec.name}.html").write_text(environment.get_template("app.html").render(**context))
        (site / f"{page.spec.name}-source.html").write_text(
            environment.get_template("source.html").render(literate=source.literate(page.spec.module), **context)
        )


# -------------------------------------------------------------------- build


def build(output: Path, force: bool = False) -> dict:
    """Build the site into `output`; returns what was built and how long it took."""
    started = time.perf_counter()
    output = Path(output)
    check_destination(output, force)
    specs = registry.all_specs()
    for spec in specs:  # every weights file checked before any work
        check_weights(spec)
    site = _temporary_sibling(output)
    try:
        made = [app_page(spec, outputs.default_cache(), site) for spec in specs]
        pages = [page for page, _ in made]
        _write_pages(site, pages)
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
