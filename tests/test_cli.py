"""The CLI's contract: fast listing, model cards, exit codes, no TensorFlow where it isn't needed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error

REPO = Path(__file__).resolve().parent.parent


def test_list_shows_apps_with_kind_and_weights(zoo):
    result = zoo("list")
    assert result.code == 0
    line = next(row for row in result.out.splitlines() if row.startswith("upscale"))
    assert "vision" in line and "x2,x3,x4" in line


def test_list_json_and_wildcard_filter(zoo):
    apps = json.loads(zoo("list", "--json").out)
    assert {"name", "kind", "summary", "weights"} <= set(apps[0])
    vision = json.loads(zoo("list", "vis*", "--json").out)
    assert vision and all(a["kind"] == "vision" or a["name"].startswith("vis") for a in vision)


def test_list_pattern_matching_nothing_is_an_error(zoo):
    assert_one_line_error(zoo("list", "nothing-like-this*"), "nothing-like-this*")


def test_info_shows_card_with_baseline_and_verified_sha(zoo):
    result = zoo("info", "upscale")
    assert result.code == 0
    assert "upscale_x2.keras (ok," in result.out
    assert "bicubic" in result.out and "zoo evaluate upscale --scale 2" in result.out


def test_info_json_is_the_card(zoo):
    card = json.loads(zoo("info", "upscale", "--json").out)
    assert card["app"]["module"] == "zoo.vision.upscale"
    assert [w["tag"] for w in card["weights"]] == ["x2", "x3", "x4"]


def test_unknown_app_suggests_the_closest(zoo):
    assert_one_line_error(zoo("info", "upscal"), "unknown app 'upscal'", "upscale")
    assert_one_line_error(zoo("demo", "upscal", "x.jpg"), "unknown app")


def test_version(zoo):
    from zoo import __version__

    result = zoo("--version")
    assert result.code == 0 and __version__ in result.out


def test_bad_option_value_is_a_usage_error(zoo):
    result = zoo("demo", "upscale", "x.jpg", "--scale", "5")
    assert result.code == 2 and "Traceback" not in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["info", "upscale"],
        ["demo", "upscale", "--help"],
        ["train", "upscale", "--help"],
        ["data", "list"],
    ],
)
def test_light_commands_never_import_tensorflow_or_keras(args):
    probe = (
        "import sys, cli; code = cli.main(sys.argv[1:]); "
        "heavy = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_completion_script(zoo):
    result = zoo("completion", "bash")
    assert result.code == 0 and "_ZOO_COMPLETE" in result.out


def test_data_list_and_path(zoo):
    rows = json.loads(zoo("data", "list", "--json").out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["sample-photos"]["status"] == "offline"
    assert by_name["div2k-train"]["sha256"].startswith("9d0b9c46")
    assert zoo("data", "path", "div2k-valid").out.strip().endswith("DIV2K_valid_HR.zip")
    assert_one_line_error(zoo("data", "fetch", "no-such-set"), "unknown dataset")


def test_console_script_entry_point_exit_code():
    done = subprocess.run([sys.executable, "cli.py", "info", "nope"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
