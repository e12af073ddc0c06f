"""The suite's own configuration turns a native crash into one failing test with a name."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CRASHING_SUITE = """
import os

def test_before():
    assert True

def test_native_crash():
    os.abort()  # what a segfaulting kernel does to the process

def test_after():
    assert True
"""


def test_a_crashing_test_fails_alone_and_the_rest_still_run(tmp_path):
    (tmp_path / "test_crash.py").write_text(CRASHING_SUITE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_crash.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "FAILED test_crash.py::test_native_crash" in done.stdout, done.stdout[-2000:]
    assert "1 failed, 2 passed" in done.stdout, done.stdout[-2000:]
