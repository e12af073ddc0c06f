"""Hash-checked, cached downloads, tested on real files that ship with installed packages."""

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest

from zoo.data import download
from zoo.data.download import DownloadError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def real_file(tmp_path):
    """scikit-learn's china.jpg: a real 196 kB file, served over file:// like a mirror."""
    from sklearn.datasets import load_sample_images

    source = Path(load_sample_images().filenames[0])
    copy = tmp_path / "mirror" / source.name
    copy.parent.mkdir()
    shutil.copy(source, copy)
    return copy, hashlib.sha256(copy.read_bytes()).hexdigest()


def test_download_verifies_and_caches(cache, real_file):
    source, sha = real_file
    path = download.download(source.as_uri(), sha, "china.jpg")
    assert path == cache / "datasets" / "china.jpg" and path.read_bytes() == source.read_bytes()
    source.unlink()  # the mirror is gone: the cached copy serves
    assert download.download(source.as_uri(), sha, "china.jpg") == path


def test_mismatched_hash_leaves_nothing_and_says_how_to_fetch_by_hand(cache, real_file):
    source, _ = real_file
    with pytest.raises(DownloadError, match="by hand") as error:
        download.download(source.as_uri(), "0" * 64, "china.jpg", stand_in="sample-photos")
    assert "sample-photos" in str(error.value)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_unreachable_source_names_the_target_and_stand_in(cache):
    with pytest.raises(DownloadError) as error:
        download.download("http://127.0.0.1:9/nothing.zip", "a" * 64, "nothing.zip", stand_in="sample-photos",
                          timeout=2)
    message = str(error.value)
    assert "could not download" in message and str(cache / "datasets" / "nothing.zip") in message
    assert "sample-photos" in message


def test_unpinned_source_records_its_hash_at_first_download(cache, real_file):
    source, sha = real_file
    path = download.download(source.as_uri(), None, "china.jpg")
    assert Path(str(path) + ".sha256").read_text().strip() == sha
    path.write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="does not match"):
        download.download(source.as_uri(), None, "china.jpg")


def test_extract_unpacks_once(tmp_path, real_file):
    source, _ = real_file
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="photos/china.jpg")
    folder = download.extract(archive)
    assert (folder / "photos" / "china.jpg").read_bytes() == source.read_bytes()
    assert download.extract(archive) == folder
