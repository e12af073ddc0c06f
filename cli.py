"""The `zoo` command line: list, inspect, train, evaluate and demo every app.

The CLI knows apps only through `zoo.registry`, whose specs are JSON. The
`train`, `evaluate` and `demo` groups build one subcommand per app from that
data (Click's lazy-subcommand pattern), so `zoo list`, `zoo info` and every
`--help` answer without importing Keras or TensorFlow; the app module is
imported only when its command actually runs.

Exit codes: 0 success, 2 bad usage or bad input (one line naming the file and
the problem), 1 unexpected failure (one line; the traceback with --verbose).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path

import click

from zoo import __version__, registry
from zoo.errors import BadInput, ZooError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up noise; set before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _stderr_silenced(silence: bool):
    """Swallow what C++ libraries print to file descriptor 2 while TensorFlow loads."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load_app(spec: registry.AppSpec):
    verbose = (click.get_current_context().find_root().obj or {}).get("verbose", False)
    with _stderr_silenced(not verbose):
        return registry.load_module(spec)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


# ---------------------------------------------------------------- list / info


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="zoo")
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's logs and full tracebacks.")
@click.pass_context
def zoo(ctx: click.Context, verbose: bool) -> None:
    """keras-zoo: train, evaluate or demo any app of the catalog.

    \b
    zoo list                      the apps
    zoo info upscale              an app's model card
    zoo demo upscale photo.jpg    run the shipped model on your file
    zoo train upscale             train it yourself (resumable)
    """
    ctx.obj = {"verbose": verbose}
    if not verbose:
        _quiet_tensorflow()


@zoo.command("list")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_apps(pattern: str, as_json: bool) -> None:
    """List apps; PATTERN filters names or kinds with wildcards (e.g. 'vis*')."""
    specs = registry.find(pattern)
    if as_json:
        _echo_json([{"name": s.name, "kind": s.kind, "summary": s.summary,
                     "weights": [w["tag"] for w in s.weights]} for s in specs])
        return
    if not specs:
        raise BadInput(f"no app matches {pattern!r}")
    tags = {s.name: ",".join(w["tag"] for w in s.weights) or "-" for s in specs}
    width, tag_width = max(len(s.name) for s in specs), max(len(t) for t in tags.values())
    for s in specs:
        click.echo(f"{s.name:<{width}}  {s.kind:<7} {tags[s.name]:<{tag_width}}  {s.summary}")


def _card_lines(spec: registry.AppSpec) -> list[str]:
    lines = [f"{spec.name} ({spec.kind}): {spec.summary}",
             f"  module:   {spec.module}",
             f"  datasets: {', '.join(spec.datasets)}",
             f"  metrics:  {', '.join(spec.metrics)}"]
    for entry in spec.weights:
        path = registry.WEIGHTS_DIR / entry["file"]
        status = "missing" if not path.exists() else (
            "ok" if registry.sha256_of(path) == entry.get("sha256") else "SHA256 MISMATCH")
        lines.append(f"  weights {entry['tag']}: {entry['file']} ({status}, {entry.get('params', '?')} params)")
        for key in ("data", "split", "hardware", "wall_time", "command", "evaluate_command"):
            if key in entry:
                lines.append(f"    {key}: {entry[key]}")
        baseline = entry.get("baseline", {})
        for metric, value in entry.get("metrics", {}).items():
            base = baseline.get("metrics", {}).get(metric)
            beside = f"   ({baseline.get('name')}: {base})" if base is not None else ""
            lines.append(f"    {metric}: {value}{beside}")
    if not spec.weights:
        lines.append("  weights: none shipped yet")
    return lines


@zoo.command()
@click.argument("app")
@click.option("--json", "as_json", is_flag=True, help="Print the whole model card as JSON.")
def info(app: str, as_json: bool) -> None:
    """Show an app's model card: data, metrics beside the baseline, recipe."""
    spec = registry.get(app)
    if as_json:
        _echo_json(json.loads(spec.card_path.read_text()))
    else:
        click.echo("\n".join(_card_lines(spec)))


# ------------------------------------------------- train / evaluate / demo

_CLICK_TYPES = {"str": str, "int": int, "float": float, "path": click.Path(path_type=Path)}


