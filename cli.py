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

import json
import sys
import traceback
import warnings
from pathlib import Path

import click

from zoo import __version__, quiet, registry
from zoo.errors import BadInput, ZooError, ZooWarning

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _quiet_import():
    """Silence TensorFlow's start-up on file descriptor 2 while an app module is imported, unless --verbose."""
    return quiet.silenced()


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


class AppCommands(click.Group):
    """`zoo <app> <command>`: the commands an app's card declares beyond train, evaluate and demo."""

    def __init__(self, spec: registry.AppSpec):
        super().__init__(name=spec.name, context_settings=CONTEXT, help=f"{spec.name}'s own commands: {spec.summary}")
        self.spec = spec

    def list_commands(self, ctx):
        return list(self.spec.commands)

    def get_command(self, ctx, name):
        return _app_command(self.spec, name) if name in self.spec.commands else None


class ZooGroup(click.Group):
    """The fixed commands, then one group per app that declares commands of its own."""

    def list_commands(self, ctx):
        return super().list_commands(ctx) + [s.name for s in registry.all_specs() if s.commands]

    def get_command(self, ctx, name):
        found = super().get_command(ctx, name)
        if found is None:
            spec = next((s for s in registry.all_specs() if s.name == name and s.commands), None)
            found = AppCommands(spec) if spec else None
        return found


# ---------------------------------------------------------------- list / info


@click.group(cls=ZooGroup, context_settings=CONTEXT)
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
    quiet.hide_tensorflow_logs(not verbose)


