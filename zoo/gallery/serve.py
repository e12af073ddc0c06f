"""`zoo serve [APP]`: the apps as a local interactive demo in the browser (Gradio, an optional extra).

Each tab is a thin form over the app's own `demo`, run through `registry.call`
as the CLI runs it, so an upload goes through the same image reader and
limits (`zoo.data.images.read_image`: decompression bombs, corrupt files);
a bad one shows its one-line message in the page (`gr.Error`) and the server
keeps running. The server binds to 127.0.0.1 with sharing and analytics off,
and its theme uses system fonts, so the page makes no request elsewhere.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import socket
import tempfile
from pathlib import Path

from zoo import registry
from zoo.errors import BadInput
from zoo.gallery import needs_web

HOST = "127.0.0.1"
APPS = ("upscale", "classify", "captioning", "music", "rl")  # the apps with a tab, in tab order


def check_port(port: int) -> None:
    """Fail before the slow start-up if the port is taken."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else error.strerror
            raise BadInput(f"--port {port}: {reason} on {HOST} (pick another with --port)") from None


def apps_to_serve(app: str | None) -> tuple[str, ...]:
    if app is None:
        return APPS
    registry.get(app)  # an unknown name gets the registry's did-you-mean message
    if app not in APPS:
        raise BadInput(f"{app}: no interactive demo yet (zoo serve has: {', '.join(APPS)}); "
                       f"`zoo demo {app}` and `zoo gallery` show it")
    return (app,)


def _gradio():
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported
    [gradio] = needs_web("gradio")
    return gradio


def _shown_in_page(handler):
    """A BadInput becomes an error message in the page; the server goes on."""
    @functools.wraps(handler)
    def wrapped(*args):
        try:
            return handler(*args)
        except BadInput as error:
            message = str(error)
            for arg in args:  # an upload's name, not the server's temporary path to it
                if isinstance(arg, str) and os.sep in arg:
                    message = message.replace(arg, Path(arg).name)
            raise _gradio().Error(message) from None
    return wrapped


def _choices(app: str, option: str) -> list:
    return list(next(o.choices for o in registry.get(app).parameters("demo") if o.name == option))


class Handlers:
    """One method per tab: the form's values in, the demo's outputs (files under `root`) out."""

    def __init__(self, root: Path):
        self.root = root

    def _folder(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.root))  # one per request: concurrent users never share files

    @staticmethod
    def _upload(path: str | None) -> Path:
        if not path:
            raise BadInput("upload a photo first")
        return Path(path)

    def upscale(self, photo: str | None, scale: str) -> tuple[str, str]:
        out = self._folder() / "upscaled.png"
        [result] = registry.call("upscale", "demo", inputs=[self._upload(photo)], output=out, force=True,
                                 scale=int(scale))
        (w, h), (big_w, big_h) = result["input_size"], result["output_size"]
        return str(out), f"{w}x{h} -> {big_w}x{big_h} ({result['scale']}x)"

    def classify(self, photo: str | None) -> tuple[dict, str]:
        out = self._folder() / "gradcam.png"
        [result] = registry.call("classify", "demo", inputs=[self._upload(photo)], output=out, force=True,
                                 explain=True)
        return {r["label"]: r["probability"] for r in result["top"]}, str(out)

    def captioning(self, photo: str | None, beam: float) -> tuple[str, list]:
        folder = self._folder()
        [result] = registry.call("captioning", "demo", inputs=[self._upload(photo)], output=folder, force=True,
                                 beam=int(beam))
        return result["caption"], list(zip(result["attention_maps"], result["caption"].split()))

    def music(self, seed: float, temperature: float, bars: float, corpus: str) -> tuple[str, str, str]:
        midi = self._folder() / "song.mid"
        [result] = registry.call("music", "demo", output=midi, force=True, seed=int(seed),
                                 temperature=temperature, bars=int(bars), corpus=corpus)
        return result["wav"], result["piano_roll"], result["output"]

    def rl(self, env: str, seed: float) -> tuple[str, str]:
        gif = self._folder() / "episode.gif"
        [result] = registry.call("rl", "demo", output=gif, force=True, env=env, seed=int(seed))
        return str(gif), f"return {result['return']} in {result['steps']} steps ({result['algo']})"


def _form(gr, app: str) -> tuple[list, list]:
    """(inputs, outputs) of one app's form, made unrendered so the tab can lay them out."""
    off = {"render": False}
    if app == "upscale":
        return ([gr.File(label="photo", file_types=["image"], **off),
                 gr.Dropdown([str(s) for s in _choices(app, "scale")], value="2", label="scale", **off)],
                [gr.Image(label="upscaled", type="filepath", format="png", **off), gr.Textbox(label="size", **off)])
    if app == "classify":
        return ([gr.File(label="image", file_types=["image"], **off)],
                [gr.Label(label="top labels", **off), gr.Image(label="Grad-CAM", type="filepath", format="png", **off)])
    if app == "captioning":
        return ([gr.File(label="image", file_types=["image"], **off), gr.Slider(1, 8, value=3, step=1, label="beam", **off)],
                [gr.Textbox(label="caption", **off), gr.Gallery(label="attention per word", **off)])
    if app == "music":
        corpora = _choices(app, "corpus")
        return ([gr.Number(0, label="seed", precision=0, **off),
                 gr.Slider(0.1, 2.0, value=1.0, label="temperature", **off),
                 gr.Slider(1, 32, value=8, step=1, label="bars", **off),
                 gr.Dropdown(corpora, value=corpora[0], label="corpus", **off)],
                [gr.Audio(label="listen", type="filepath", **off), gr.Image(label="piano roll", type="filepath", **off),
                 gr.File(label="MIDI", **off)])
    envs = sorted({e.extra["env"] for e in registry.get(app).weights})
    return ([gr.Dropdown(envs, value=envs[0], label="environment", **off), gr.Number(0, label="seed", precision=0, **off)],
            [gr.Image(label="episode", type="filepath", **off), gr.Textbox(label="return", **off)])


def _tab(gr, app: str, handlers: Handlers) -> None:
    """One app's tab: the form left, the outputs right; the button's endpoint is /<app> (gradio_client's)."""
    inputs, outputs = _form(gr, app)
    with gr.Tab(app):
        gr.Markdown(registry.get(app).summary)
        with gr.Row():
            with gr.Column():
                for component in inputs:
                    component.render()
                run = gr.Button("Run", variant="primary")
            with gr.Column():
                for component in outputs:
                    component.render()
    run.click(_shown_in_page(getattr(handlers, app)), inputs, outputs, api_name=app)


def interface(apps: tuple[str, ...], handlers: Handlers):
    gr = _gradio()
    with gr.Blocks(title="keras-zoo", analytics_enabled=False) as blocks:
        gr.Markdown("# keras-zoo\nThe shipped models, on your files. Nothing leaves this machine.")
        for app in apps:
            _tab(gr, app, handlers)
    return blocks


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # Gradio closes its server on it, and the outputs' folder is removed


def serve(app: str | None, port: int) -> None:
    """Serve until interrupted (Ctrl-C, or SIGTERM)."""
    apps = apps_to_serve(app)
    check_port(port)
    gr = _gradio()
    signal.signal(signal.SIGTERM, _interrupt)
    # System fonts: the default theme would fetch its font from the web.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as root:
        interface(apps, Handlers(Path(root))).launch(
            server_name=HOST, server_port=port, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
            allowed_paths=[root], theme=theme, show_error=True)
