"""The app contract, for every registered app and every shipped weights entry (after torchvision's
`test_schema_meta_validation`): the card's schema, its metrics, the files it names, and the app
functions it describes."""

import inspect
import json
import re
from pathlib import Path

import pytest

from zoo import api, harness, registry
from zoo.errors import BadInput, ZooError

from conftest import assert_one_line_error

REPO = Path(__file__).resolve().parent.parent
APP_KEYS = {
    "name",
    "kind",
    "summary",
    "module",
    "datasets",
    "metrics",
    "model_names",
    "presets",
    "default_weights",
    "actions",
    "commands",
    "training",
    "examples",
    "extra",
    "imports",
}
SHARED = {
    "train": {"preset", "epochs", "data", "out", "resume", "seed", *registry.DISTRIBUTION},
    "evaluate": {"weights", "data", "json", "output", "force"},
    "demo": {"inputs", "weights", "output", "force", "json"},
}
SPECS = registry.all_specs()
ENTRIES = [(spec, entry) for spec in SPECS for entry in spec.weights]


def _id(pair):
    return f"{pair[0].name}/{pair[1].tag}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_app_section_has_the_required_and_only_permitted_keys(spec):
    app = json.loads(spec.card_path.read_text())["app"]
    assert set(app) <= APP_KEYS, set(app) - APP_KEYS
    assert APP_KEYS - {"datasets", "default_weights", "commands", "training"} <= set(app)
    assert spec.training in ("harness", "own-loop")
    assert spec.model_names and spec.metrics and spec.presets
    assert spec.default_weights in spec.tags or not spec.weights


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_option_is_typed_and_its_default_passes_its_own_checks(spec):
    for action, declared in spec.actions.items():
        assert action in registry.ACTIONS
        assert set(declared.shared) <= SHARED[action], set(declared.shared) - SHARED[action]
        for option in declared.options:
            assert option.type in registry.OPTION_TYPES
            assert bool(option.choices) == (option.type == "choice"), option.name
            assert option.name not in SHARED[action], f"{option.name} shadows a shared option"
            assert option.convert(option.default) == option.default, (option.name, option.default)
            if option.selects_weights:
                assert all(option.name in e.extra for e in spec.weights), f"{option.name} selects no entry"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_app_functions_take_exactly_what_the_card_declares(spec):
    """Keyword-only and without defaults: the card is the one place defaults live. `demo` is the
    app's Predictor (zoo.api); an app's own command is a module function or a Predictor method."""
    module = registry.load_module(spec)
    assert issubclass(module.Predictor, api.Predictor) and not hasattr(module, "demo")
    for action, declared in {**spec.actions, **spec.commands}.items():
        if action == "demo":
            continue
        name = action.replace("-", "_")
        function = getattr(module, name, None)
        method = function is None
        parameters = dict(inspect.signature(function or getattr(module.Predictor, name)).parameters)
        parameters.pop("self", None)
        expected = (
            {o.name for o in spec.parameters(action)}
            - set(registry.DISTRIBUTION)  # the harness's
            - ({"weights"} if method else set())  # a predictor's weights are loaded already
            | ({"inputs"} if declared.takes_inputs else set())
        )
        assert set(parameters) == expected, (action, set(parameters) ^ expected)
        if method:  # Python API: positional inputs and defaults are fine; the CLI passes every typed value
            continue
        for parameter in parameters.values():
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (action, parameter.name)
            assert parameter.default is inspect.Parameter.empty, (action, parameter.name)


@pytest.mark.parametrize("pair", ENTRIES, ids=_id)
def test_weights_entry_holds_the_declared_metrics_beside_a_baseline(pair):
    spec, entry = pair
    assert set(spec.metrics) <= set(entry.metrics), set(spec.metrics) - set(entry.metrics)
    assert entry.baseline.get("name") and set(entry.baseline.get("metrics", {})) <= set(entry.metrics)
    assert entry.command.startswith(("zoo ", "KERAS_BACKEND=")) and entry.evaluate_command.startswith("zoo ")
    assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)