@zoo.command("list")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_apps(pattern: str, as_json: bool) -> None:
    """List apps by kind and name; PATTERN filters names or kinds with wildcards (e.g. 'vis*')."""
    specs = registry.find(pattern)
    if as_json:
        _echo_json(
            [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "summary": s.summary,
                    "weights": s.tags,
                    "default_weights": s.default_weights,
                    "extra": s.extra,
                    "ready": not s.missing,
                    "missing": s.missing,
                }
                for s in specs
            ]
        )
        return
    if not specs:
        raise BadInput(f"no app matches {pattern!r}")
    rows = [("APP", "KIND", "WEIGHTS", "READY", "SUMMARY")] + [
        (s.name, s.kind, ",".join(s.tags) or "-", f"needs [{s.extra}]" if s.missing else "yes", s.summary)
        for s in specs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    if any(s.missing for s in specs):
        click.echo("\nneeds [EXTRA]: pip install 'keras-zoo[EXTRA]' (or 'keras-zoo[all]' for every app)")


def _weights_lines(spec: registry.AppSpec, entry: registry.WeightsEntry) -> list[str]:
    if entry.built_by:  # checked by its weights' sha256 when it loads
        status = "built" if entry.path.exists() else f"built on first use by `zoo {spec.name} {entry.built_by}`"
    else:
        status = (
            "missing"
            if not entry.path.exists()
            else ("ok" if registry.sha256_of(entry.path) == entry.sha256 else "SHA256 MISMATCH")
        )
    default = ", default" if entry.tag == (spec.default_weights or spec.tags[0]) else ""
    lines = [
        f"  weights {entry.tag}: {entry.file} ({status}{default}, {entry.params:,} params, sha256 {entry.sha256[:12]})"
    ]
    lines += [
        f"    {key}: {getattr(entry, key)}"
        for key in ("data", "split", "command", "evaluate_command", "hardware", "wall_time")
    ]
    baseline = entry.baseline.get("metrics", {})
    lines.append(f"    metrics (beside {entry.baseline.get('name', 'no baseline')}):")
    for metric, value in entry.metrics.items():
        beside = f"   (baseline: {_compact(baseline[metric])})" if metric in baseline else ""
        lines.append(f"      {metric}: {_compact(value)}{beside}")
    lines += [f"    {key}: {_compact(value)}" for key, value in entry.extra.items()]
    return lines


def _compact(value) -> str:
    return json.dumps(value, separators=(", ", ": ")) if isinstance(value, (dict, list)) else str(value)


def _install_line(spec: registry.AppSpec) -> str:
    """Whether the app's packages are installed, and the pip command when they are not."""
    pip = f"pip install 'keras-zoo[{spec.extra}]'"
    if spec.missing:
        return f"needs the {spec.extra} extra ({', '.join(spec.missing)} not installed): {pip}"
    if spec.imports:
        return f"ready (the {spec.extra} extra: {', '.join(spec.imports)})"
    return f"ready; the {spec.extra} extra is optional: {pip}" if spec.extra else "ready (core dependencies only)"


def _card_lines(spec: registry.AppSpec) -> list[str]:
    lines = [
        f"{spec.name} ({spec.kind}): {spec.summary}",
        f"  module:   {spec.module}",
        f"  datasets: {', '.join(spec.datasets) or '-'}",
        f"  metrics:  {', '.join(spec.metrics)}",
        f"  presets:  {', '.join(spec.presets)}",
        f"  install:  {_install_line(spec)}",
    ]
    for action, declared in spec.actions.items():
        flags = [o.flag for o in spec.parameters(action)] + (["INPUT..."] if declared.takes_inputs else [])
        lines.append(f"  zoo {action} {spec.name}: {' '.join(flags)}")
    for entry in spec.weights:
        lines += _weights_lines(spec, entry)
    if not spec.weights:
        lines.append("  weights: none shipped yet")
    for published in spec.published:
        alias = f" (also --weights {published.default_for})" if published.default_for else ""
        lines.append(f"  weights {published.tag}{alias}: downloaded on first use, {published.architecture}")
        lines += [f"    source: {published.source}", f"    licence: {published.licence}", "    metrics (published):"]
        lines += [f"      {metric}: {_compact(value)}" for metric, value in published.metrics.items()]
    return lines


@zoo.command()
@click.argument("app")
@click.option("--json", "as_json", is_flag=True, help="Print the whole model card as JSON.")
def info(app: str, as_json: bool) -> None:
    """Show an app's whole model card: data, every metric beside its baseline, recipe, default weights."""
    spec = registry.get(app)
    if as_json:
        _echo_json(json.loads(spec.card_path.read_text()))
    else:
        click.echo("\n".join(_card_lines(spec)))


# ------------------------------------------------- train / evaluate / demo


def _click_option(option: registry.Option) -> click.Parameter:
    """A Click parameter that only collects the text; registry.call types and checks it, in one place."""
    if option.argument:
        return click.Argument([option.name], required=option.required, metavar=option.name.upper())
    flags = [option.flag] + ([option.short] if option.short else []) + [option.name]
    if option.type == "flag":
        return click.Option(flags, is_flag=True, default=bool(option.default), help=option.help)
    metavar = option.metavar or ("|".join(map(str, option.choices)) if option.choices else option.type.upper())
    return click.Option(flags, default=None, metavar=metavar, help=option.describe())


def _app_params(action: str, spec: registry.AppSpec) -> list[click.Parameter]:
    declared = spec.declared(action)
    inputs = (
        [click.Argument(["inputs"], nargs=-1, required=not declared.inputs_optional, metavar="INPUT...")]
        if declared.takes_inputs
        else []
    )
    as_json = (
        [click.Option(["--json", "as_json"], is_flag=True, help="Machine-readable output.")]
        if "json" in declared.shared
        else []
    )
    hidden = _undeclared_distribution(action, spec)
    return inputs + [_click_option(o) for o in spec.parameters(action)] + as_json + hidden


def _undeclared_distribution(action: str, spec: registry.AppSpec) -> list[click.Parameter]:
    """Hidden --distribute & co. for a train command without them (RL's own loops), so that
    registry.call can say why they do not apply rather than Click's bare "no such option"."""
    if action != "train" or "distribute" in spec.declared(action).shared:
        return []
    return [
        click.Option([o.flag, o.name], is_flag=o.type == "flag", default=None, hidden=True)
        for o in map(registry.SHARED_OPTIONS.get, registry.DISTRIBUTION)
    ]


def _echo_mapping(mapping: dict, indent: int = 0) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict):
            click.echo(f"{' ' * indent}{key}:")
            _echo_mapping(value, indent + 2)
        else:
            click.echo(f"{' ' * indent}{key}: {value}")


