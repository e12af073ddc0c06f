"""`zoo train APP --distribute ...`: the same run on two devices or two processes as on one.

Each training runs in a subprocess (tests/distribute_job.py, a tiny upscale preset): a process's
devices are fixed when TensorFlow starts, a worker must be killable, and on this AVX-512 CPU a
native crash then fails one test instead of the whole run. The two-device runs use global batch
8 (4 per replica, learning rate 1e-3 x 2), the one-device run batch 8 at 2e-3: the same examples
in the same steps, so the per-epoch losses agree up to float summation order.
"""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import distribute, harness
from zoo.errors import BadInput

from conftest import assert_one_line_error

JOB = Path(__file__).with_name("distribute_job.py")
REPO = JOB.parent.parent
EPOCHS = 3
RTOL = 1e-4  # float32 sums in another order; a wrong batch or learning rate is off by percents


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small photos: the first is held out for validation, the others cut into patches."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name, image in (("a", data.astronaut()), ("b", data.coffee()), ("c", data.chelsea())):
        Image.fromarray(image[:160, :160]).save(folder / f"{name}.png")
    return folder


def job(*args, env=None, sleep=0.0, batch=4, rate=1e-3):
    """Popen of `zoo` with the tiny preset (BATCH per replica, learning RATE, SLEEP per step)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    env.pop("TF_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, str(JOB), str(batch), str(rate), str(sleep), *map(str, args)],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finished(process, timeout=300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def train(run_dir, photos, *flags, **kwargs) -> str:
    return finished(job("train", "upscale", "--data", photos, "--out", run_dir, *flags, **kwargs))


def losses(run_dir) -> np.ndarray:
    with open(run_dir / "log.csv") as f:
        return np.array([[float(row[k]) for k in ("loss", "val_loss")] for row in csv.DictReader(f)])


@pytest.fixture(scope="module")
def single_device(photos, tmp_path_factory):
    """The reference: one device, batch 8 at learning rate 2e-3."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    train(run_dir, photos, batch=8, rate=2e-3)
    return losses(run_dir)


def assert_like_single_device(run_dir, single_device):
    got = losses(run_dir)
    assert got.shape == (EPOCHS, 2)
    np.testing.assert_allclose(got, single_device, rtol=RTOL)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["batch_size"] == 8 and config["learning_rate"] == pytest.approx(2e-3)
    assert config["distribution"]["batch_size"] == {"per_replica": 4, "global": 8}
    assert config["distribution"]["replicas"] == 2


def test_mirrored_over_two_cpu_devices_matches_one_device(photos, single_device, tmp_path):
    output = train(tmp_path / "run", photos, "--distribute", "mirrored", "--devices", "2")
    assert "distributed mirrored: 2 replicas in 1 process(es), global batch 8 (4 per replica)" in output
    assert_like_single_device(tmp_path / "run", single_device)


