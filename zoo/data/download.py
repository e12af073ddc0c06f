"""Hash-checked, cached downloads with a progress bar; the only downloader apps use.

A file is fetched into the cache (`$ZOO_CACHE`, default ~/.cache/keras-zoo)
under a `.part` name, its sha256 checked, and only then renamed into place.
Any failure raises DownloadError saying where to put the file by hand and
what can stand in offline. No Keras import: `zoo data fetch` stays light.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import click

from zoo.errors import ZooError
from zoo.files import sha256_file

CHUNK = 1 << 20


class DownloadError(ZooError):
    """A download that failed or whose content does not match its sha256."""


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "keras-zoo")).expanduser()


def _by_hand(url: str, target: Path, sha256: str | None, stand_in: str) -> str:
    pinned = f" (sha256 {sha256})" if sha256 else ""
    offline = f"; offline, use {stand_in}" if stand_in else ""
    return f"download {url} by hand and save it as {target}{pinned}{offline}"


def download(url: str, sha256: str | None, fname: str, subdir: str = "datasets", stand_in: str = "",
             timeout: float = 30) -> Path:
    """Return the cached file for `url`, downloading and verifying it if needed.

    `sha256=None` is for sources that publish no checksum: the first download's
    hash is recorded beside the file and every later use is checked against it.
    """
    target = cache_dir() / subdir / fname
    recorded = target.with_name(target.name + ".sha256")
    expected = sha256 or (recorded.read_text().strip() if recorded.exists() else None)
    if target.exists():
        actual = sha256_file(target)
        if expected is None or actual == expected:
            return target
        raise DownloadError(f"{target}: sha256 {actual} does not match {expected}; delete it, then "
                            + _by_hand(url, target, expected, stand_in))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=target.parent)
    part = Path(part)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = int(response.headers.get("Content-Length") or 0) or None
            with click.progressbar(length=length, label=f"downloading {fname}", file=click.get_text_stream("stderr")) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        actual = digest.hexdigest()
        if expected and actual != expected:
            raise DownloadError(f"{url}: downloaded file has sha256 {actual}, expected {expected}; "
                                + _by_hand(url, target, expected, stand_in))
        os.replace(part, target)
        if sha256 is None:
            recorded.write_text(actual + "\n")
        return target
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"could not download {url} ({reason}); " + _by_hand(url, target, expected, stand_in)) from None
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
