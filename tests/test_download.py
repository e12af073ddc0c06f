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
    with pytest.warns(UserWarning, match="trying again"), pytest.raises(DownloadError, match="by hand") as error:
        download.download(source.as_uri(), "0" * 64, "china.jpg", stand_in="sample-photos")
    assert "sample-photos" in str(error.value)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_unreachable_source_names_the_target_and_stand_in(cache):
    with pytest.raises(DownloadError) as error:
        download.download(
            "http://127.0.0.1:9/nothing.zip", "a" * 64, "nothing.zip", stand_in="sample-photos", timeout=2
        )
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


class Mirror:
    """A real HTTP server on 127.0.0.1 serving one file; `damaged` responses are corrupted first."""

    def __init__(self, content: bytes, send_length: bool = True):
        import http.server
        import threading

        self.content, self.damaged, self.requests, self.send_length = content, 0, 0, send_length
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests += 1
                body = mirror.content
                if mirror.damaged:
                    mirror.damaged -= 1
                    body = body[:-10] + b"0" * 10  # same length, wrong bytes: a bad proxy or a flaky link
                self.send_response(200)
                if mirror.send_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/weights.h5"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(real_file):
    served = Mirror(real_file[0].read_bytes())
    yield served
    served.close()


def test_http_download_is_hash_checked_then_served_from_the_cache(cache, real_file, mirror):
    _, sha = real_file
    path = download.download(mirror.url, sha, "weights.h5", subdir="models")
    assert path == cache / "models" / "weights.h5" and path.read_bytes() == mirror.content
    assert download.download(mirror.url, sha, "weights.h5", subdir="models") == path
    assert mirror.requests == 1  # the second call never reached the server


def test_http_download_accepts_an_md5_where_that_is_all_the_publisher_gives(cache, mirror):
    md5 = hashlib.md5(mirror.content).hexdigest()
    assert download.download(mirror.url, md5, "weights.h5").read_bytes() == mirror.content


def test_a_server_that_sends_no_length_still_serves(cache, real_file, mirror):
    _, sha = real_file
    mirror.send_length = False
    assert download.download(mirror.url, sha, "weights.h5").read_bytes() == mirror.content


def test_a_corrupted_download_is_refused_and_retried(cache, real_file, mirror):
    _, sha = real_file
    mirror.damaged = 1
    with pytest.warns(UserWarning, match="trying again"):
        path = download.download(mirror.url, sha, "weights.h5")
    assert path.read_bytes() == mirror.content and mirror.requests == 2


def test_a_download_corrupted_every_time_is_refused_leaving_nothing(cache, real_file, mirror):
    _, sha = real_file
    mirror.damaged = 5
    with pytest.warns(UserWarning), pytest.raises(DownloadError, match="2 tries.*by hand"):
        download.download(mirror.url, sha, "weights.h5")
    assert mirror.requests == 2 and not any(p.is_file() for p in cache.rglob("*"))


def test_a_damaged_cached_file_is_fetched_again(cache, real_file, mirror):
    _, sha = real_file
    path = download.download(mirror.url, sha, "weights.h5")
    path.write_bytes(b"damaged on disk")
    with pytest.warns(UserWarning, match="downloading it again"):
        assert download.download(mirror.url, sha, "weights.h5").read_bytes() == mirror.content


def test_offline_the_error_says_which_file_to_place_where(cache, real_file, mirror):
    _, sha = real_file
    url = mirror.url
    mirror.close()  # the server is gone: as offline as this machine is to the outside
    with pytest.raises(DownloadError) as error:
        download.download(url, sha, "weights.h5", subdir="models", timeout=2)
    message = str(error.value)
    assert "\n" not in message
    assert f"download {url} by hand and save it as {cache / 'models' / 'weights.h5'} (sha256 {sha})" in message
