"""`python -m coursekit prepare SHARED_DIR`: the instructor stages, once and on a machine with network,
everything the notebooks' tiny and full profiles name, in a shared folder that the students' jobs only read.

    python -m coursekit prepare /shared/coursekit                 # every profile (the Wikipedia dump: ~4 GB)
    python -m coursekit prepare /shared/coursekit --only tiny     # what the tiny profiles need, and the images
    python -m coursekit prepare /shared/coursekit --images defs/keras-bert.sif defs/transformers.sif
    python -m coursekit prepare /shared/coursekit --list          # what it would stage, and what is there

What to stage is read from the notebooks' parameters (each profile's values): the livedoor corpus (02, 04),
small_parallel_enja (03 tiny), the ALT release (03 full), yoheikikuta's Japanese BERT (02 full), the hub
model of 03's `model_name` (a hub snapshot), the Wikipedia dump of 04's `corpus`, and both images of defs/.
The layout is the one the lesson loaders look in when $COURSEKIT_SHARED is set (the lab's site file):

    SHARED_DIR/site.env                  the site file template (copied once; the instructor fills it)
    SHARED_DIR/manifest.json             every staged file: path, size, sha256, source, profiles
    SHARED_DIR/images/NAME.sif           keras-bert, transformers
    SHARED_DIR/data/livedoor/            ldcc-20140209.tar.gz and its unpacked text/
    SHARED_DIR/data/small_parallel_enja/, data/alt/, data/wikipedia/
    SHARED_DIR/models/bert-japanese/     checkpoint, SentencePiece model, bert_config.json
    SHARED_DIR/models/hub/               a Hugging Face hub cache (HF_HUB_CACHE layout)

Downloads go through the lessons' verified fetch (pooch into a private folder, checked, renamed into place;
COURSEKIT_MIRROR for a lab copy; HF_ENDPOINT for a hub mirror). A second call fetches only what is missing or
damaged (sizes and sha256 against manifest.json); a cut-off download never lands under its final name. The
folder is left group-readable and not group-writable (files 0644/0640 as the umask says, folders with group
x; --group NAME sets their group). Images: built with `apptainer build` where that works here, or copied from
prebuilt ones (--images). Whatever cannot be staged is named with its fix, and the exit status is 1.

This module composes the two layers (the lessons' loaders and downloads, the harness's image build), as
the notebooks do; neither layer imports it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .harness import containers, params
from .harness.doctor import MANIFEST, folder_stats, human, problem, read_manifest, sha256
from .harness.runs import project_root
from .lessons import alt, corpora, download, kerasbert, livedoor

SITE_FILE = "site.env"
IMAGES = "images"
PROFILES = ("tiny", "full")
BERT_DRIVE = "https://drive.google.com/drive/folders/1Zsm9DD40lrUVu6iAnIuTH2ODIkh-WM-O"


@dataclass
class Item:
    """One thing to stage: a corpus, a model, an image."""
    name: str
    kind: str                                   # files | hub | bert | image
    folder: str                                 # relative to the shared folder
    files: dict[str, str] = field(default_factory=dict)   # file name -> source URL ("" for bert: see below)
    repo: str = ""                              # hub repo id (kind hub)
    verify: Callable[[Path], None] = download.verify_file
    unpack: bool = False                        # livedoor: also its unpacked text/
    profiles: set[str] = field(default_factory=set)
    used_by: set[str] = field(default_factory=set)
    note: str = ""


# ----------------------------------------------------------------------------- what the notebooks name
def _item_livedoor() -> Item:
    return Item("livedoor", "files", livedoor.SHARED_FOLDER, {livedoor.ARCHIVE: livedoor.URL}, unpack=True,
                note="the livedoor news corpus (about 30 MB) and its unpacked text/")


def _item_small_parallel() -> Item:
    names = [f"{split}.{lang}" for split in alt.SPLITS for lang in ("en", "ja")]
    return Item(alt.SMALL_PARALLEL, "files", alt.SMALL_PARALLEL_FOLDER,
                {n: alt.SMALL_PARALLEL_URL + n for n in names}, verify=download.verify_text,
                note="50,000 short English-Japanese pairs (GitHub odashi/small_parallel_enja)")


def _item_alt() -> Item:
    return Item("alt", "files", alt.ALT_FOLDER, dict(alt.ALT_URLS),
                note="the ALT parallel corpus release (NICT) and its URL-train/dev/test.txt split")


def _item_bert(config: str, checkpoint: str, spm_model: str) -> Item:
    prefix, spm = Path(checkpoint).name, Path(spm_model).name
    names = [f"{prefix}.index", f"{prefix}.meta", f"{prefix}.data-00000-of-00001", spm,
             str(Path(spm).with_suffix(".vocab"))]
    return Item("bert-japanese", "bert", kerasbert.SHARED_FOLDER, {n: "" for n in names},
                note=f"yoheikikuta/bert-japanese (Google Drive; about 1.3 GB) and its {Path(config).name}")


def _item_hub(repo: str) -> Item:
    return Item(repo.split("/")[-1], "hub", download.HUB_CACHE, repo=repo,
                note=f"the hub model {repo} and its tokenizer (a snapshot in an HF hub cache)")


def _item_wiki(name: str) -> Item:
    url = corpora.WIKI_DUMP_URL.rsplit("/", 1)[0] + "/" + name
    return Item("wikipedia", "files", corpora.WIKI_FOLDER, {name: url}, verify=lambda p: None,
                note="the Japanese Wikipedia dump (about 4 GB; extracted by notebook 04's job)")


def _is_hub_id(name: str, kit: Path) -> bool:
    return bool(name) and "/" in name and not name.startswith((".", "/", "~")) and not (kit / name).exists()


def notebook_items(stem: str, values: dict, kit: Path) -> list[Item]:
    """What a notebook's parameter values name that the kit would otherwise download or expect on disk."""
    found: list[Item] = []
    if stem.startswith("02_"):
        if not values.get("data_dir"):
            found.append(_item_livedoor())
        paths = [values.get(k, "") for k in ("bert_config", "bert_checkpoint", "spm_model")]
        if all(paths) and not Path(paths[0]).is_absolute():
            found.append(_item_bert(*paths))
    elif stem.startswith("03_"):
        data = values.get("data_dir", "")
        if data == "":
            found.append(_item_alt())
        elif data == alt.SMALL_PARALLEL:
            found.append(_item_small_parallel())
        if _is_hub_id(values.get("model_name", ""), kit):
            found.append(_item_hub(values["model_name"]))
    elif stem.startswith("04_"):
        source = values.get("corpus", "")
        if source == "livedoor":
            found.append(_item_livedoor())
        elif source.endswith(".xml.bz2") and not Path(source).is_absolute():
            found.append(_item_wiki(Path(source).name))
    return found