def test_two_local_workers_match_one_device_and_only_the_chief_writes(photos, single_device, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    output = train(
        tmp_path / "run",
        photos,
        "--distribute",
        "multi-worker",
        "--workers",
        "2",
        "--local",
        env={"TMPDIR": str(scratch)},
    )
    assert output.count("distributed multi-worker: 2 replicas in 2 process(es)") == 1  # the chief's output only
    assert output.count("\npsnr_y:") == 1  # the parent reports the chief's result, once
    assert_like_single_device(tmp_path / "run", single_device)
    # Every writer of TensorBoard logs leaves its own events file: the worker wrote elsewhere...
    assert len(list((tmp_path / "run" / "tensorboard" / "train").glob("events.out.tfevents.*"))) == 1
    assert not list(scratch.glob("zoo-worker*"))  # ... in a scratch directory, removed when it ended


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def logged_epochs(run_dir) -> list[int]:
    path = run_dir / "log.csv"
    return [int(float(r["epoch"])) for r in csv.DictReader(path.open())] if path.exists() else []


@pytest.mark.slow  # two 2-process runs: over a minute on 2 cores
def test_kill_9_one_worker_mid_epoch_then_resume_finishes_the_planned_epochs(photos, tmp_path):
    run_dir, flags = tmp_path / "run", ("--distribute", "multi-worker", "--workers", "2", "--local")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    first = job("train", "upscale", "--data", photos, "--out", run_dir, *flags, sleep=0.4, env={"TMPDIR": str(scratch)})
    deadline = time.time() + 240
    while time.time() < deadline and not logged_epochs(run_dir):
        time.sleep(0.1)
    time.sleep(0.6)  # into the second epoch
    os.kill(children(first.pid)[1], signal.SIGKILL)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 1 and "worker 1 was killed (signal 9); stopped the others" in output, output[-2000:]
    done = len(logged_epochs(run_dir))
    assert 1 <= done < EPOCHS
    assert not list(scratch.iterdir())  # not even the killed worker's scratch directory is left

    output = train(run_dir, photos, *flags, "--resume")
    assert logged_epochs(run_dir) == list(range(EPOCHS))
    assert f"Epoch {done + 1}/{EPOCHS}" in output and "Epoch 1/" not in output


@pytest.fixture(scope="module")
def jax_single_device(photos, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("jax-single") / "run"
    train(run_dir, photos, batch=8, rate=2e-3, env={"KERAS_BACKEND": "jax"})
    return losses(run_dir)


@pytest.mark.slow  # a minute or two each
@pytest.mark.parametrize(
    "flags, env, replicas",
    [
        (
            ("--distribute", "mirrored", "--devices", "2"),
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
            "2 replicas in 1 process(es)",
        ),
        (("--distribute", "multi-worker", "--workers", "2", "--local"), {}, "2 replicas in 2 process(es)"),
    ],
    ids=["data-parallel", "two-processes"],
)
def test_jax_data_parallel_matches_one_device(photos, jax_single_device, tmp_path, flags, env, replicas):
    output = train(tmp_path / "run", photos, *flags, env={"KERAS_BACKEND": "jax", **env})
    assert f"{flags[1]}: {replicas}" in output
    assert_like_single_device(tmp_path / "run", jax_single_device)


# ------------------------------------------------------------ bad input, in this process


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (("--distribute", "ring"), "--distribute ring: choose one of none, mirrored, multi-worker"),
        (("--local",), "--local: starts a local cluster, so it needs --distribute multi-worker"),
        (("--distribute", "multi-worker", "--workers", "0", "--local"), "--workers 0: must be at least 1"),
        (("--distribute", "multi-worker", "--workers", "2"), "--workers: only with --local"),
        (("--distribute", "multi-worker", "--local"), "--local: pass --workers N"),
        (("--devices", "2"), "--devices: only with --distribute mirrored"),
    ],
)
def test_meaningless_distribution_options_are_one_line_errors(zoo, tmp_path, flags, fragment):
    assert_one_line_error(zoo("train", "upscale", "--out", tmp_path / "run", *flags), fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "tf_config, fragment",
    [
        (None, "TF_CONFIG: not set"),
        ("{not json", "TF_CONFIG: malformed"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG: malformed (KeyError"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
            "TF_CONFIG: task worker 3 is not in the cluster",
        ),
    ],
)
def test_multi_worker_without_a_good_tf_config_is_a_one_line_error(zoo, tmp_path, monkeypatch, tf_config, fragment):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    assert_one_line_error(zoo("train", "upscale", "--out", tmp_path / "run", "--distribute", "multi-worker"), fragment)


def test_rl_says_its_own_loop_does_not_distribute(zoo):
    assert_one_line_error(
        zoo("train", "rl", "--distribute", "mirrored"), "rl: trains in its own loop", "--distribute does not apply"
    )


@pytest.fixture
def two_replicas(monkeypatch):
    """Pretend, in this process, to be one of two workers (no strategy: start_run needs none)."""

    def be(index: int):
        monkeypatch.setattr(distribute, "_current", distribute.Distribution("multi-worker", 2, 2, index))

    return be


@dataclasses.dataclass
class Config:
    batch_size: int = 16
    learning_rate: float = 0.01
    epochs: int = 2


def test_start_run_scales_the_batch_and_rate_and_resumes_only_as_it_started(two_replicas, monkeypatch, tmp_path):
    two_replicas(0)
    run = harness.start_run("app", Config(), tmp_path / "run")
    assert (run.config.batch_size, run.config.learning_rate) == (32, 0.02)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["distribution"]["learning_rate"] == {"single_device": 0.01, "scaled": 0.02}
    assert harness.start_run("app", Config(), tmp_path / "run", resume=True).config.batch_size == 32  # not 64
    monkeypatch.setattr(distribute, "_current", distribute.Distribution())
    with pytest.raises(BadInput, match="trained on 2 replica.s. in 2 process.es., not 1 in 1"):
        harness.start_run("app", Config(), tmp_path / "run", resume=True)


def test_a_worker_that_is_not_the_chief_writes_a_scratch_copy(two_replicas, tmp_path):
    two_replicas(0)
    harness.start_run("app", Config(), tmp_path / "run")
    (tmp_path / "run" / "log.csv").write_text("epoch\n0\n")
    two_replicas(1)
    worker = harness.start_run("app", Config(), tmp_path / "run", resume=True)
    assert worker.path != tmp_path / "run" and worker.file("log.csv").read_text() == "epoch\n0\n"
    worker.log({"epoch": 1})
    assert (tmp_path / "run" / "log.csv").read_text() == "epoch\n0\n"  # the chief's, untouched


def test_the_chief_is_the_chief_task_or_else_worker_0():
    cluster = {"chief": ["c:1"], "worker": ["w:1", "w:2"]}
    assert distribute.tf_cluster(json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})) == (3, 0)
    assert distribute.tf_cluster(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})) == (3, 2)
    workers = {"worker": ["w:1", "w:2"]}
    assert distribute.tf_cluster(json.dumps({"cluster": workers, "task": {"type": "worker", "index": 0}})) == (2, 0)
    with pytest.raises(BadInput, match="not in the cluster"):
        distribute.tf_cluster(json.dumps({"cluster": workers, "task": {"type": "ps", "index": 0}}))


def test_each_worker_runs_the_command_without_local_and_workers():
    argv = ["zoo", "train", "upscale", "--workers", "3", "--local", "--distribute", "multi-worker", "--workers=3"]
    assert distribute.worker_command(argv) == ["zoo", "train", "upscale", "--distribute", "multi-worker"]
    with pytest.raises(Exception, match="does not ask for it"):
        distribute.worker_command(["python", "notebook.py"])


def test_free_ports_are_distinct_and_bindable_on_loopback():
    import socket

    ports = distribute.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
