"""The training harness: run directories, atomic checkpoints, and resume after kill -9."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo import harness
from zoo.errors import BadInput

JOB = Path(__file__).with_name("harness_job.py")
REPO = JOB.parent.parent


def job(run_dir, *flags):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, str(JOB), str(run_dir), *flags],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def logged_epochs(run_dir):
    with open(run_dir / "log.csv") as f:
        return [int(float(row["epoch"])) for row in csv.DictReader(f)]


def test_kill_9_mid_epoch_then_resume_finishes_the_planned_epochs(tmp_path):
    run_dir = tmp_path / "run"
    first = job(run_dir)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "log.csv").exists() and len(logged_epochs(run_dir)) >= 2):
        time.sleep(0.1)
    time.sleep(0.4)  # into the third epoch
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before_kill = len(logged_epochs(run_dir))
    assert 2 <= done_before_kill < 6

    second = job(run_dir, "--resume")
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert logged_epochs(run_dir) == list(range(6))  # each epoch once, none lost but the one in flight
    assert f"Epoch {done_before_kill + 1}/6" in output and "Epoch 1/6" not in output
    for name in ("best.keras", "last.keras", "curves.png", "config.json", "state.json"):
        assert (run_dir / name).exists(), name
    best, shipped = harness.load_model(run_dir / "best.keras"), harness.load_model(run_dir / "model.keras")
    for a, b in zip(best.get_weights(), shipped.get_weights(), strict=True):
        assert (a == b).all()
    # model.keras is what zoo/weights ships: the same weights without Adam's two moments per variable
    assert (run_dir / "model.keras").stat().st_size < (run_dir / "best.keras").stat().st_size
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_new_run_refuses_a_used_directory(tmp_path):
    @__import__("dataclasses").dataclass
    class Config:
        epochs: int = 1

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "log.csv").write_text("epoch\n0\n")
    with pytest.raises(BadInput, match="--resume"):
        harness.start_run("app", Config(), tmp_path / "used")
    with pytest.raises(BadInput, match="not a run directory"):
        harness.start_run("app", Config(), tmp_path / "used", resume=True)
    run = harness.start_run("app", Config(), tmp_path / "fresh", epochs=3)
    assert run.config.epochs == 3 and (tmp_path / "fresh" / "config.json").exists()


def test_resume_keeps_the_saved_run_name_and_refuses_unknown_settings(tmp_path):
    import dataclasses
    import json

    @dataclasses.dataclass
    class Config:
        scale: int = 2
        epochs: int = 1

    harness.start_run("upscale-x4", Config(scale=4), tmp_path / "run")
    resumed = harness.start_run("upscale-x2", Config(), tmp_path / "run", resume=True, epochs=2)
    assert resumed.config == Config(scale=4, epochs=2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["app"] == "upscale-x4"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**saved, "gamma": 0.99}))  # an older version's field
    with pytest.raises(BadInput, match="gamma"):
        harness.start_run("upscale-x4", Config(), tmp_path / "run", resume=True)


def test_corrupt_weights_file_is_a_one_line_error(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BadInput, match="not a loadable .keras model"):
        harness.load_model(tmp_path / "broken.keras")
