"""English-Japanese parallel corpora for notebook 03, as a `datasets.DatasetDict` of {"en", "ja"}.

Three sources, one call (`load_corpus`):

- the ALT Parallel Corpus release (NICT): `ALT-Parallel-Corpus-20191206.zip` with `data_<lang>.txt`
  files of `SNT.<article>.<n><TAB>sentence` lines, split by article with URL-train/dev/test.txt
  beside it. Accepted as the zip file, as an unpacked folder, or downloaded (empty source);
- plain parallel text files `train.en`/`train.ja`, `dev.*`, `test.*` (one sentence a line), e.g.
  small_parallel_enja, whose Japanese is split into words by KyTea: the spaces are removed;
- a Hugging Face hub dataset (`hf:mutiyama/alt`) where the hub is reachable;
- the name `small_parallel_enja`: those six files downloaded from GitHub (odashi/small_parallel_enja,
  50,000 short sentence pairs from the Tanaka Corpus; the tiny profile's corpus: a small model learns
  to translate them in minutes, which ALT's long news sentences do not allow).

Problems are never a silent misalignment: missing files and mismatched line counts raise errors,
ids present in one language only and empty sentences are dropped and counted in the report, and a
source sentence found in two splits (trained on, then tested on) is counted there with a warning.
"""
from __future__ import annotations

import re
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from . import download as _download

ALT_PAGE = "https://www2.nict.go.jp/astrec-att/member/mutiyama/ALT/"
ALT_RELEASE = "ALT-Parallel-Corpus-20191206"
ALT_URLS = {name: ALT_PAGE + name for name in
            (f"{ALT_RELEASE}.zip", "URL-train.txt", "URL-dev.txt", "URL-test.txt")}
SPLITS = {"train": "train", "dev": "validation", "test": "test"}  # file name -> DatasetDict key
HUB_PREFIX = "hf:"
SMALL_PARALLEL = "small_parallel_enja"  # a data_dir naming this corpus downloads it
SMALL_PARALLEL_URL = "https://raw.githubusercontent.com/odashi/small_parallel_enja/master/"
# in the prepared shared folder ($COURSEKIT_SHARED; python -m coursekit prepare)
ALT_FOLDER = "data/alt"                               # the release zip and URL-train/dev/test.txt
SMALL_PARALLEL_FOLDER = f"data/{SMALL_PARALLEL}"      # train/dev/test.en and .ja

# A space with a non-ASCII (Japanese) character on either side is a word boundary added by a tokenizer.
_JA_SPACE = re.compile(r"(?<=[^\x00-\x7f]) +(?=\S)|(?<=\S) +(?=[^\x00-\x7f])")


def undo_japanese_spacing(text: str) -> str:
    """'誰 が 一番 に 着 く か' -> '誰が一番に着くか'; spaces between ASCII words are kept."""
    return _JA_SPACE.sub("", text.strip())


# ----------------------------------------------------------------------------------------- ALT
def _alt_member(root, lang: str):
    """The data_<lang>.txt inside an ALT zip (zipfile.Path) or unpacked folder (Path)."""
    candidates = [root / f"data_{lang}.txt", root / ALT_RELEASE / f"data_{lang}.txt"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"data_{lang}.txt not found in {root} (looked for "
                            f"{', '.join(str(c) for c in candidates)}); is this the ALT release? / "
                            f"data_{lang}.txt が見つかりません。ALT の配布ファイルか確かめてください")


def parse_alt_lines(text: str, stats: Counter | None = None) -> dict[str, str]:
    """`SNT.<article>.<n><TAB>sentence` lines -> {"<article>.<n>": sentence}. Lines that are not
    sentence lines are counted in stats["bad_lines"]; a missing sentence is kept as ""."""
    stats = Counter() if stats is None else stats
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip("\r\n\ufeff")
        if not line.strip():
            continue
        key, _, sentence = line.partition("\t")
        parts = key.strip().split(".")
        if len(parts) != 3 or parts[0] != "SNT":
            stats["bad_lines"] += 1
            continue
        out[f"{parts[1]}.{parts[2]}"] = sentence.strip()
    return out


def parse_split_file(text: str) -> list[str]:
    """URL-<split>.txt: `URL.<article><TAB>url` lines -> article ids in file order."""
    ids = []
    for line in text.splitlines():
        key = line.strip().split("\t")[0]
        if key.startswith("URL."):
            ids.append(key[4:])
    return ids


