"""Safe file handling shared by every app: input checks and atomic outputs.

Outputs are written to a temporary file beside the target and renamed into
place only when complete, so a failed or interrupted run never leaves a
half-written file, and an existing file is replaced only with `force=True`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import BadInput


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_input_file(path: Path) -> Path:
    """Return `path` if it is a readable file, else raise a one-line BadInput."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: permission denied")
    return path


def check_output_path(path: Path, force: bool = False) -> Path:
    """Fail early, before any work, if `path` can't or mustn't be written."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, expected a file name")
    if path.exists() and not force:
        raise BadInput(f"{path}: already exists (pass --force to overwrite)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{path}: folder {parent} is not writable")
    return path


def output_for(source: Path, output: Path | None, default_name: str, many: bool) -> Path:
    """Where a demo writes its result for `source`.

    No -o: `default_name` in the current folder. One input: -o is the file.
    Several inputs: -o must be an existing folder, and holds `default_name`s.
    """
    if output is None:
        return Path(default_name)
    if many:
        if not Path(output).is_dir():
            raise BadInput(f"{output}: with several inputs, -o must be an existing folder")
        return Path(output) / default_name
    return Path(output)


@contextlib.contextmanager
def atomic_output(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto `path` on success only.

    The temporary file keeps the target's suffix, so writers that pick a
    format from the extension (Pillow, Keras, matplotlib) behave the same.
    """
    path = check_output_path(path, force)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as error:  # read-only or special file systems, which os.access can't foresee for root
        raise BadInput(f"{path}: cannot write in folder {path.parent} ({error.strerror})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str, force: bool = True) -> None:
    with atomic_output(path, force) as tmp:
        tmp.write_text(text)