def _app_option(option: registry.Option) -> click.Option:
    flags = [option.flag] + ([option.short] if option.short else []) + [option.name]
    if option.type == "flag":
        return click.Option(flags, is_flag=True, default=bool(option.default), help=option.help)
    kind = click.Choice([str(c) for c in option.choices]) if option.type == "choice" else _CLICK_TYPES[option.type]
    return click.Option(flags, type=kind, default=option.default, show_default=option.default is not None,
                        help=option.help)


def _common_params(action: str, spec: registry.AppSpec) -> list[click.Parameter]:
    weights = click.Option(["--weights"], type=click.Path(path_type=Path),
                           help="A .keras file, or a run directory from `zoo train --out` (its best checkpoint).")
    as_json = click.Option(["--json", "as_json"], is_flag=True, help="Machine-readable output.")
    data = click.Option(["--data"], type=click.Path(path_type=Path), help="Your own data (file or folder).")
    if action == "train":
        return [
            click.Option(["--preset"], type=click.Choice(spec.presets), default=spec.presets[0], show_default=True,
                         help="Hyper-parameter preset."),
            click.Option(["--epochs"], type=click.IntRange(min=1), help="Override the preset's number of epochs."),
            data,
            click.Option(["--out"], type=click.Path(path_type=Path),
                         help="Run directory (default: runs/<app>-<time>)."),
            click.Option(["--resume"], is_flag=True, help="Continue an interrupted run (--out, or the latest run)."),
            click.Option(["--seed"], type=int, default=0, show_default=True, help="Random seed, set once."),
        ]
    if action == "evaluate":
        return [weights, data, as_json]
    inputs = [click.Argument(["inputs"], nargs=-1, required=True, metavar="INPUT...")] if spec.demo_inputs == "files" else []
    return inputs + [
        weights,
        click.Option(["-o", "--output"], type=click.Path(path_type=Path),
                     help="Output file (one input) or folder (several)."),
        click.Option(["--force"], is_flag=True, help="Overwrite existing outputs."),
        as_json,
    ]


def _echo_mapping(mapping: dict, indent: int = 0) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict):
            click.echo(f"{' ' * indent}{key}:")
            _echo_mapping(value, indent + 2)
        else:
            click.echo(f"{' ' * indent}{key}: {value}")


def _print_result(action: str, result, as_json: bool) -> None:
    if as_json:
        _echo_json(result)
    elif action == "demo":
        for item in result:
            click.echo(item.get("text") or "  ".join(f"{k}: {v}" for k, v in item.items()))
    else:
        _echo_mapping(result)


def _app_command(spec: registry.AppSpec, action: str) -> click.Command:
    def run(**kwargs):
        as_json = kwargs.pop("as_json", False)
        if "inputs" in kwargs:
            kwargs["inputs"] = [Path(p) for p in kwargs["inputs"]]
        result = getattr(_load_app(spec), action)(**kwargs)
        _print_result(action, result, as_json)

    return click.Command(
        spec.name, callback=run, help=f"{action.capitalize()} {spec.name}: {spec.summary}", context_settings=CONTEXT,
        params=_common_params(action, spec) + [_app_option(o) for o in spec.options.get(action, ())],
    )


class AppGroup(click.Group):
    """One lazily built subcommand per app, from the registry's data."""

    def __init__(self, action: str, **kwargs):
        super().__init__(name=action, context_settings=CONTEXT, **kwargs)
        self.action = action

    def list_commands(self, ctx):
        return [s.name for s in registry.all_specs()]

    def get_command(self, ctx, name):
        return _app_command(registry.get(name), self.action)


zoo.add_command(AppGroup("train", help="Train an app; the run directory keeps logs, curves and checkpoints."))
zoo.add_command(AppGroup("evaluate", help="Evaluate weights (shipped by default) beside the app's baseline."))
zoo.add_command(AppGroup("demo", help="Run an app on your input files."))


# ------------------------------------------------- explain / visualize


def _explainer(app: str, weights: Path | None):
    """zoo.vision.explain (Keras) and the app's Explainable, imported only when the command runs."""
    spec = registry.get(app)
    verbose = (click.get_current_context().find_root().obj or {}).get("verbose", False)
    with _stderr_silenced(not verbose):
        from zoo.vision import explain

        return explain, explain.load(spec.name, weights)


@zoo.command()
@click.argument("app")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The saliency overlay (PNG).")
@click.option("--method", type=click.Choice(["gradcam", "integrated-gradients"]), default="gradcam",
              show_default=True, help="Grad-CAM (class-specific, coarse) or integrated gradients (pixel-sharp).")
