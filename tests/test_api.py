"""The Python face (`zoo.load`): one predictor per app, whose records are `zoo demo --json`'s."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo import api, registry
from zoo.data import examples
from zoo.errors import BadInput

APPS = [spec.name for spec in registry.all_specs()]


def _flags(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [] if value is False else [flag, str(value)]
    return flags


@pytest.mark.parametrize("app", APPS)
def test_every_app_has_a_bundled_example(app, tmp_path):
    spec = registry.get(app)
    assert spec.examples, f"{app}: its card names no examples (app.examples)"
    for example in spec.examples:
        inputs, options = examples.write(example, tmp_path)
        assert all(p.exists() for p in inputs)
        spec.typed("demo", options)  # every option is one of the demo's, with a valid value
        assert bool(inputs) == spec.declared("demo").takes_inputs


@pytest.mark.parametrize("app", APPS)
def test_predictor_record_equals_demo_json(app, zoo, tmp_path, monkeypatch):
    """The contract that keeps the two faces from drifting: same input, same record, same files."""
    spec = registry.get(app)
    monkeypatch.chdir(tmp_path)  # both write their default file names here
    inputs, options = examples.write(spec.examples[0], tmp_path)
    printed = zoo("demo", app, *inputs, *_flags(options), "--json")
    assert printed.code == 0, printed.err
    predictor = api.load(app, **options)
    results = predictor([str(p) for p in inputs]) if predictor.takes_inputs else predictor()
    results = results if isinstance(results, list) else [results]
    for source, result in zip(inputs or [None], results):
        assert isinstance(result, api.Result)
        name = predictor.output_name(source)
        if name is not None:
            result.save(name, force=True)
    assert [r.to_dict() for r in results] == json.loads(printed.out)


def test_import_and_apps_stay_cheap():
    code = "import sys, zoo; assert zoo.apps(); assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_apps_are_the_typed_cards():
    [upscale] = zoo.apps("upscale")
    assert isinstance(upscale, registry.AppSpec)
    assert upscale.entry("x4").metrics["psnr_y"] > upscale.entry("x4").baseline["metrics"]["psnr_y"]
    assert {s.name for s in zoo.apps("vis*")} >= {"upscale", "classify"}


def test_load_checks_options_as_the_cli_does():
    with pytest.raises(BadInput, match="--scale 5: choose one of 2, 3, 4"):
        zoo.load("upscale", scale=5)
    with pytest.raises(BadInput, match="takes no --colour"):
        zoo.load("upscale", colour="red")
    with pytest.raises(BadInput, match="output is for `zoo demo`"):
        zoo.load("upscale", output="x.png")
    with pytest.raises(BadInput, match="unknown app 'upscal'; did you mean 'upscale'"):
        zoo.load("upscal")


def test_image_predictor_takes_paths_pil_images_and_arrays(tmp_path):
    upscale = zoo.load("upscale", scale=2)
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "small.png")
    from_path, from_pil, from_array = upscale([tmp_path / "small.png", Image.fromarray(rgb), rgb])
    assert from_path.input == str(tmp_path / "small.png") and from_array.input == "<array>"
    assert from_array.image.size == (60, 40) and from_array.output_size == (60, 40)
    assert np.array_equal(np.asarray(from_path.image), np.asarray(from_pil.image))
    assert np.array_equal(np.asarray(from_pil.image), np.asarray(from_array.image))
    single = upscale(rgb)  # one input, one result
    assert isinstance(single, api.Result) and single.to_dict()["output"] is None
    single.save(tmp_path / "big.png")
    assert single.output == str(tmp_path / "big.png") and Image.open(tmp_path / "big.png").size == (60, 40)


def test_options_that_choose_the_model_are_fixed_at_load():
    upscale = zoo.load("upscale", scale=3)
    assert repr(upscale) == "zoo.load('upscale', scale=3, runtime='keras')"
    with pytest.raises(BadInput, match=r"scale chooses the model; load another: zoo.load\('upscale', scale=2\)"):
        upscale(np.zeros((16, 16, 3), np.uint8), scale=2)
    assert upscale(np.zeros((16, 16, 3), np.uint8), scale=3).scale == 3  # the loaded value is accepted


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8, 3), np.float32), "expected HxW or HxWx3 uint8"),
        (np.zeros((8, 8, 5), np.uint8), "expected HxW or HxWx3 uint8"),
        (42, "int: expected a path, a PIL image or a uint8 array"),
        ("no-such-photo.jpg", "no-such-photo.jpg: no such file"),
    ],
)
def test_bad_python_inputs_are_one_line_bad_input(bad, message):
    with pytest.raises(BadInput, match=message):
        zoo.load("upscale", scale=2)(bad)
