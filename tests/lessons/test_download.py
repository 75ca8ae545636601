"""Downloads are all or nothing, caches are safe to share: a real HTTP server on 127.0.0.1 with the
faults real servers produce (tests/fileserver.py), real archives, several real processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest

from coursekit.lessons import download, livedoor
from ..corpora import write_sample_corpus
from ..fileserver import FileServer


@pytest.fixture
def served(tmp_path):
    """A folder served over loopback, holding a livedoor-format tarball of 9 x 6 articles."""
    folder = tmp_path / "served"
    folder.mkdir()
    sample = write_sample_corpus(tmp_path / "ldcc", per_category=6, seed=2)
    with tarfile.open(folder / livedoor.ARCHIVE, "w:gz") as tar:
        tar.add(sample, arcname="text")
    return folder


def test_a_truncated_download_is_never_kept(served, tmp_path):
    cache = tmp_path / "cache"
    with FileServer(served) as server:
        with pytest.raises(livedoor.CorpusError, match="could not download|not usable") as err:
            livedoor.download(cache, server.url("truncated", livedoor.ARCHIVE))
    assert "COURSEKIT_MIRROR" in str(err.value) and "truncated" in str(err.value)
    assert sorted(p.name for p in cache.iterdir()) == [download.LOCK_NAME], "no partial file, no temp folder"


def test_an_html_page_served_with_status_200_is_refused(served, tmp_path):
    cache = tmp_path / "cache"
    with FileServer(served) as server:
        with pytest.raises(livedoor.CorpusError, match="HTML page"):
            livedoor.locate("", cache, url=server.url("html", livedoor.ARCHIVE))
    assert not (cache / livedoor.ARCHIVE).exists() and not (cache / "text").exists()


def test_a_damaged_cached_archive_is_fetched_again(served, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    good = (served / livedoor.ARCHIVE).read_bytes()
    (cache / livedoor.ARCHIVE).write_bytes(good[: len(good) // 3])  # what an old kit left behind
    with FileServer(served) as server:
        text = livedoor.locate("", cache, url=server.url("ok", livedoor.ARCHIVE))
        assert server.hits[f"/ok/{livedoor.ARCHIVE}"] == 1
    assert (cache / livedoor.ARCHIVE).read_bytes() == good
    assert len(livedoor.load_corpus(text)) == 54


def test_a_damaged_cache_that_cannot_be_fetched_names_the_file_and_the_fix(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / livedoor.ARCHIVE).write_bytes(b"\x1f\x8b\x08 not really")
    with pytest.raises(livedoor.CorpusError) as err:
        livedoor.locate("", cache, url="http://127.0.0.1:9/" + livedoor.ARCHIVE)
    message = str(err.value)
    assert "could not download http://127.0.0.1:9/" in message and str(cache / livedoor.ARCHIVE) in message
    assert "COURSEKIT_MIRROR" in message and "data_dir" in message


def test_a_half_unpacked_cache_is_never_used(served, tmp_path):
    cache = tmp_path / "cache"
    (cache / "text" / "sports-watch").mkdir(parents=True)  # an unpacking that was killed: 1 genre
    (cache / "text" / "sports-watch" / "sports-watch-1.txt").write_text("http://x\n2012\nタイトル\n本文\n")
    with FileServer(served) as server:
        text = livedoor.locate("", cache, url=server.url("ok", livedoor.ARCHIVE))
    assert download.is_complete(text)
    assert len(livedoor.load_corpus(text).label_names) == 9
    assert not [p for p in cache.iterdir() if p.name.startswith((".unpack", ".stale", ".download"))]


def test_mirror_points_every_loader_at_a_lab_copy(served, tmp_path, monkeypatch):
    assert download.source_url("https://a.example/x/ldcc.tar.gz", "http://m/") == "http://m/ldcc.tar.gz"
    monkeypatch.setenv(download.MIRROR_ENV, str(served))  # a folder works as a mirror (offline nodes)
    text = livedoor.locate("", tmp_path / "cache")
    assert len(livedoor.load_corpus(text)) == 54
    with FileServer(served) as server:  # a URL as data_dir downloads that file
        monkeypatch.delenv(download.MIRROR_ENV)
        text = livedoor.locate(server.url("ok", livedoor.ARCHIVE), tmp_path / "cache2")
    assert text == tmp_path / "cache2" / "text" and download.is_complete(text)


def test_concurrent_jobs_on_one_cache_download_once_and_all_see_the_whole_corpus(served, tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent("""
        import json, sys
        from coursekit.lessons import livedoor
        text = livedoor.locate("", sys.argv[1], url=sys.argv[2])
        corpus = livedoor.load_corpus(text)
        print(json.dumps({"n": len(corpus), "genres": len(corpus.label_names)}))
    """)
    with FileServer(served, chunk=512, pause=0.05) as server:  # about a second per download
        url = server.url("slow", livedoor.ARCHIVE)
        procs = [subprocess.Popen([sys.executable, "-c", script, str(cache), url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        hits = server.hits[f"/slow/{livedoor.ARCHIVE}"]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"n": 54, "genres": 9}
    assert hits == 1, "exactly one download"
    assert any("waiting for another job" in out for out, _ in outs), "the others waited on the lock"


def test_verify_file_knows_archives_text_and_html(tmp_path):
    (tmp_path / "a.txt").write_bytes("日本語\n".encode("utf-8"))
    download.verify_file(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_bytes("日本語".encode("euc-jp"))
    with pytest.raises(ValueError, match="not UTF-8"):
        download.verify_file(tmp_path / "b.txt")
    (tmp_path / "c.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="zip"):
        download.verify_file(tmp_path / "c.zip")
    (tmp_path / "d.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        download.verify_file(tmp_path / "d.txt")


def test_data_warnings_go_to_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    with pytest.warns(download.CorpusWarning, match="2 broken"):
        download.data_warning("demo", "2 broken files", {"broken": 2})
        download.data_warning("demo", "2 broken files", {"broken": 2})  # said once
    entries = json.loads((tmp_path / download.WARNINGS_FILE).read_text())
    assert entries == [{"source": "demo", "message": "2 broken files", "counts": {"broken": 2}}]
    with pytest.raises(UnicodeDecodeError, match="x.txt"):
        download.decode_utf8("日本".encode("shift_jis"), "x.txt")
    assert download.decode_utf8("\ufeff日本".encode("utf-8"), "x") == "日本"
    assert os.environ["COURSEKIT_RUN_DIR"] == str(tmp_path)


def test_a_truncated_archive_given_to_the_extract_step_is_named(served, tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes((served / livedoor.ARCHIVE).read_bytes()[:3000])
    with pytest.raises(download.DownloadError, match=r"cut.tar.gz is damaged or truncated .*download it again"):
        download.extract_tar(archive, tmp_path / "out")
    with pytest.raises(download.DownloadError, match="archive not found"):
        download.extract_tar(tmp_path / "missing.tar.gz", tmp_path / "out")


READ_ONLY_CACHE = """\
from coursekit.lessons import livedoor
try:
    livedoor.locate("", {cache!r}, url="http://127.0.0.1:9/ldcc-20140209.tar.gz")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_read_only_cache_folder_is_named_with_the_fix(tmp_path):
    """A cache the job cannot write into (a lab's read-only copy, another user's folder): one message naming
    the folder and -p cache_dir, not filelock's PermissionError. Run as an unprivileged user (root may write
    anywhere)."""
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="ro-cache-")   # outside pytest's private tmp folder, which others cannot enter
    try:
        os.chmod(base, 0o755)
        cache = os.path.join(base, "cache")
        os.mkdir(cache, 0o555)
        command = [sys.executable, "-c", READ_ONLY_CACHE.format(cache=cache)]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: no unprivileged user to test with")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert proc.stdout.startswith("CorpusError the cache folder " + cache + " cannot be written"), proc.stdout + proc.stderr
    assert "-p cache_dir" in proc.stdout and "書き込めません" in proc.stdout
