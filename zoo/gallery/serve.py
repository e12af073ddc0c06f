"""`zoo serve [APP]`: every app with a predictor as a tab of a local demo in the browser (Gradio, an optional extra).

Nothing here names an app: a tab is made from the app's card and its result type.

- Widgets are the card's demo options (`registry.Option`: type, min, max, choices, default), so
  the page and `zoo demo` can never disagree, and the values go through the same checks
  (`AppSpec.typed`, by `zoo.load` and the predictor). The options that choose the model are
  offered only as the card's shipped choices (`selects_weights`); options that point the loader
  at files (a tokenizer, a ratings file, a gallery folder) stay at the card's defaults.
- An app that takes inputs gets an upload, which arrives as a file and goes through the app's
  own reader (an image app's is `zoo.data.images.read_image`: decompression bombs, corrupt
  files); uploads over `MAX_UPLOAD_MB` are refused by the server before they are read.
- Outputs are one component per shown field of the app's result class (`api.result_type`,
  `api.SHOW_KINDS`), then the result's terminal line and its `--json` record.
- Predictors load on first use and are kept, one per app and choice of load-time options.

A bad input shows its one-line message in the page (`gr.Error`) and the server keeps serving.
The server binds to 127.0.0.1 with sharing and analytics off, and its theme uses system fonts,
so the page makes no request elsewhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from zoo import api, registry
from zoo.errors import BadInput
from zoo.gallery import needs_web, outputs

HOST = "127.0.0.1"
MAX_UPLOAD_MB = 20  # a 12-megapixel PNG is about 20 MB; a JPEG of it a few
NOT_OFFERED = ("weights",) + api.CLI_ONLY  # the server chooses models by the card's selectors, writes no files
DEFAULT_CHOICE = "card default"
FILES_KEPT_S = 3600  # how long a request's files stay on the server for the page to fetch


def check_port(port: int) -> None:
    """Fail before the slow start-up if the port is taken."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else error.strerror
            raise BadInput(f"--port {port}: {reason} on {HOST} (pick another with --port)") from None


def _gradio():
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported
    [gradio] = needs_web("gradio")
    return gradio


# ------------------------------------------------------------------ the tabs


@dataclass(frozen=True)
class Tab:
    """What one app's tab offers and shows, read from its card and its result class."""

    spec: registry.AppSpec
    options: tuple[registry.Option, ...]  # the widgets, in the card's order
    shown: tuple[tuple[str, str], ...]  # (field, show kind) of the result, in declaration order

    @property
    def takes_inputs(self) -> bool:
        return self.spec.declared("demo").takes_inputs

    @property
    def at_load(self) -> set[str]:
        """The options fixed when a model loads: they pick the predictor, the others go to its call."""
        return {o.name for o in self.options if o.at_load}


def offered(spec: registry.AppSpec) -> tuple[registry.Option, ...]:
    """The demo options a tab offers: every per-call one, and the load-time ones that pick a shipped model."""
    return tuple(
        o
        for o in spec.parameters("demo")
        if o.name not in NOT_OFFERED and o.type != "path" and (o.selects_weights or not o.at_load)
    )


def choices(spec: registry.AppSpec, option: registry.Option) -> list:
    """The option's card choices; for a selector without any, the values its shipped entries carry."""
    if option.choices:
        return list(option.choices)
    if option.selects_weights:
        return sorted({e.extra[option.name] for e in spec.weights if option.name in e.extra}, key=str)
    return []


def tabs(app: str | None) -> list[Tab]:
    """The tab of `app`, or of every app with a predictor and shipped weights (the server offers no
    --weights); importing the app modules imports Keras."""
    specs = [registry.get(app)] if app is not None else list(registry.all_specs())
    found = []
    for spec in specs:
        predictor = getattr(registry.load_module(spec), "Predictor", None) if spec.weights else None
        if predictor is None:
            if app is not None:
                missing = "shipped weights" if not spec.weights else "Predictor in its module"
                raise BadInput(f"{app}: no interactive demo yet (no {missing}); `zoo demo {app}` runs it")
            continue
        found.append(Tab(spec, offered(spec), tuple(api.shown_kinds(api.result_type(predictor)))))
    return found


def _widget(gr, spec: registry.AppSpec, option: registry.Option):
    """The input component of one option, made unrendered so the tab can lay it out."""
    common = {"label": option.name.replace("_", " "), "info": option.help or None, "render": False}
    listed = choices(spec, option)
    if listed:
        values = [(str(c), str(c)) for c in listed]
        if option.default is None:
            values = [(DEFAULT_CHOICE, "")] + values
        return gr.Dropdown(values, value="" if option.default is None else str(option.default), **common)
    if option.type == "flag":
        return gr.Checkbox(value=bool(option.default), **common)
    if option.type in ("int", "float") and option.min is not None and option.max is not None:
        step = 1 if option.type == "int" else (option.max - option.min) / 100
        return gr.Slider(option.min, option.max, value=option.default, step=step, **common)
    if option.type in ("int", "float"):
        return gr.Number(
            option.default,
            minimum=option.min,
            maximum=option.max,
            precision=0 if option.type == "int" else None,
            **common,
        )
    return gr.Textbox(value=option.default or "", **common)


def _output(gr, name: str, kind: str):
    """The output component of one shown field."""
    label, off = name.replace("_", " "), {"render": False}
    if kind == "image":
        return gr.Image(label=label, type="pil", format="png", **off)
    if kind == "animation":  # a GIF file, which the browser plays
        return gr.Image(label=label, type="filepath", **off)
    if kind == "images":
        return gr.Gallery(label=label, format="png", **off)
    if kind == "labels":
        return gr.Label(label=label, **off)
    if kind == "audio":
        return gr.Audio(label=label, format="wav", **off)
    if kind == "table":
        return gr.Dataframe(label=label, wrap=True, **off)
    return gr.Textbox(label=label, **off)