def catalogue(kit: Path, only: str | None = None, skip: tuple[str, ...] = (), images: bool = True) -> list[Item]:
    """Every item the notebooks' profiles name (`only`: one profile), merged, plus the images."""
    chosen = [only] if only else list(PROFILES)
    merged: dict[str, Item] = {}
    for notebook in sorted((kit / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for profile in chosen:
            if profile not in params.profiles(notebook):
                continue
            for item in notebook_items(notebook.stem, params.resolve(notebook, profile), kit):
                item = merged.setdefault(item.name, item)
                item.profiles.add(profile)
                item.used_by.add(f"{notebook.stem[:2]} {profile}")
    if images:
        for definition in sorted((kit / "defs").glob("*.def")):
            merged[f"image {definition.stem}"] = Item(
                f"image {definition.stem}", "image", IMAGES, {f"{definition.stem}.sif": str(definition)},
                profiles=set(chosen), used_by={"every notebook's job"}, note=f"the image of defs/{definition.name}")
    return [item for name, item in merged.items() if name not in skip and name.split(" ")[-1] not in skip]


# ----------------------------------------------------------------------------- manifest
def write_manifest(shared: Path, manifest: dict) -> None:
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tmp = shared / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, _shared_mode(tmp))
    os.replace(tmp, shared / MANIFEST)


def _entry(path: Path, source: str, item: Item, checksum: bool = True) -> dict:
    entry = {"item": item.name, "source": source, "profiles": sorted(item.profiles)}
    if path.is_symlink():
        entry["link"] = os.readlink(path)
    if path.is_dir():
        entry["kind"] = "folder"
        if item.unpack:  # a corpus folder: counted, so that doctor can tell a half-deleted one
            entry["files"], entry["size"] = folder_stats(path)
    else:
        entry["size"] = path.stat().st_size
        if checksum:
            entry["sha256"] = sha256(path)
    return entry


# ----------------------------------------------------------------------------- permissions
def _shared_mode(path: Path) -> int:
    """Group-readable, never group- or world-writable; the umask decides the world bits."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return ((0o777 & ~_umask()) & ~0o022) | 0o050 | (st.st_mode & stat.S_ISGID)
    executable = bool(st.st_mode & stat.S_IXUSR)
    return (download.readable_mode(executable) & ~0o022) | (0o050 if executable else 0o040)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share(shared: Path, group: str | None = None, say: Callable[[str], None] = print) -> int:
    """Make the folder group-readable (and of `group`); image sandboxes and links are left as they are.
    Returns how many paths changed."""
    gid = None
    if group:
        import grp

        gid = grp.getgrnam(group).gr_gid
    changed, me = 0, os.geteuid()
    for root, dirs, files in os.walk(shared):
        here = Path(root)
        if here.parent == shared / IMAGES:   # inside a sandbox image: its own modes
            dirs[:] = []
            continue
        for name in [".", *dirs, *files]:
            path = here if name == "." else here / name
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != me:
                continue
            if gid is not None and st.st_gid != gid:
                os.chown(path, -1, gid, follow_symlinks=False)
                changed += 1
            mode = _shared_mode(path)
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
                changed += 1
    return changed


# ----------------------------------------------------------------------------- staging
class Preparer:
    def __init__(self, shared: Path, kit: Path, *, images: list[Path] = (), link_images: bool = False,
                 bert_dir: Path | None = None, deep: bool = False, say: Callable[[str], None] = print):
        self.shared, self.kit, self.say = shared, kit, say
        self.images = [Path(p) for p in images]
        self.link_images, self.bert_dir, self.deep = link_images, bert_dir, deep
        self.manifest = read_manifest(shared)
        self.fetched: list[tuple[str, int]] = []     # (relative path, bytes) fetched by this call
        self.problems: dict[str, str] = {}           # item -> what is missing and the fix

    # --- bookkeeping
    def record(self, rel: str, source: str, item: Item, checksum: bool = True) -> None:
        self.manifest["files"][rel] = _entry(self.shared / rel, source, item, checksum)
        write_manifest(self.shared, self.manifest)

    def present(self, rel: str, deep: bool = True) -> bool:
        """SHARED/rel is what the manifest recorded (size, and sha256 when `deep`)."""
        return problem(self.shared, rel, self.manifest["files"].get(rel), deep) is None

    def fetch_file(self, item: Item, name: str, url: str) -> None:
        """One file of an item: kept when it is the one the manifest recorded, else (re)fetched, verified."""
        rel = f"{item.folder}/{name}"
        target = self.shared / rel
        if self.present(rel):
            self.say(f"[prepare] {rel}: there, verified (sha256) / 取得済み")
            return
        if target.exists() and rel not in self.manifest["files"]:
            try:                                   # a file fetch() left complete before a crash
                item.verify(target)
                self.say(f"[prepare] {rel}: there, not yet in {MANIFEST}: recorded / 記録します")
                self.record(rel, url, item)
                return
            except (ValueError, OSError):
                pass
        if target.exists():
            self.say(f"[prepare] {rel}: damaged or changed (not the size/sha256 in {MANIFEST}): fetching it "
                     "again / 壊れているので取り直します")
            target.unlink()
        self.say(f"[prepare] {rel}: downloading {url} / ダウンロードします")
        t0 = time.monotonic()
        download.fetch(url, target.parent, name, verify=item.verify, hint="", say=self.say)
        size = target.stat().st_size
        self.fetched.append((rel, size))
        self.say(f"[prepare] {rel}: {human(size)} in {time.monotonic() - t0:.0f} s / 取得しました")
        self.record(rel, url, item)

    def stage(self, item: Item) -> None:
        self.say(f"[prepare] {item.name}: {item.note} (for {', '.join(sorted(item.used_by))})")
        try:
            getattr(self, f"stage_{item.kind}")(item)
        except Exception as exc:  # one item failing never stops the others
            message = str(exc).strip() or type(exc).__name__
            self.problems[item.name] = self.manifest["missing"][item.name] = message
            self.say(f"[prepare] {item.name}: NOT staged / 準備できませんでした: {message}")
        else:
            self.manifest["missing"].pop(item.name, None)
        write_manifest(self.shared, self.manifest)

    def stage_files(self, item: Item) -> None:
        failed = []
        for name, url in item.files.items():
            try:
                self.fetch_file(item, name, download.source_url(url))
            except download.DownloadError as exc:
                failed.append(str(exc))
                self.say(f"[prepare] {item.folder}/{name}: {exc}")
        if failed:
            raise download.DownloadError(f"{len(failed)} of {len(item.files)} file(s) not fetched; first: "
                                         f"{failed[0]}")
        if item.unpack:
            rel = f"{item.folder}/text"
            if not (self.present(rel) and download.is_complete(self.shared / rel)):
                self.say(f"[prepare] {rel}: unpacking / 展開します")
                text = livedoor.locate("", self.shared / item.folder)
                self.record(str(text.relative_to(self.shared)),
                            download.source_url(item.files[livedoor.ARCHIVE]), item)
            else:
                self.say(f"[prepare] {rel}: there, complete / 展開済み")

    def stage_bert(self, item: Item) -> None:
        """yoheikikuta's files live in a Google Drive folder (no plain URLs): taken from --bert-japanese DIR
        (downloaded with a browser), else $COURSEKIT_MIRROR (a lab copy), else gdown where it is installed."""
        source = self.bert_dir
        mirror = os.environ.get(download.MIRROR_ENV, "").strip()
        missing = [n for n in item.files if not self.present(f"{item.folder}/{n}")]
        tmp = None
        try:
            if missing and source is None and not mirror:
                try:
                    import gdown
                except ImportError:
                    raise download.DownloadError(
                        f"{', '.join(missing)} come from a Google Drive folder, which needs a browser: download them "
                        f"from {BERT_DRIVE} (linked in https://github.com/yoheikikuta/bert-japanese) and run again "
                        f"with --bert-japanese FOLDER (or pip install gdown) / Google ドライブのファイルはブラウザで"
                        f"ダウンロードし、--bert-japanese でそのフォルダを渡してください") from None
                tmp = Path(tempfile.mkdtemp(prefix=".gdrive-", dir=self.shared))
                self.say(f"[prepare] {item.name}: downloading the Google Drive folder with gdown")
                gdown.download_folder(url=BERT_DRIVE, output=str(tmp), quiet=False)
                found = {p.name: p for p in tmp.rglob("*") if p.is_file()}
                source = tmp
                for name in missing:  # gdown keeps the folder's structure: find the files by name
                    if name in found and found[name].parent != tmp:
                        os.replace(found[name], tmp / name)
            failed = []
            for name in item.files:
                url = str(source / name) if source is not None else download.source_url("x/" + name, mirror)
                try:
                    self.fetch_file(item, name, url)
                except download.DownloadError as exc:
                    failed.append(str(exc))
            if failed:
                raise download.DownloadError(f"{len(failed)} of {len(item.files)} file(s) not fetched; first: "
                                             f"{failed[0]}")
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        rel = f"{item.folder}/{kerasbert.CONFIG_NAME}"
        if not self.present(rel):
            kerasbert.write_config(kerasbert.BERT_JAPANESE_CONFIG, self.shared / rel)
            self.say(f"[prepare] {rel}: written from kerasbert.BERT_JAPANESE_CONFIG (the release has none)")
            self.record(rel, "coursekit.lessons.kerasbert.BERT_JAPANESE_CONFIG", item)

    def stage_hub(self, item: Item) -> None:
        """A snapshot of the hub repo in SHARED/models/hub (an HF hub cache): config, tokenizer files and one
        copy of the weights (safetensors, else pytorch_model.bin). huggingface_hub resumes cut-off files
        and skips those already there; HF_ENDPOINT points it at a mirror."""
        from huggingface_hub import HfApi, snapshot_download

        if download.explicitly_offline():
            raise download.DownloadError(f"{download.explicitly_offline()} is set: unset it to fetch from the hub")
        cache = self.shared / item.folder
        cache.mkdir(parents=True, exist_ok=True)
        names = set(HfApi().list_repo_files(item.repo))
        weights = "model.safetensors" if "model.safetensors" in names else "pytorch_model.bin"
        patterns = ["*.json", "*.txt", "*.model", weights]
        before = {p.name for p in cache.rglob("blobs/*") if p.is_file()}
        self.say(f"[prepare] {item.repo}: snapshot of {', '.join(patterns)} into {cache}")
        snapshot = Path(snapshot_download(item.repo, cache_dir=str(cache), allow_patterns=patterns))
        for path in sorted(snapshot.rglob("*")):
            if path.is_file():
                rel = str(path.relative_to(self.shared))
                if path.resolve().name not in before:
                    self.fetched.append((rel, path.stat().st_size))
                if not self.present(rel, deep=False):
                    self.record(rel, f"hf:{item.repo}/{path.relative_to(snapshot)}", item)
        self.say(f"[prepare] {item.repo}: {snapshot.relative_to(self.shared)} / スナップショットを保存しました")

    def stage_image(self, item: Item) -> None:
        (name, definition), = item.files.items()
        rel = f"{IMAGES}/{name}"
        target = self.shared / rel
        given = next((p for p in self.images if Path(name).stem in p.name), None)
        entry = self.manifest["files"].get(rel) or {}
        if self.present(rel, deep=self.deep) and (given is None or entry.get("source") == str(given.resolve())):
            self.say(f"[prepare] {rel}: there / イメージはあります")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp{os.getpid()}")
        if given is not None:
            if not given.exists():
                raise FileNotFoundError(f"--images {given}: not found / イメージが見つかりません")
            if self.link_images:
                os.symlink(given.resolve(), tmp)
            elif given.is_dir():
                self.say(f"[prepare] {rel}: copying the sandbox {given} / コピーします")
                shutil.copytree(given, tmp, symlinks=True)
            else:
                self.say(f"[prepare] {rel}: copying {given} / コピーします")
                shutil.copyfile(given, tmp)
            source = str(given.resolve())
        else:
            runtime = containers.find_runtime()
            if not runtime:
                raise containers.ContainerError(
                    f"apptainer/singularity is not installed here, so {name} cannot be built here: build it where "
                    f"it can be (python -m coursekit build-container {Path(definition).relative_to(self.kit)}) "
                    f"and run again with --images PATH / ここではイメージを作れません。作れるマシンで作り、"
                    f"--images で渡してください")
            self.say(f"[prepare] {rel}: building {definition} with {runtime} (minutes; needs network) / 作ります")
            containers.build(definition, tmp, runtime=runtime, cwd=self.kit)
            source = str(Path(definition).relative_to(self.kit))
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
        if not self.link_images or given is None:
            size = target.stat().st_size if target.is_file() else folder_stats(target)[1]
            self.fetched.append((rel, size))
        self.record(rel, source, item, checksum=target.is_file() and not target.is_symlink())
        self.say(f"[prepare] {rel}: staged from {source} / イメージを置きました")


def prepare(shared: str | Path, *, only: str | None = None, skip: tuple[str, ...] = (), images: list = (),
            link_images: bool = False, no_images: bool = False, bert_dir: str | Path | None = None,
            group: str | None = None, deep: bool = False, say: Callable[[str], None] = print) -> Preparer:
    """Stage everything into `shared`; returns the Preparer (its `fetched` and `problems`)."""
    kit = project_root(Path(__file__).parent) or Path.cwd()
    shared = Path(shared).expanduser().resolve()
    shared.mkdir(parents=True, exist_ok=True)
    os.environ.pop(download.SHARED_ENV, None)   # staging reads no other shared folder
    site = shared / SITE_FILE
    if not site.exists() and (kit / "sbatch" / SITE_FILE).is_file():
        shutil.copyfile(kit / "sbatch" / SITE_FILE, site)
        say(f"[prepare] {site}: copied from sbatch/{SITE_FILE}: fill it in (partition, GPU type, ...) / "
            "サイト設定ファイルをコピーしました。値を書き込んでください")
    items = catalogue(kit, only, tuple(skip), images=not no_images)
    worker = Preparer(shared, kit, images=list(images), link_images=link_images,
                      bert_dir=Path(bert_dir).expanduser() if bert_dir else None, deep=deep, say=say)
    worker.manifest["profiles"] = sorted(set(worker.manifest.get("profiles", [])) | ({only} if only else set(PROFILES)))
    for item in items:
        worker.stage(item)
    write_manifest(shared, worker.manifest)   # before the group pass, which must cover it too
    changed = share(shared, group, say)
    say(f"[prepare] {shared}: group-readable, not group-writable ({changed} mode/group changes) / "
        "グループから読めるようにしました")
    return worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursekit prepare",
        description="Stage the corpora, models and images that the notebooks' profiles name in a shared folder "
                    "(run once by the instructor, on a machine with network). Resumable; verified against "
                    "SHARED_DIR/manifest.json.")
    parser.add_argument("shared", type=Path, metavar="SHARED_DIR", help="the shared folder (created if needed)")
    parser.add_argument("--only", choices=PROFILES, help="stage only what this profile needs (e.g. tiny)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="leave out an item (livedoor, small_parallel_enja, alt, bert-japanese, bart-base, "
                             "wikipedia, keras-bert, transformers); repeatable")
    parser.add_argument("--images", nargs="+", default=[], type=Path, metavar="PATH",
                        help="prebuilt images (.sif files or sandbox folders) to copy, matched by name "
                             "(keras-bert, transformers), instead of building them here")
    parser.add_argument("--link-images", action="store_true",
                        help="link the --images instead of copying them (they must stay readable to students)")
    parser.add_argument("--no-images", action="store_true", help="stage no images")
    parser.add_argument("--bert-japanese", type=Path, metavar="FOLDER",
                        help="folder holding yoheikikuta's files downloaded with a browser (Google Drive)")
    parser.add_argument("--group", help="Unix group of the shared folder (the students' group)")
    parser.add_argument("--deep", action="store_true", help="also checksum images already there (slow)")
    parser.add_argument("--list", action="store_true", help="show what would be staged and what is there; fetch nothing")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if args.list:
        kit = project_root(Path(__file__).parent) or Path.cwd()
        shared = args.shared.expanduser()
        manifest = read_manifest(shared)
        for item in catalogue(kit, args.only, tuple(args.skip), images=not args.no_images):
            rels = [r for r, e in manifest["files"].items() if e.get("item") == item.name]
            state = "there" if rels and item.name not in manifest.get("missing", {}) else "missing"
            print(f"{item.name:<22} {state:<8} {item.folder:<28} {', '.join(sorted(item.used_by))}: {item.note}")
        return 0
    try:
        worker = prepare(args.shared, only=args.only, skip=tuple(args.skip), images=args.images,
                         link_images=args.link_images, no_images=args.no_images, bert_dir=args.bert_japanese,
                         group=args.group, deep=args.deep, say=say)
    except (OSError, KeyError, params.ParameterError) as exc:
        print(f"coursekit prepare: error: {exc}", file=sys.stderr)
        return 2
    total = sum(size for _, size in worker.fetched)
    say(f"[prepare] fetched now: {len(worker.fetched)} file(s), {human(total)} / 今回取得: {len(worker.fetched)} 件")
    for rel, size in worker.fetched:
        say(f"  {rel}  {human(size)}")
    if worker.problems:
        say(f"[prepare] NOT staged / 準備できなかったもの ({len(worker.problems)}):")
        for name, why in worker.problems.items():
            say(f"  {name}: {why}")
        say(f"[prepare] run the same command again when fixed: it fetches only what is missing / "
            "直したら同じコマンドをもう一度実行してください(足りないものだけ取ります)")
        return 1
    say(f"[prepare] {args.shared}: complete / 準備できました. Students: source {args.shared}/{SITE_FILE}, then "
        "python -m coursekit doctor")
    return 0
