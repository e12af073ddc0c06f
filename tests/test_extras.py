"""Installed as a pip user would: every app runs, or says in one line which extra to install.

Each card names its pyproject extra and the import names the app cannot run without
(`app.extra`, `app.imports`). These tests hide those packages the way the import system
itself marks a module as absent (None in `sys.modules`, which `importlib.util.find_spec`
honours) and check the one line and exit 2, before TensorFlow is imported; and they read
every app's code to check that it imports nothing beyond the core dependencies that its
card does not declare, so a new app or a new dependency cannot bring back a
ModuleNotFoundError. `.ci/wheel-smoke` does the same from a wheel installed without extras.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import zoo
from zoo import registry
from zoo.errors import BadInput

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
APPS = [spec.name for spec in registry.all_specs()]
NEEDY = [spec.name for spec in registry.all_specs() if spec.imports]  # apps that cannot run on the core alone
# Keras's other backends: imported only when KERAS_BACKEND names them, which the user installs.
BACKENDS = {"jax", "torch"}
# Features beside the apps, which check and name their own extras (export, web), not read by this scan.
OWN_EXTRAS = ("zoo.export", "zoo.gallery")


def expected_error(spec: registry.AppSpec) -> str:
    return f"{spec.name} needs the {spec.extra} extra: pip install 'keras-zoo[{spec.extra}]'"


# ------------------------------------------------------------- the cards


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installs(requirements: list[str], extra: str = "") -> set[str]:
    """The distributions `requirements` install, transitively, as read from this venv's metadata."""
    todo = [Requirement(r) for r in requirements]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate({"extra": extra})]
    found, seen = set(), set()
    while todo:
        requirement = todo.pop()
        key = (_canonical(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        found.add(key[0])
        try:
            requires = metadata.distribution(requirement.name).requires or []
        except metadata.PackageNotFoundError:  # another platform's dependency
            continue
        for text in requires:
            nested = Requirement(text)
            if nested.marker is None or any(nested.marker.evaluate({"extra": e}) for e in ("", *requirement.extras)):
                todo.append(nested)
    return found


@functools.cache
def core() -> set[str]:
    return installs(PROJECT["dependencies"])


@functools.cache
def providers() -> dict[str, set[str]]:
    """Import name -> the distributions that install it."""
    return {name: {_canonical(d) for d in dists} for name, dists in metadata.packages_distributions().items()}


@pytest.mark.parametrize("card", sorted(registry.WEIGHTS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_card_declares_its_extra_and_pyproject_defines_it(card):
    app = json.loads(card.read_text())["app"]
    assert "extra" in app and "imports" in app, f"{card.name}: declare app.extra (null: core only) and app.imports"
    extra, imports = app["extra"], app["imports"]
    if extra is None:
        assert imports == [], f"{card.name}: imports {imports} come from no extra"
        return
    assert extra in EXTRAS, f"{card.name}: extra {extra!r} is not in pyproject.toml ({', '.join(EXTRAS)})"
    assert extra in Requirement(EXTRAS["all"][0]).extras, f"keras-zoo[all] leaves out {extra!r}"
    brought = installs(EXTRAS[extra], extra) - core()
    for name in imports:
        assert providers().get(name, set()) & brought, f"{card.name}: {name!r} is not installed by the {extra} extra"


# ------------------------------------------------------------- hidden packages


def _argv(spec: registry.AppSpec, action: str) -> list[str]:
    """`zoo ACTION APP` (or `zoo APP COMMAND`) with placeholder files for its required arguments."""
    declared = spec.declared(action)
    files = ["x.png"] if declared.takes_inputs else []
    files += ["x.png" for o in declared.options if o.argument and o.required]
    return ([action, spec.name] if action in spec.actions else [spec.name, action]) + files


# Hide the packages, run each command in-process, report exit code, stderr and the heavy modules imported.
_PROBE = """
import contextlib, io, json, sys
hidden, argvs, module = json.loads(sys.argv[1])
for name in hidden:
    sys.modules[name] = None
import cli
runs = []
for argv in argvs:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    runs.append({"argv": argv, "code": code, "err": err.getvalue()})
heavy = [m for m in ("tensorflow", "keras", module) if m in sys.modules]
print(json.dumps({"runs": runs, "heavy": heavy}))
"""


@pytest.mark.parametrize("app", NEEDY)
def test_every_command_of_an_app_without_its_extra_exits_2_naming_it(app):
    spec = registry.get(app)
    argvs = [_argv(spec, action) for action in [*spec.actions, *spec.commands]]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([spec.imports, argvs, spec.module])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for run in report["runs"]:
        assert run["code"] == 2, run
        assert run["err"].strip() == f"zoo: error: {expected_error(spec)}", run
    assert report["heavy"] == [], "the check must run before the app's module (and TensorFlow) imports"


@pytest.mark.parametrize("app", NEEDY)
def test_each_missing_package_alone_names_the_extra_in_python(app, monkeypatch):
    spec = registry.get(app)
    for name in spec.imports:
        with monkeypatch.context() as hidden:
            hidden.setitem(sys.modules, name, None)
            assert spec.missing == [name]
            with pytest.raises(BadInput) as raised:
                zoo.load(app)
            assert str(raised.value) == expected_error(spec)


def test_list_and_info_say_which_apps_need_an_extra(zoo, monkeypatch):
    music = registry.get("music")
    monkeypatch.setitem(sys.modules, music.imports[0], None)
    listed = {a["name"]: a for a in json.loads(zoo("list", "--json").out)}
    assert listed["music"]["ready"] is False and listed["music"]["missing"] == [music.imports[0]]
    assert listed["music"]["extra"] == "audio"
    assert listed["upscale"]["ready"] is True and listed["upscale"]["extra"] is None
    table = zoo("list").out
    assert re.search(r"^music .* needs \[audio\] ", table, re.M) and re.search(r"^upscale .* yes ", table, re.M)
    assert "pip install 'keras-zoo[EXTRA]'" in table
    assert f"({music.imports[0]} not installed): pip install 'keras-zoo[audio]'" in zoo("info", "music").out
    assert "install:  ready" in zoo("info", "upscale").out


def test_a_card_with_imports_but_no_extra_is_refused(tmp_path):
    card = json.loads((registry.WEIGHTS_DIR / "music.json").read_text())
    card["app"]["extra"] = None
    (tmp_path / "music.json").write_text(json.dumps(card))
    with pytest.raises(registry.ZooError, match="need app.extra"):
        registry._spec_from_card(tmp_path / "music.json")


# ------------------------------------------------------------- the app's code


def _source(module: str) -> Path | None:
    path = REPO.joinpath(*module.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def _guarded(node: ast.AST, parents: dict) -> bool:
    """An import inside `try: ... except ImportError` (the code says what to install) or `if TYPE_CHECKING:`."""
    while node in parents:
        child, node = node, parents[node]
        if isinstance(node, ast.Try) and child in node.body:
            caught = [h.type for h in node.handlers]
            if any(t is None or "ImportError" in ast.unparse(t) or "Exception" in ast.unparse(t) for t in caught):
                return True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def external_imports(root: str) -> dict[str, str]:
    """{import name: the zoo module importing it} over `root` and every zoo module it imports, read
    from the source (nothing is imported); imports that are guarded or checked with find_spec left out."""
    todo, seen, found = [root], set(), {}
    while todo:
        module = todo.pop()
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        path = _source(module)
        if module in seen or path is None or module.startswith(OWN_EXTRAS):
            continue
        seen.add(module)
        text = path.read_text()
        tree = ast.parse(text)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "zoo":
                    todo.append(name)
                elif (
                    top
                    and top not in sys.stdlib_module_names
                    and top != "__future__"
                    and not _guarded(node, parents)
                    and f'find_spec("{top}")' not in text
                ):
                    found.setdefault(top, module)
    return found


@pytest.mark.parametrize("app", APPS)
def test_app_imports_nothing_beyond_the_core_that_its_card_does_not_declare(app):
    spec = registry.get(app)
    undeclared = {}
    for name, where in external_imports(spec.module).items():
        if name in spec.imports or name in BACKENDS or providers().get(name, set()) & core():
            continue
        undeclared[name] = where
    assert not undeclared, (
        f"{app} imports {undeclared} (name: module), outside the core dependencies: add them to "
        f"the card's app.imports and their extra to pyproject.toml, or guard the import with "
        f"`except ImportError` and a one-line BadInput naming the extra"
    )
