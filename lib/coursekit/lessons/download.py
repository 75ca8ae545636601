"""Corpus downloads and download caches that are all or nothing and safe to share.

    url = download.source_url(livedoor.URL)            # or the same file on the lab's mirror
    archive = download.fetch(url, "~/.cache/coursekit/livedoor")          # verified, locked
    text = download.unpack(archive, cache, "text", download.extract_tar)  # complete, or not there

- **Sources are parameters.** Every loader takes its URL; `COURSEKIT_MIRROR` (or `mirror=`) points
  every loader at a lab's own copy: `<mirror>/<file name>`, where the mirror is an http(s)/ftp URL
  or a folder (compute nodes are often offline; labs keep corpora inside the cluster).
- **All or nothing.** pooch downloads into a folder private to this process (progress bar, a
  checksum where the source publishes one); the file is then verified (length, archive integrity,
  not an HTML error page) and only then renamed to its final name. A cached file that fails the
  same check is fetched again (or, when that fails too, named in an error with the fix).
- **The prepared shared folder first.** With $COURSEKIT_SHARED set (the lab's site file), loaders read
  what `python -m coursekit prepare` staged there before the user's cache and before any download
  (`staged`, `shared_fallback`); a file missing there on a node that cannot download (COURSEKIT_OFFLINE=1,
  HF_HUB_OFFLINE=1, or the source unreachable) stops the run before any work, naming the file and the
  prepare command (`refuse_offline`, NotStagedError). Downloads are left readable as the umask says
  (pooch makes them 0600).
- **Shared caches.** A file lock per cache folder (filelock) makes concurrent jobs wait for one
  another: one downloads and unpacks, the others then use its result. Unpacking goes into a
  temporary folder, gets a completion mark and is renamed into place; a folder without the mark
  (an unpacking that was killed) is never used: it is unpacked again.

Problems with the data itself (missing genres, unreadable files) go through `data_warning`: a Python
warning, and a line in the run folder's `warnings.json` that the runner copies into metrics.json
and `coursekit report` shows next to the run.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from ..contracts import RUN_DIR_ENV, WARNINGS_FILE  # the run folder's warnings.json, which the harness reads

MIRROR_ENV = "COURSEKIT_MIRROR"
COMPLETE_MARK = ".coursekit-complete"   # written into an unpacked folder before it is renamed into place
LOCK_NAME = ".coursekit.lock"
LOCK_TIMEOUT_S = 6 * 3600               # waiting for another job's download (a 4 GB dump on a slow link)
SHARED_ENV = "COURSEKIT_SHARED"         # the prepared shared folder (python -m coursekit prepare; the site file)
OFFLINE_ENV = "COURSEKIT_OFFLINE"       # 1: never download (a compute node without network)
PREPARE = "python -m coursekit prepare"
HUB_CACHE = "models/hub"                # in the shared folder: a Hugging Face hub cache (HF_HUB_CACHE layout)
PROBE_TIMEOUT_S = 5.0                   # how long a compute node may take to show it can reach a source


class DownloadError(RuntimeError):
    """A download failed or its file is damaged; the message names the file, the URL and the fix."""


class NotStagedError(DownloadError):
    """A file is not in the prepared shared folder and this node cannot download it (offline)."""


class CorpusError(ValueError):
    """A corpus is missing, unusable, empty, or too small for what was asked (every loader raises it)."""


class CorpusWarning(UserWarning):
    """The data differs from the release or is odd (missing/extra parts, unreadable files or folders,
    dropped lines, sentences in two splits)."""


# ----------------------------------------------------------------------------- data warnings
def data_warning(source: str, message: str, counts: dict | None = None, stacklevel: int = 2,
                 ja: str = "データが配布元のものと違います") -> None:
    """Say loudly that the data differs from the release (or what `ja` says in Japanese): a CorpusWarning,
    plus an entry in the run folder's warnings.json (when running under `coursekit run`), so the run
    record, the run's last line and `coursekit report` show it, counted."""
    warnings.warn(f"{source}: {message} / {ja}(この内容は metrics.json の warnings にも残ります)",
                  CorpusWarning, stacklevel=stacklevel + 1)
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir or not Path(run_dir).is_dir():
        return
    path = Path(run_dir) / WARNINGS_FILE
    try:
        entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        if not isinstance(entries, list):
            entries = []
    except (OSError, ValueError):
        entries = []
    entry = {"source": source, "message": message, "counts": dict(counts or {})}
    if entry not in entries:
        entries.append(entry)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def decode_utf8(raw: bytes, where: str | Path) -> str:
    """Strict UTF-8 (a BOM is dropped): never replacement characters; the error names the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end,
                                 f"{exc.reason} in {where} (byte {exc.start}): the file is not UTF-8 "
                                 "(damaged, or another encoding: convert it with iconv)") from None


# ----------------------------------------------------------------------------- sources
def source_url(url: str, mirror: str | None = None) -> str:
    """`url`, or the file of the same name on the mirror (`mirror`, else $COURSEKIT_MIRROR)."""
    mirror = (mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")).strip()
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.rstrip("/").rsplit("/", 1)[-1]


def is_url(text: str) -> bool:
    return str(text).split("://", 1)[0].lower() in ("http", "https", "ftp", "file") and "://" in str(text)


# ----------------------------------------------------------------------------- the prepared shared folder
# The instructor stages every corpus, model and image once (`python -m coursekit prepare SHARED_DIR`, on a
# machine with network); the lab's site file sets COURSEKIT_SHARED. Loaders look there first (before the
# user's cache and before any download), and only read: nothing a student's job does writes or locks there.
# A file missing there on a node that cannot download stops the run at once, naming the file and the fix.
def shared_dir() -> Path | None:
    """The prepared shared folder ($COURSEKIT_SHARED), or None."""
    value = os.environ.get(SHARED_ENV, "").strip()
    return Path(value).expanduser() if value else None


def staged(relative: str | Path, *names: str, complete: bool = False) -> Path | None:
    """SHARED/relative when the prepared shared folder holds it (with every file of `names` inside it;
    `complete`: an unpacked folder carrying its completion mark), else None (also without a shared folder)."""
    shared = shared_dir()
    if shared is None:
        return None
    path = shared / relative
    if not path.exists() or (complete and not is_complete(path)):
        return None
    if any(not (path / name).is_file() for name in names):
        return None
    return path


def shared_fallback(path: str, folder: str, suffix: str = "") -> str:
    """A relative path that is not here (a kit default such as models/bert-japanese/wiki-ja.model) becomes
    the file of the same name in the shared folder's `folder`, when it is there (`suffix`: what the file
    on disk adds, e.g. .index for a checkpoint prefix); anything else is returned unchanged."""
    if not path or is_url(path) or Path(path).expanduser().is_absolute() \
            or Path(f"{path}{suffix}").expanduser().exists():
        return path
    found = staged(folder)
    if found is not None and (found / f"{Path(path).name}{suffix}").exists():
        return str(found / Path(path).name)
    return path


def explicitly_offline() -> str | None:
    """`COURSEKIT_OFFLINE=1` or `HF_HUB_OFFLINE=1` when set (this node must not download), else None."""
    for name in (OFFLINE_ENV, "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name}={os.environ[name]}"
    return None


_PROBED: dict[tuple[str, int], str | None] = {}


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why this node cannot download `url`, or None (it can, or `url` is a local path). COURSEKIT_OFFLINE=1
    or HF_HUB_OFFLINE=1 say so without trying; otherwise one TCP connection to the source's host, name
    lookup included, for at most `timeout` seconds (an offline compute node may drop packets silently);
    the answer is remembered for the process."""
    explicit = explicitly_offline()
    if explicit:
        return explicit
    if not is_url(url) or url.startswith("file://"):
        return None
    import socket
    import threading
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme.lower())
    if proxy and not proxy_bypass(parts.hostname or ""):   # a login node behind a proxy: reach the proxy
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    key = (parts.hostname or "", parts.port or {"http": 80, "ftp": 21}.get(parts.scheme.lower(), 443))
    if key not in _PROBED:
        answer = [f"no answer from {key[0]}:{key[1]} within {timeout:.0f} s"]

        def probe():
            try:
                socket.create_connection(key, timeout=timeout).close()
                answer[0] = None
            except OSError as exc:
                answer[0] = f"cannot reach {key[0]}:{key[1]}: {type(exc).__name__}: {exc}"

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout + 1)
        _PROBED[key] = answer[0]
    return _PROBED[key]