def _find_alt(path: Path) -> tuple[object, Path]:
    """(root of the release's files, folder holding URL-*.txt) for a zip, a folder or its parent."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"ALT corpus not found at {path}: download {ALT_URLS[ALT_RELEASE + '.zip']} "
                                f"and URL-train/dev/test.txt from {ALT_PAGE} into one folder / ALT コーパスが"
                                "見つかりません。zip と URL-train/dev/test.txt を同じフォルダにダウンロードしてください")
    if path.is_dir() and (path / f"{ALT_RELEASE}.zip").exists():  # the folder holding the release
        path = path / f"{ALT_RELEASE}.zip"
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a zip file (or a truncated one): pass the ALT release's zip, the "
                             "folder holding it, or a folder of train/dev/test files (unpack an archive first) / "
                             "zip ファイルではないか、途中で切れています")
        root = zipfile.Path(zipfile.ZipFile(path))
    else:
        root = path
    split_dir = next((d for d in (path.parent, path, path.parent.parent)
                      if (d / "URL-train.txt").is_file()), None)
    if split_dir is None:
        raise FileNotFoundError(f"URL-train.txt / URL-dev.txt / URL-test.txt not found beside {path}: "
                                f"download them from {ALT_PAGE} / 分割のファイルが見つかりません。"
                                "同じフォルダにダウンロードしてください")
    return root, split_dir


def load_alt(path: str | Path, src: str = "en", tgt: str = "ja"):
    """The ALT release (zip file or unpacked folder) -> (DatasetDict train/validation/test, report)."""
    import datasets

    root, split_dir = _find_alt(path)
    stats: Counter = Counter()
    text = {lang: parse_alt_lines(_read_text(_alt_member(root, lang)), stats) for lang in (src, tgt)}
    report = {"source": str(path), "format": "alt", "bad_lines": stats["bad_lines"],
              f"only_in_{src}": len(text[src].keys() - text[tgt].keys()),
              f"only_in_{tgt}": len(text[tgt].keys() - text[src].keys()),
              f"empty_{src}": 0, f"empty_{tgt}": 0, "not_in_any_split": 0}
    article_split = {}
    for name, key in SPLITS.items():
        split_file = split_dir / f"URL-{name}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file} not found: download it from {ALT_PAGE} / "
                                    f"{split_file.name} が見つかりません")
        for article in parse_split_file(_read_text(split_file)):
            article_split.setdefault(article, []).append(key)
    rows = {key: {src: [], tgt: []} for key in SPLITS.values()}
    for sid, sentence in text[src].items():  # in the order of the source file
        if sid not in text[tgt]:
            continue
        pair = {src: sentence, tgt: text[tgt][sid]}
        empty = [lang for lang in (src, tgt) if not pair[lang]]
        for lang in empty:
            report[f"empty_{lang}"] += 1
        if empty:
            continue
        keys = article_split.get(sid.split(".")[0])
        if not keys:
            report["not_in_any_split"] += 1
        for key in keys or ():
            for lang in (src, tgt):
                rows[key][lang].append(pair[lang])
    odd = {k: v for k, v in report.items() if k.startswith(("only_in_", "bad_lines", "not_in")) and v}
    if odd:
        _download.data_warning(f"ALT {path}", "sentences dropped: "
                               + ", ".join(f"{k}={v}" for k, v in odd.items()), odd)
    _count_overlaps(f"ALT {path}", {key: r[src] for key, r in rows.items()}, report)
    return datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in rows.items()}), report


# --------------------------------------------------------------------------- plain parallel files
def load_parallel(folder: str | Path, src: str = "en", tgt: str = "ja", detokenize_ja: bool = True):
    """train/dev/test.<lang> files (one sentence a line) -> (DatasetDict, report). Lines are paired
    by position: the two languages must have the same number of lines."""
    import datasets

    folder = Path(folder).expanduser()
    if folder.is_file():
        raise ValueError(f"{folder} is a file, not a folder of train/dev/test.{src} and .{tgt} files (unpack an "
                         "archive first) / フォルダではなくファイルです。展開したフォルダを渡してください")
    report = {"source": str(folder), "format": "parallel", "empty_pairs": 0, "detokenized_ja": detokenize_ja}
    missing = [f"{name}.{lang}" for name in SPLITS for lang in (src, tgt) if not (folder / f"{name}.{lang}").is_file()]
    if missing:
        raise FileNotFoundError(f"parallel corpus file(s) missing in {folder}: {', '.join(missing)} "
                                f"(expected train/dev/test.{src} and .{tgt}) / 対訳コーパスのファイルが足りません")
    out, sources = {}, {}
    for name, key in SPLITS.items():
        paths = {lang: folder / f"{name}.{lang}" for lang in (src, tgt)}
        lines = {lang: _read_text(p).splitlines() for lang, p in paths.items()}
        if len(lines[src]) != len(lines[tgt]):
            raise ValueError(f"{paths[src].name} has {len(lines[src])} lines but {paths[tgt].name} has "
                             f"{len(lines[tgt])}: the files are not aligned line by line / "
                             "行数が合わないので、1 行ずつの対訳になっていません")
        rows = {src: [], tgt: []}
        for a, b in zip(lines[src], lines[tgt]):
            a, b = a.strip(), b.strip()
            if tgt == "ja" and detokenize_ja:
                b = undo_japanese_spacing(b)
            if not a or not b:
                report["empty_pairs"] += 1
                continue
            rows[src].append(a)
            rows[tgt].append(b)
        out[key], sources[key] = datasets.Dataset.from_dict(rows), rows[src]
    if report["empty_pairs"]:
        _download.data_warning(f"parallel corpus {folder}", f"{report['empty_pairs']} pair(s) with an "
                               "empty side dropped", {"empty_pairs": report["empty_pairs"]})
    _count_overlaps(f"parallel corpus {folder}", sources, report)
    return datasets.DatasetDict(out), report


def split_overlaps(splits: dict[str, list[str]]) -> dict[str, int]:
    """How many sentences of a split also stand in an earlier one (train, validation, test order):
    {"validation_in_train": n, "test_in_train": n, "test_in_validation": n}."""
    names = [k for k in ("train", "validation", "test") if k in splits]
    out = {}
    for i, later in enumerate(names):
        for earlier in names[:i]:
            seen = set(splits[earlier])
            out[f"{later}_in_{earlier}"] = sum(1 for s in splits[later] if s in seen)
    return out


def _count_overlaps(where: str, splits: dict[str, list[str]], report: dict) -> None:
    """Count source sentences that stand in two splits into `report`; a counted warning when there are any."""
    overlaps = split_overlaps(splits)
    report.update(overlaps)
    found = {k: v for k, v in overlaps.items() if v}
    if found:
        _download.data_warning(where, f"{sum(found.values())} source sentence(s) stand in two splits (a model is "
                               "then tested on sentences it was trained on): "
                               + ", ".join(f"{k}={v}" for k, v in found.items()), found,
                               ja="同じ文が二つの分割(学習とテストなど)に入っています")


# ------------------------------------------------------------------------------ hub and download
def load_hub(name: str = "mutiyama/alt", config: str = "alt-parallel", src: str = "en", tgt: str = "ja"):
    """The ALT parallel corpus from the Hugging Face hub (needs the hub; not used offline)."""
    import datasets

    raw = datasets.load_dataset(name, config)
    out, sources, report = {}, {}, {"source": f"{HUB_PREFIX}{name}", "format": "hub", "empty_pairs": 0}
    for split, ds in raw.items():
        pairs = [(t.get(src) or "", t.get(tgt) or "") for t in ds["translation"]]
        keep = [(a.strip(), b.strip()) for a, b in pairs if a.strip() and b.strip()]
        report["empty_pairs"] += len(pairs) - len(keep)
        key = SPLITS.get(split, split)
        sources[key] = [a for a, _ in keep]
        out[key] = datasets.Dataset.from_dict({src: sources[key], tgt: [b for _, b in keep]})
    _count_overlaps(f"hub {name}", sources, report)
    return datasets.DatasetDict(out), report


def download_alt(cache_dir: str | Path, base_url: str = "") -> Path:
    """The ALT release and its split files in cache_dir, each downloaded once, complete and verified
    (the zip read through, the split files UTF-8 text, no HTML page), under the cache's lock; return
    the folder. `base_url` empty: NICT's page, or $COURSEKIT_MIRROR."""
    folder = Path(cache_dir).expanduser()
    hint = (f"download the ALT release and URL-train/dev/test.txt from {ALT_PAGE} by hand into one "
            "folder and pass it as data_dir, or pass a folder of train.en/train.ja files")
    for name, url in ALT_URLS.items():
        url = base_url.rstrip("/") + "/" + name if base_url else _download.source_url(url)
        _download.fetch(url, folder, name, hint=hint, staged=f"{ALT_FOLDER}/{name}")
    return folder