def _print_result(result, as_json: bool) -> None:
    if as_json:
        _echo_json(result)
    elif isinstance(result, list):  # one record per input, each with the line to print
        for item in result:
            click.echo(item.get("text") or "  ".join(f"{k}: {v}" for k, v in item.items()))
    elif "text" in result:  # a predictor method's record (zoo faces verify)
        click.echo(result["text"])
    else:
        _echo_mapping(result)


def _app_command(spec: registry.AppSpec, action: str) -> click.Command:
    def run(**values):
        as_json = values.pop("as_json", False)
        given = {name: value for name, value in values.items() if value is not None}  # the rest: card defaults
        with _quiet_import():  # only the import: the app's own progress output must show
            registry.load_module(spec)
        _print_result(registry.call(spec.name, action, **given), as_json)

    declared = spec.declared(action)
    name = action if action in spec.commands else spec.name
    return click.Command(
        name,
        callback=run,
        context_settings=CONTEXT,
        params=_app_params(action, spec),
        help=declared.help or f"{action.capitalize()} {spec.name}: {spec.summary}",
    )


class AppGroup(click.Group):
    """One lazily built subcommand per app, from the registry's data."""

    def __init__(self, action: str, **kwargs):
        super().__init__(name=action, context_settings=CONTEXT, **kwargs)
        self.action = action

    def list_commands(self, ctx):
        return [s.name for s in registry.all_specs() if self.action in s.actions]

    def get_command(self, ctx, name):
        return _app_command(registry.get(name), self.action)


zoo.add_command(AppGroup("train", help="Train an app; the run directory keeps logs, curves and checkpoints."))
zoo.add_command(AppGroup("evaluate", help="Evaluate weights (shipped by default) beside the app's baseline."))
zoo.add_command(AppGroup("demo", help="Run an app on your input files."))


# ------------------------------------------------- explain / visualize


def _explainer(app: str, weights: Path | None, reference: Path | None = None):
    """zoo.vision.explain (Keras) and the app's Explainable, imported only when the command runs."""
    spec = registry.get(app)
    with _quiet_import():
        from zoo.vision import explain

        return explain, explain.load(spec.name, weights, reference)


@zoo.command()
@click.argument("app")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The saliency overlay (PNG).")
@click.option(
    "--method",
    type=click.Choice(["gradcam", "integrated-gradients"]),
    default="gradcam",
    show_default=True,
    help="Grad-CAM (class-specific, coarse) or integrated gradients (pixel-sharp).",
)
@click.option("--target", help="Class to explain, by name or index (default: the top prediction).")
@click.option("--layer", help="Convolutional layer for Grad-CAM (default: the last one).")
@click.option("--weights", type=click.Path(path_type=Path), help="A .keras file or a run directory.")
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    help="For apps that score a match (faces): the photo IMAGE is matched against.",
)
@click.option("--force", is_flag=True, help="Overwrite the output.")
def explain(
    app: str,
    image: Path,
    output: Path,
    method: str,
    target: str | None,
    layer: str | None,
    weights: Path | None,
    reference: Path | None,
    force: bool,
) -> None:
    """Which pixels made APP's model decide: a saliency map over IMAGE as the model saw it."""
    from zoo.files import check_input_file, check_output_path

    check_input_file(image)
    check_output_path(output, force)  # both before the model loads
    tools, explainable = _explainer(app, weights, reference)
    result = tools.explained(explainable, image, method, target, layer)
    result.save(output, force)
    click.echo(result.text)


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
def visualize(
    app: str,
    layer: str,
    channel: int | None,
    channels: int | None,
    output: Path,
    steps: int,
    seed: int,
    weights: Path | None,
    force: bool,
) -> None:
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


# ------------------------------------------------------------------ export