def not_staged(relative: str | Path | None, what: str, reason: str) -> NotStagedError:
    """The one message for a file that is neither in the shared folder nor downloadable here."""
    shared = shared_dir()
    if shared is None or relative is None:
        return NotStagedError(
            f"{what} is needed but this node cannot download it ({reason}). Source the lab's site file (it sets "
            f"{SHARED_ENV} to the shared folder the instructor prepared with `{PREPARE} SHARED_DIR`), or set "
            f"{MIRROR_ENV} to a lab copy, or pass the file with -p / {what} が必要ですが、このノードからは"
            f"ダウンロードできません({reason})。研究室のサイト設定ファイルを source して共有フォルダ"
            f"({SHARED_ENV}: 講師が `{PREPARE}` で準備します)を使うか、{MIRROR_ENV} か -p でファイルを渡してください")
    path = shared / relative
    return NotStagedError(
        f"{path} is missing: {what} is not in the prepared shared folder {shared} ({SHARED_ENV}), and this "
        f"node cannot download it ({reason}). Ask the instructor to stage it, on a machine with network: "
        f"{PREPARE} {shared} (--only tiny: what the tiny profiles need) / 共有フォルダに {what} がありません"
        f"({path})。このノードからはダウンロードできません({reason})。講師がネットワークのあるマシンで "
        f"{PREPARE} {shared} を実行して準備します")