# ------------------------------------------------------------------ requests


class Predictors:
    """The loaded predictors, one per app and load-time options, each loaded once and reused."""

    def __init__(self):
        self.loaded: dict[tuple, api.Predictor] = {}
        self.lock = threading.Lock()  # two first requests load one model, once

    def get(self, spec: registry.AppSpec, chosen: dict) -> api.Predictor:
        typed = spec.typed("demo", chosen, fill_defaults=False)  # "2" and 2 are one scale
        key = (spec.name, tuple(sorted((name, repr(value)) for name, value in typed.items())))
        with self.lock:
            if key not in self.loaded:
                self.loaded[key] = api.load(spec.name, **typed)
            return self.loaded[key]


class Handler:
    """One tab's button: the upload and widget values in, one value per output component out."""

    def __init__(self, tab: Tab, predictors: Predictors, root: Path):
        self.tab, self.predictors, self.root = tab, predictors, root

    def __call__(self, *values):
        upload = values[0] if self.tab.takes_inputs else None
        widgets = values[1:] if self.tab.takes_inputs else values
        try:
            return self.run(upload, widgets)
        except BadInput as error:
            raise _gradio().Error(_without_folder(str(error), upload)) from None

    def run(self, upload: str | None, widgets: tuple) -> tuple:
        options = {o.name: None if value == "" else value for o, value in zip(self.tab.options, widgets)}
        at_load = self.tab.at_load
        predictor = self.predictors.get(self.tab.spec, {k: v for k, v in options.items() if k in at_load})
        call = {k: v for k, v in options.items() if k not in at_load}
        if upload:
            result = predictor(upload, **call)
        elif self.tab.takes_inputs and not self.tab.spec.declared("demo").inputs_optional:
            raise BadInput("upload a file first")
        else:  # an app without inputs, or one whose options can stand in for them (speech's say=)
            result = predictor(**call)
        shown = [self.value(kind, getattr(result, name)) for name, kind in self.tab.shown]
        record = json.loads(_without_folder(json.dumps(result.to_dict()), upload))
        return (*shown, _without_folder(result.text, upload), record)

    def folder(self) -> Path:
        """A folder for one request's files (concurrent users never share one); those past FILES_KEPT_S go."""
        for old in self.root.iterdir():
            if time.time() - old.stat().st_mtime > FILES_KEPT_S:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))

    def value(self, kind: str, value):
        """A shown field as its component takes it; an animation as a GIF file of this request's own."""
        if value is None:
            return None
        shown = api.display(kind, value)
        if kind == "animation":
            return str(outputs.write_animation(shown, self.folder() / "animation.gif"))
        if kind == "table":
            headers = list(dict.fromkeys(key for row in shown for key in row))
            return {"headers": headers, "data": [[row.get(key) for key in headers] for row in shown]}
        return shown


def _without_folder(text: str, upload: str | None) -> str:
    """The upload's own name in place of the server's temporary path to it."""
    return text.replace(upload, Path(upload).name) if upload else text


# ------------------------------------------------------------------- the page


def _tab(gr, tab: Tab, predictors: Predictors, root: Path) -> None:
    """One app's tab: upload and options left, outputs right; the button's endpoint is /<app> (gradio_client's)."""
    # Any file: the app's own reader decides what it takes (images, sound), with its one-line message.
    inputs = [gr.File(label="input", type="filepath", render=False)] if tab.takes_inputs else []
    inputs += [_widget(gr, tab.spec, option) for option in tab.options]
    outputs_ = [_output(gr, name, kind) for name, kind in tab.shown]
    outputs_ += [gr.Textbox(label="result", render=False), gr.JSON(label="--json record", render=False)]
    with gr.Tab(tab.spec.name):
        gr.Markdown(tab.spec.summary)
        with gr.Row():
            with gr.Column():
                for component in inputs:
                    component.render()
                run = gr.Button("Run", variant="primary")
            with gr.Column():
                for component in outputs_:
                    component.render()
    run.click(Handler(tab, predictors, root), inputs, outputs_, api_name=tab.spec.name)


def interface(found: list[Tab], root: Path):
    gr = _gradio()
    predictors = Predictors()
    # Files the page was sent (uploads, outputs) are removed, every 10 minutes, once past FILES_KEPT_S.
    with gr.Blocks(title="keras-zoo", analytics_enabled=False, delete_cache=(600, FILES_KEPT_S)) as blocks:
        gr.Markdown("# keras-zoo\nThe shipped models, on your files. Nothing leaves this machine.")
        for tab in found:
            _tab(gr, tab, predictors, root)
    return blocks


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # Gradio closes its server on it, and the outputs' folder is removed


def serve(app: str | None, port: int) -> None:
    """Serve until interrupted (Ctrl-C, or SIGTERM)."""
    if app is not None:
        registry.get(app)  # an unknown name: the registry's did-you-mean, before the slow start-up
    check_port(port)
    gr = _gradio()
    found = tabs(app)
    signal.signal(signal.SIGTERM, _interrupt)
    # System fonts: the default theme would fetch its font from the web.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as root:
        interface(found, Path(root)).launch(
            server_name=HOST,
            server_port=port,
            share=False,
            inbrowser=False,
            ssr_mode=False,
            mcp_server=False,
            allowed_paths=[root],
            theme=theme,
            show_error=True,
            max_file_size=f"{MAX_UPLOAD_MB}mb",
        )