def download_small_parallel(cache_dir: str | Path, base_url: str = "", src: str = "en",
                            tgt: str = "ja") -> Path:
    """small_parallel_enja's train/dev/test.<lang> files in cache_dir/small_parallel_enja, each
    downloaded once and verified (UTF-8 text, no HTML page); return the folder. `base_url` empty:
    GitHub, or $COURSEKIT_MIRROR."""
    folder = Path(cache_dir).expanduser() / SMALL_PARALLEL
    hint = (f"download train/dev/test.{src} and .{tgt} from {SMALL_PARALLEL_URL} by hand into one folder "
            "and pass the folder as data_dir")
    for split in SPLITS:
        for lang in (src, tgt):
            name = f"{split}.{lang}"
            url = base_url.rstrip("/") + "/" + name if base_url else _download.source_url(SMALL_PARALLEL_URL + name)
            _download.fetch(url, folder, name, hint=hint, verify=_download.verify_text,
                            staged=f"{SMALL_PARALLEL_FOLDER}/{name}")
    return folder


def _read_text(path) -> str:
    """A file of the corpus as strict UTF-8 (never replacement characters); errors name the file."""
    try:
        raw = path.read_bytes()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:   # a member of a damaged zip
        raise ValueError(f"{path} cannot be read from the zip ({type(exc).__name__}: {exc}): the archive is "
                         "damaged or truncated; download it again / zip の中のファイルが読めません。"
                         "ダウンロードし直してください") from None
    return _download.decode_utf8(raw, path)