@pytest.mark.parametrize("pair", ENTRIES, ids=_id)
def test_weights_file_matches_its_entry_and_loads_in_safe_mode(pair):
    spec, entry = pair
    if entry.built_by and not entry.path.exists():  # converted on first use, by the app's own command
        registry.call(spec.name, entry.built_by)
    path = registry.resolve_weights(spec.name, entry.tag)  # the sha256 against the card's
    model = harness.load_model(path, app=spec.name)  # safe_mode=True; a built file's weights against the card's
    if entry.built_by:
        assert harness.weights_sha256(model) == entry.sha256
    assert spec.owns_model(model.name), model.name
    assert model.count_params() == entry.params


def test_nothing_outside_the_registry_locates_shipped_weights():
    sources = [REPO / "cli.py", *(REPO / "zoo").rglob("*.py")]
    offenders = [
        p.relative_to(REPO)
        for p in sources
        if p.name != "registry.py"
        and re.search(r"WEIGHTS_DIR|weights_path|/\s*[\"']weights[\"']|[\"']weights/", p.read_text())
    ]
    assert offenders == []


# ------------------------------------------------------------------ resolver


def _card(folder: Path, name: str, **weights_fields) -> Path:
    entry = {key: "x" for key in registry.WEIGHTS_FIELDS} | {"params": 1, "metrics": {}, "baseline": {}}
    card = {
        "app": {
            "name": name,
            "kind": "vision",
            "summary": "s",
            "module": "m",
            "metrics": [],
            "model_names": [name],
            "actions": {},
        },
        "weights": [entry | {"tag": "t", "file": f"{name}.keras"} | weights_fields],
    }
    path = folder / f"{name}-{len(list(folder.iterdir()))}.json"
    path.write_text(json.dumps(card))
    return path


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    registry.all_specs.cache_clear()
    yield tmp_path
    registry.all_specs.cache_clear()


def test_two_cards_claiming_one_app_are_an_error(weights_dir):
    _card(weights_dir, "twin"), _card(weights_dir, "twin")
    with pytest.raises(ZooError, match="both define app 'twin'"):
        registry.all_specs()


def test_an_entry_with_unknown_fields_must_put_them_under_extra(weights_dir):
    _card(weights_dir, "loose", note="free text")
    with pytest.raises(ZooError, match="unknown note.*under 'extra'"):
        registry.all_specs()


@pytest.mark.parametrize("spec", [s for s in SPECS if s.published], ids=lambda s: s.name)
def test_published_weights_name_an_architecture_the_app_downloads_and_say_whose_figures(spec):
    from zoo.vision import backbones

    tags = [p.tag for p in spec.published] + [p.default_for for p in spec.published if p.default_for]
    assert len(set(tags)) == len(tags) and not set(tags) & set(spec.tags)
    for published in spec.published:
        assert published.architecture in backbones.APPLICATIONS
        assert published.metrics and "published by" in published.source and published.licence
        assert spec.published_entry(published.tag) is published


def test_published_weights_with_unknown_or_missing_fields_are_an_error(weights_dir):
    path = _card(weights_dir, "borrowed")
    card = json.loads(path.read_text())
    card["published_weights"] = [{"tag": "p", "architecture": "a", "metrics": {}, "licence": "l", "url": "u"}]
    path.write_text(json.dumps(card))
    with pytest.raises(ZooError, match="'p': missing source; unknown url"):
        registry.all_specs()


def test_shipped_weights_that_are_missing_or_altered_are_refused(weights_dir):
    _card(weights_dir, "fragile", sha256="0" * 64)
    with pytest.raises(BadInput, match="are missing"):
        registry.resolve_weights("fragile")
    (weights_dir / "fragile.keras").write_bytes(b"not the shipped bytes")
    with pytest.raises(BadInput, match="sha256 differs"):
        registry.resolve_weights("fragile", "t")