def refuse_offline(url: str, relative: str | Path | None, what: str) -> None:
    """Call before a download: raise NotStagedError when this node cannot download `url` and either a
    shared folder is set or COURSEKIT_OFFLINE/HF_HUB_OFFLINE say the node is offline. Otherwise return
    (without a shared folder the download is tried, and its own error names the URL and the fix)."""
    if shared_dir() is None and not explicitly_offline():
        return
    reason = unreachable(url)
    if reason:
        raise not_staged(relative, what, reason)


def readable_mode(executable: bool = False) -> int:
    """The mode this process's umask gives a new file (0644 under umask 022, 0640 under 027). pooch
    creates its downloads 0600, which a lab's shared cache (or the shared folder) cannot use."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if executable else 0o666) & ~mask


# ----------------------------------------------------------------------------- verification
def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:200].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in start


def verify_file(path: str | Path) -> None:
    """Raise ValueError when the file is not what its name says: empty, an HTML page, a truncated or
    damaged archive (.tar.gz/.tgz/.tar/.zip read through to the end), a .txt that is not UTF-8."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".zip")) and _looks_like_html(head):
        raise ValueError("the file is an HTML page, not an archive (an error page or a login page "
                         "served instead of the file)")
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2")):
        try:
            with tarfile.open(path) as tar:
                for member in tar:              # reads the whole stream: truncation and CRC errors show
                    if member.isfile():
                        tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"damaged or truncated archive ({type(exc).__name__}: {exc})") from None
    elif name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(f"damaged or truncated zip archive ({type(exc).__name__}: {exc})") from None
        if bad:
            raise ValueError(f"damaged zip archive: CRC error in {bad}")
    elif name.endswith(".txt"):
        verify_text(path)