@click.option("--target", help="Class to explain, by name or index (default: the top prediction).")
@click.option("--layer", help="Convolutional layer for Grad-CAM (default: the last one).")
@click.option("--weights", type=click.Path(path_type=Path), help="A .keras file or a run directory.")
@click.option("--force", is_flag=True, help="Overwrite the output.")
def explain(app: str, image: Path, output: Path, method: str, target: str | None, layer: str | None,
            weights: Path | None, force: bool) -> None:
    """Which pixels made APP's model decide: a saliency map over IMAGE as the model saw it."""
    from zoo.data.images import read_image, save_image
    from zoo.files import check_output_path

    photo = read_image(image)
    check_output_path(output, force)
    tools, explainable = _explainer(app, weights)
    heatmap, seen, label = tools.saliency(explainable, photo, method, target, layer)
    save_image(tools.overlay(seen, heatmap), output, force=force)
    click.echo(f"{image}: {method} map{f' for {label}' if label else ''} -> {output}")


@zoo.command()
@click.argument("app")
@click.option("--layer", required=True, help="Convolutional layer whose channels to visualise.")
@click.option("--channel", type=click.IntRange(min=0), help="One channel (default: 0, or a grid with --channels).")
@click.option("--channels", type=click.IntRange(min=1), help="A grid of the layer's first N channels.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The image (PNG).")
@click.option("--steps", type=click.IntRange(min=1), default=256, show_default=True, help="Gradient-ascent steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--weights", type=click.Path(path_type=Path), help="A .keras file or a run directory.")
@click.option("--force", is_flag=True, help="Overwrite the output.")
def visualize(app: str, layer: str, channel: int | None, channels: int | None, output: Path, steps: int, seed: int,
              weights: Path | None, force: bool) -> None:
    """What a channel of APP's model responds to: an image optimised to excite it (activation maximisation)."""
    from zoo.data.images import save_image
    from zoo.files import check_output_path

    if channel is not None and channels is not None:
        raise BadInput("--channel and --channels: pass one of them")
    check_output_path(output, force)
    tools, explainable = _explainer(app, weights)
    picked = list(range(channels)) if channels else [channel or 0]
    images = tools.visualize(explainable, layer, picked, steps=steps, seed=seed)
    save_image(tools.enlarge(tools.grid(images), min_side=tools.MIN_DISPLAY_SIDE), output, force=force)
    click.echo(f"{app} {layer} channel{'s 0-' + str(channels - 1) if channels else ' ' + str(picked[0])} -> {output}")


# ------------------------------------------------------------------ data


@zoo.group(context_settings=CONTEXT)
def data() -> None:
    """Datasets: list the catalog, download (hash-checked, cached), show paths."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_list(as_json: bool) -> None:
    """List every dataset with its source, license, size and offline status."""
    from zoo.data import catalog

    rows = [catalog.describe(d) for d in catalog.DATASETS.values()]
    if as_json:
        _echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['status']:<12} {r['size']:<9} {r['license']:<14} {r['summary']}")


@data.command("fetch")
@click.argument("name")
def data_fetch(name: str) -> None:
    """Download a dataset into the cache (or find its offline copy)."""
    from zoo.data import catalog

    click.echo(catalog.fetch(name))


@data.command("path")
@click.argument("name")
def data_path(name: str) -> None:
    """Print where a dataset lives (offline copy or cache), without downloading."""
    from zoo.data import catalog

    click.echo(catalog.path(name))


@zoo.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell-completion script, e.g. `eval "$(zoo completion bash)"`."""
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)(zoo, {}, "zoo", "_ZOO_COMPLETE")
    click.echo(complete.source())


def main(argv: list[str] | None = None) -> int:
    """Entry point; maps errors to exit codes and one-line messages."""
    verbose = any(a in ("-v", "--verbose") for a in (argv or sys.argv[1:]))
    try:
        zoo.main(args=argv, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zoo: aborted", err=True)
        return 1
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except ZooError as error:
        click.echo(f"zoo: error: {error}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("zoo: interrupted", err=True)
        return 130
    except Exception as error:  # the one place that turns surprises into exit code 1
        if verbose:
            traceback.print_exc()
        click.echo(f"zoo: unexpected error: {type(error).__name__}: {error} (rerun with --verbose for details)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