def test_weights_built_on_first_use_say_which_command_builds_them(weights_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    _card(weights_dir, "converted", extra={"built_by": "import-it"})
    with pytest.raises(registry.NotBuilt, match="not built yet; `zoo converted import-it` builds it") as missing:
        registry.resolve_weights("converted")
    assert missing.value.path == tmp_path / "cache" / "models" / "converted.keras"
    missing.value.path.parent.mkdir(parents=True)
    missing.value.path.write_bytes(b"checked by its weights when it loads")
    assert registry.resolve_weights("converted") == missing.value.path


def test_weights_may_be_a_run_directory_a_file_or_a_tag(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(BadInput, match="no best.keras"):
        registry.resolve_weights("upscale", tmp_path / "run")
    (tmp_path / "run" / "best.keras").write_bytes(b"")
    assert registry.resolve_weights("upscale", tmp_path / "run").name == "best.keras"
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(BadInput, match="expected a .keras file"):
        registry.resolve_weights("upscale", tmp_path / "w.h5")
    assert registry.resolve_weights("upscale", "x3").name == "upscale_x3.keras"


def test_selectors_pick_the_entry_and_the_default_comes_first():
    assert registry.resolve_weights("upscale").name == "upscale_x2.keras"
    assert registry.resolve_weights("upscale", scale=4).name == "upscale_x4.keras"
    assert registry.resolve_weights("rl", env="CartPole-v1", algo="dqn").name == "rl_cartpole-dqn.keras"
    with pytest.raises(BadInput, match="no shipped weights for env=Acrobot-v1"):
        registry.resolve_weights("rl", env="Acrobot-v1")


def test_call_fills_the_card_defaults_and_checks_every_value():
    with pytest.raises(BadInput, match="--beam 0: must be at least 1"):
        registry.call("captioning", "evaluate", beam=0)
    with pytest.raises(BadInput, match="--scale 5: choose one of 2, 3, 4"):
        registry.call("upscale", "train", scale="5")
    with pytest.raises(BadInput, match="takes no --epochs"):
        registry.call("rl", "train", epochs=3)


# ------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "upscale", "--epochs", "0"], ["--epochs 0: must be at least 1"]),
        (["train", "upscale", "--scale", "5"], ["--scale 5: choose one of 2, 3, 4"]),
        (["evaluate", "rl", "--episodes", "many"], ["--episodes many: not an integer"]),
        (["train", "rl", "--epochs", "3"], ["No such option '--epochs'", "zoo train rl --help"]),
        (["demo", "upscale"], ["Missing argument", "zoo demo upscale --help"]),
    ],
)
def test_every_bad_value_gets_the_same_one_line_error(zoo, args, fragments):
    result = zoo(*args)
    assert_one_line_error(result, *fragments)
    assert result.err.startswith("zoo: error: ")


def test_a_file_of_another_app_is_named_as_such(zoo, tmp_path):
    other = registry.resolve_weights("upscale", "x2")
    assert_one_line_error(
        zoo("evaluate", "classify", "--weights", other), "upscale_x2.keras: an upscale model, not a classify one"
    )


def test_list_has_a_header_and_sorts_by_kind_then_name(zoo):
    lines = zoo("list").out.splitlines()
    assert lines[0].split()[:5] == ["APP", "KIND", "WEIGHTS", "READY", "SUMMARY"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows == sorted(rows, key=lambda r: (r[1], r[0])) and len(rows) == len(SPECS)


def test_info_shows_published_weights_as_published_not_measured(zoo):
    out = zoo("info", "classify").out
    assert "weights imagenet-efficientnetv2b0 (also --weights imagenet): downloaded on first use" in out
    assert "published by Keras" in out and "imagenet_top1: 0.787" in out


def test_info_shows_every_metric_beside_its_baseline_and_the_default(zoo):
    out = zoo("info", "music").out
    assert "music.keras (ok, default," in out and "music_folk.keras (ok," in out
    assert "copy_check_longest_shared_run" in out and "perplexity: 2.882   (baseline: 4.195)" in out
    assert "zoo demo music: --weights --output" in out