def verify_text(path: str | Path) -> None:
    """Raise ValueError unless the file is non-empty UTF-8 text (not an HTML page); for text files
    whose names do not end in .txt (train.en, train.ja, ...)."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise ValueError("the file is empty")
    if _looks_like_html(raw[:1024]):
        raise ValueError("the file is an HTML page, not the text file")
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc})") from None


# ----------------------------------------------------------------------------- locks
def cache_lock(folder: str | Path, say: Callable[[str], None] = print):
    """A file lock on a cache folder (filelock; released by the OS if the job dies). Prints who it
    waits for when another job holds it."""
    from filelock import FileLock, Timeout

    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable(folder, exc) from None
    lock = FileLock(str(folder / LOCK_NAME), timeout=LOCK_TIMEOUT_S)

    class _Lock:
        def __enter__(self):
            try:
                lock.acquire(timeout=0)
            except Timeout:   # (a TimeoutError, so an OSError: caught first)
                say(f"waiting for another job that is filling the cache {folder} (lock {lock.lock_file}) / "
                    "ほかのジョブがキャッシュを作っているので、終わるのを待ちます")
                try:
                    lock.acquire()
                except Timeout:
                    raise DownloadError(f"gave up after {LOCK_TIMEOUT_S} s waiting for the lock "
                                        f"{lock.lock_file}: is another job stuck? Remove the lock file "
                                        "only when no job uses this cache / ロックの待ち時間が上限を超えました。"
                                        "このキャッシュを使うジョブがないときだけロックファイルを消してください") from None
            except OSError as exc:   # a read-only cache folder: the lock file cannot be created
                raise not_writable(folder, exc) from None
            return self

        def __exit__(self, *exc):
            lock.release()

    return _Lock()


def not_writable(folder: Path, exc: OSError) -> DownloadError:
    """The message for a cache folder this job cannot write into (read-only, another user's, a file)."""
    return DownloadError(f"the cache folder {folder} cannot be written ({type(exc).__name__}: {exc.strerror or exc}): "
                         "pass a folder you can write to as cache_dir (-p cache_dir PATH), or one where the corpus "
                         f"is already unpacked / キャッシュのフォルダ {folder} に書き込めません。書き込めるフォルダ"
                         "(またはコーパスが展開済みのフォルダ)を -p cache_dir で渡してください")


def private_dir(cache: Path, prefix: str) -> Path:
    """A new folder private to this process inside the cache (where a download or an unpacking is made
    before it is renamed into place)."""
    try:
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=cache))
    except OSError as exc:
        raise not_writable(cache, exc) from None


# ----------------------------------------------------------------------------- fetch
def _copy_local(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found")
    shutil.copyfile(source, dest)


def _download_to(url: str, folder: Path, fname: str, known_hash: str | None, progressbar: bool,
                 timeout: float) -> Path:
    """The file at `url` in `folder` (private to this process) via pooch, or copied from a folder."""
    if not is_url(url) or url.startswith("file://"):
        local = Path(url[len("file://"):] if url.startswith("file://") else url).expanduser()
        _copy_local(local, folder / fname)
        if known_hash:
            import pooch

            algo, _, want = known_hash.rpartition(":")
            got = pooch.file_hash(str(folder / fname), alg=algo or "sha256")
            if got != want:
                raise ValueError(f"checksum mismatch ({algo or 'sha256'} {got}, expected {want})")
        return folder / fname
    import logging

    import pooch

    logging.getLogger("pooch").setLevel(logging.WARNING)  # not the 'use this hash' hint each time
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout,
                                      headers={"User-Agent": "coursekit (workshop kit)"}) \
        if url.lower().startswith(("http://", "https://")) else None
    return Path(pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder,
                               downloader=downloader, progressbar=progressbar))


def fetch(url: str, cache_dir: str | Path, fname: str | None = None, *, known_hash: str | None = None,
          verify: Callable[[Path], None] = verify_file, hint: str = "", progressbar: bool = True,
          timeout: float = 60, say: Callable[[str], None] = print, staged: str | Path | None = None) -> Path:
    """cache_dir/fname, downloaded from `url` once, complete and verified; safe with several jobs.

    `url` may be an http(s)/ftp URL or a local path (a lab's copy). `known_hash` ("sha256:..." or
    "md5:...") only where the source publishes one. A cached file that fails `verify` is fetched
    again. Raises DownloadError naming the URL, the file, what is wrong and `hint` (the fix); before a
    download on a node that cannot download (see refuse_offline), NotStagedError naming `staged`, the
    file's place in the prepared shared folder. The file gets the umask's mode (not pooch's 0600)."""
    cache = Path(cache_dir).expanduser()
    fname = fname or url.rstrip("/").rsplit("/", 1)[-1]
    target = cache / fname
    with cache_lock(cache, say):
        if target.exists():
            try:
                verify(target)
                return target
            except (ValueError, OSError) as exc:
                say(f"the cached {target} is damaged ({exc}): fetching it again / "
                    "キャッシュのファイルが壊れているので、ダウンロードし直します")
                target.unlink()
        refuse_offline(url, staged, fname)
        private = private_dir(cache, ".download-")
        try:
            try:
                got = _download_to(url, private, fname, known_hash, progressbar, timeout)
            except Exception as exc:  # requests/pooch/OSError: anything that stops the download
                raise DownloadError(f"could not download {url} to {target} / ダウンロードできませんでした: "
                                    f"{type(exc).__name__}: {exc}{_fix(hint)}") from exc
            try:
                verify(got)
            except (ValueError, OSError) as exc:
                raise DownloadError(f"the download of {url} is not usable: {exc}. Nothing was kept "
                                    f"under {target} / ダウンロードしたファイルが使えません(何も残していません)"
                                    f"{_fix(hint)}") from None
            os.chmod(got, readable_mode())
            os.replace(got, target)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    return target