@zoo.command("export")
@click.argument("app")
@click.option(
    "--format",
    "export_format",
    required=True,
    metavar="saved_model|onnx|litert",
    help="SavedModel (TF Serving), ONNX (ONNX Runtime) or LiteRT (phones, .tflite).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="The artefact (a folder for a SavedModel or several graphs); PATH.json goes beside it.",
)
@click.option("--weights", help="A .keras file, a run directory or a shipped tag (default: the card's).")
@click.option(
    "--quantize",
    metavar="float16|int8|int16x8",
    help="LiteRT only: float16 weights, or int8 weights with 8- or 16-bit activations (calibrated).",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help="With --quantize int8 or int16x8: a folder of the app's inputs (default: its own training data).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing artefact.")
@click.option("--json", "as_json", is_flag=True, help="Print PATH.json's record.")
def export_app(
    app: str,
    export_format: str,
    output: Path,
    weights: str | None,
    quantize: str | None,
    calibration: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Export APP's model, with its metrics re-measured on the artefact by the artefact's own runtime."""
    from zoo import api, export

    registry.get(app)
    export.check_request(app, export_format, quantize, output, force)  # before the model loads
    with _quiet_import():
        record = api.load(app, weights).export(export_format, output, quantize, calibration, force)
    if as_json:
        _echo_json(record)
        return
    for name, graph in record["graphs"].items():
        measured = graph["metrics"]
        beside = ", ".join(f"{k} {v} (keras {measured['keras'][k]})" for k, v in measured.get("exported", {}).items())
        click.echo(f"{name}: {graph['bytes'] / 1e6:.2f} MB{'; ' + beside if beside else ''}")
    click.echo(f"{record['output']} ({record['runtime']}), record in {record['sidecar']}")


# ------------------------------------------------------------ gallery / serve


@zoo.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The site's folder.")
@click.option("--force", is_flag=True, help="Replace an existing folder that is not a previous gallery.")
@click.option(
    "--notebooks",
    type=click.Path(path_type=Path),
    help="Folder of executed notebooks to show (default: out/notebooks when it exists; `make notebooks` makes it).",
)
def gallery(output: Path, force: bool, notebooks: Path | None) -> None:
    """Build a static site of every app: its card, fresh demo outputs (cached), its source and notebook."""
    from zoo.gallery import needs_web

    needs_web("jinja2", "pygments")
    from zoo.gallery import build

    if notebooks is None and build.NOTEBOOKS.is_dir():
        notebooks = build.NOTEBOOKS
    with _quiet_import():  # the demos import TensorFlow, unless every output is cached
        built = build.build(output, force, notebooks)
    fresh = ", ".join(built["demos_run"]) or "none, all cached"
    shown = f"{len(built['notebooks'])} of {len(built['notebooks']) + len(built['notebooks_not_executed'])}"
    click.echo(
        f"{built['output']}/index.html: {len(built['apps'])} apps in {built['seconds']:.1f} s (demos run: {fresh}; "
        f"notebooks: {shown} executed{', make notebooks executes them' if built['notebooks_not_executed'] else ''})"
    )


@zoo.command()
@click.argument("app", required=False)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port on 127.0.0.1.")
def serve(app: str | None, port: int) -> None:
    """A local interactive demo of APP (default: every app with a tab) in the browser; needs keras-zoo[web]."""
    from zoo.gallery import serve as server

    server.serve(app, port)


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


def _show_warnings(verbose: bool) -> None:
    """The zoo's warnings as one line on stderr; other libraries' only with --verbose, in Python's format."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ZooWarning):
            click.echo(f"zoo: warning: {message}", err=True)
        elif verbose:
            click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Entry point; maps errors to exit codes and one-line messages."""
    verbose = any(a in ("-v", "--verbose") for a in (argv or sys.argv[1:]))
    _show_warnings(verbose)
    try:
        zoo.main(args=argv, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zoo: aborted", err=True)
        return 1
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.UsageError as error:  # Click's own checks, in the same one-line format as the apps'
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
        click.echo(f"zoo: error: {error.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as error:
        click.echo(f"zoo: error: {error.format_message()}", err=True)
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
        click.echo(
            f"zoo: unexpected error: {type(error).__name__}: {error} (rerun with --verbose for details)", err=True
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
