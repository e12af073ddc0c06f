"""Hash-checked, cached downloads with a progress bar; the only downloader apps use.

A file is fetched into the cache (`$ZOO_CACHE`, default ~/.cache/keras-zoo)
under a `.part` name, its sha256 checked, and only then renamed into place; a
wrong checksum is refused and the download tried again. Any failure raises
DownloadError saying where to put the file by hand and what can stand in
offline. No Keras import: `zoo data fetch` stays light. Datasets, pretrained
ImageNet models (classify's `--weights imagenet`, `--backbone`) and any later
weights that live outside the repository come through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import click

from zoo.errors import ZooError, warn

CHUNK = 1 << 20


class DownloadError(ZooError):
    """A download that failed or whose content does not match its sha256."""


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "keras-zoo")).expanduser()


def _hasher(checksum: str | None):
    """sha256, or md5 for a 32-digit checksum (some publishers give only that, as Keras's applications do)."""
    return hashlib.md5() if checksum and len(checksum) == 32 else hashlib.sha256()


def _by_hand(url: str, target: Path, checksum: str | None, stand_in: str) -> str:
    pinned = f" ({'md5' if len(checksum) == 32 else 'sha256'} {checksum})" if checksum else ""
    offline = f"; offline, use {stand_in}" if stand_in else ""
    return f"download {url} by hand and save it as {target}{pinned}{offline}"


def _digest(path: Path, checksum: str | None) -> str:
    """The checksum of a file, of the kind `checksum` is."""
    digest = _hasher(checksum)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    checksum: str | None,
    fname: str,
    subdir: str = "datasets",
    stand_in: str = "",
    timeout: float = 30,
    attempts: int = 2,
) -> Path:
    """Return the cached file for `url`, downloading and verifying it if needed.

    `checksum` is the file's sha256 (or md5, 32 digits, where that is all its publisher gives);
    `None` is for sources that publish none: the first download's sha256 is recorded beside the
    file and every later use is checked against it. A download whose checksum is wrong is
    refused and tried again, `attempts` times in all; so is a pinned cached file that no longer
    matches (a damaged cache).
    """
    target = cache_dir() / subdir / fname
    recorded = target.with_name(target.name + ".sha256")
    expected = checksum or (recorded.read_text().strip() if recorded.exists() else None)
    if target.exists():
        actual = _digest(target, expected)
        if expected is None or actual == expected:
            return target
        if not checksum:
            raise DownloadError(
                f"{target}: sha256 {actual} does not match {expected}; delete it, then "
                + _by_hand(url, target, expected, stand_in)
            )
        warn(f"{target}: checksum {actual} does not match {expected}; downloading it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        actual = _fetch(url, target, fname, expected, stand_in, timeout)
        if expected is None or actual == expected:
            if checksum is None:
                recorded.write_text(actual + "\n")
            return target
        if attempt < attempts:
            warn(f"{url}: downloaded file has checksum {actual}, expected {expected}; trying again")
    target.unlink(missing_ok=True)
    raise DownloadError(
        f"{url}: downloaded file has checksum {actual}, expected {expected} ({attempts} tries); "
        + _by_hand(url, target, expected, stand_in)
    )


def _fetch(url: str, target: Path, fname: str, expected: str | None, stand_in: str, timeout: float) -> str:
    """Download `url` into `target` through a `.part` file beside it; the checksum of what came."""
    fd, part = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=target.parent)
    part = Path(part)
    digest = _hasher(expected)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = int(response.headers.get("Content-Length") or 0)
            # A server that sends no length gets no bar (Click's needs one).
            progress = (
                click.progressbar(length=length, label=f"downloading {fname}", file=click.get_text_stream("stderr"))
                if length
                else contextlib.nullcontext()
            )
            with progress as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    if bar is not None:
                        bar.update(len(block))
        actual = digest.hexdigest()
        if expected is None or actual == expected:
            os.replace(part, target)
        return actual
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"could not download {url} ({reason}); " + _by_hand(url, target, expected, stand_in)
        ) from None
    finally:
        part.unlink(missing_ok=True)


def extract(archive: Path) -> Path:
    """Unpack `archive` once into a folder beside it (atomically) and return the folder."""
    folder = archive.with_name(archive.name.split(".")[0])
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=archive.parent))
    try:
        shutil.unpack_archive(archive, staging)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
