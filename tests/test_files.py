"""Atomic outputs and input checks shared by every app."""

import os
from pathlib import Path

import pytest

from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file, check_output_path


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(RuntimeError):
        with atomic_output(target, force=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "precious"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind
    with atomic_output(target, force=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600


def test_existing_output_needs_force(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"x")
    with pytest.raises(BadInput, match="already exists.*--force"):
        check_output_path(target)
    assert check_output_path(target, force=True) == target


def unwritable_folder(tmp_path):
    """A folder this process can't write in, also as root (who ignores permission bits)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked if not os.access(locked, os.W_OK) else Path("/sys")


def test_output_folder_must_exist_and_be_writable(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.png")
    with pytest.raises(BadInput, match="writ"):
        with atomic_output(unwritable_folder(tmp_path) / "out.png") as tmp:
            tmp.write_text("never")


def test_input_checks(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        check_input_file(tmp_path / "missing.jpg")
    with pytest.raises(BadInput, match="is a directory"):
        check_input_file(tmp_path)