def load_corpus(source: str | Path = "", cache_dir: str | Path = "~/.cache/coursekit/alt",
                src: str = "en", tgt: str = "ja"):
    """One entry point: "" downloads ALT (or from $COURSEKIT_MIRROR); a URL of a folder holding the
    release's files downloads from there; "hf:NAME" reads the hub; a folder of train.en/train.ja is a
    parallel corpus; "small_parallel_enja" (no such folder here) downloads that corpus into cache_dir;
    anything else is an ALT release (zip or folder). Returns (DatasetDict, report).

    ALT ("") and small_parallel_enja are read from the prepared shared folder ($COURSEKIT_SHARED/data/
    alt, .../small_parallel_enja) when it holds them, before the cache and any download; a node that
    cannot download stops first, naming the missing file and the prepare command (NotStagedError)."""
    source = str(source or "")
    if source == SMALL_PARALLEL and not Path(source).exists():
        folder = _download.staged(SMALL_PARALLEL_FOLDER, *(f"{n}.{lang}" for n in SPLITS for lang in (src, tgt)))
        return load_parallel(folder or download_small_parallel(cache_dir, src=src, tgt=tgt), src=src, tgt=tgt)
    if not source and _download.staged(ALT_FOLDER, *ALT_URLS):
        return load_alt(_download.staged(ALT_FOLDER), src=src, tgt=tgt)
    if source.startswith(HUB_PREFIX):
        return load_hub(source[len(HUB_PREFIX):], src=src, tgt=tgt)
    if not source or _download.is_url(source):
        base = source.rsplit("/", 1)[0] if source.endswith(".zip") else source
        return load_alt(download_alt(cache_dir, base), src=src, tgt=tgt)
    path = Path(source).expanduser()
    if path.is_dir() and (path / f"train.{src}").exists():
        return load_parallel(path, src=src, tgt=tgt)
    return load_alt(path, src=src, tgt=tgt)


def describe(dsd, report: dict) -> list[str]:
    """Readable lines: pairs per split and every count of dropped or odd input."""
    lines = [f"{split:<11} {len(ds):>7,} pairs / 文の組" for split, ds in dsd.items()]
    dropped = {k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool) and v}
    if dropped:
        lines.append("dropped/odd input / 除いた・変わった入力: " + ", ".join(f"{k}={v:,}" for k, v in dropped.items()))
    return lines