def _fix(hint: str) -> str:
    mirror = (f" To use a lab's copy, set {MIRROR_ENV} to its URL or folder (the file is looked up by name)."
              f"\n研究室のコピーを使うときは {MIRROR_ENV} にその URL かフォルダを設定してください。")
    return f".{mirror}" + (f"\nOr / または: {hint}" if hint else "")


# ----------------------------------------------------------------------------- unpack
def is_complete(folder: str | Path) -> bool:
    """An unpacked cache folder that carries its completion mark."""
    return (Path(folder) / COMPLETE_MARK).is_file()


def unpack(archive: str | Path, cache_dir: str | Path, name: str,
           extract: Callable[[Path, Path], None], check: Callable[[Path], None] | None = None,
           say: Callable[[str], None] = print) -> Path:
    """cache_dir/name, unpacked from `archive` by `extract(archive, tmp_folder)` once: into a folder
    private to this process, checked (`check(tmp_folder/name)`), marked complete and renamed into
    place, under the cache's lock. A folder without the mark (a killed unpacking) is replaced."""
    cache = Path(cache_dir).expanduser()
    dest = cache / name
    if is_complete(dest):
        return dest
    with cache_lock(cache, say):
        if is_complete(dest):            # another job finished it while we waited
            return dest
        if dest.exists():
            say(f"{dest} is incomplete (no {COMPLETE_MARK}: an earlier unpacking was interrupted): "
                "unpacking again / 前回の展開が途中で止まっていたので、展開し直します")
            stale = cache / f".stale-{os.getpid()}-{int(time.time())}"
            os.replace(dest, stale)
            shutil.rmtree(stale, ignore_errors=True)
        private = private_dir(cache, ".unpack-")
        try:
            extract(Path(archive), private)
            result = private / name
            if not result.is_dir():
                raise DownloadError(f"{archive} holds no {name}/ folder: is it the right archive? / "
                                    f"{name}/ フォルダがありません。正しいアーカイブか確かめてください")
            if check:
                check(result)
            (result / COMPLETE_MARK).write_text(f"unpacked from {archive} at {time.ctime()}\n")
            os.replace(result, dest)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    return dest


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack a tarball safely: no absolute paths, no '..', no links or devices. A missing, damaged or
    truncated archive raises DownloadError naming it (what was unpacked into `dest` is then incomplete:
    `unpack` extracts into a private folder, so nothing half-done is kept)."""
    dest = Path(dest).resolve()
    if not Path(archive).is_file():
        raise DownloadError(f"archive not found: {archive} / アーカイブが見つかりません")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not target.is_relative_to(dest) or m.issym() or m.islnk() or m.isdev():
                    raise DownloadError(f"refusing to extract {m.name!r} from {archive}: "
                                        "it would write outside the target folder or is a link/device")
            # the 'data' filter exists from Python 3.11.4 (Debian bookworm has 3.11.2): the checks above suffice
            tar.extractall(dest, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except getattr(tarfile, "FilterError", ()) as exc:
        raise DownloadError(f"refusing to extract from {archive}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DownloadError(f"{archive} is damaged or truncated ({type(exc).__name__}: {exc}): download it again "
                            f"(an interrupted download or copy?) / アーカイブ {archive} が壊れているか途中で切れています。"
                            "ダウンロードし直してください") from None
