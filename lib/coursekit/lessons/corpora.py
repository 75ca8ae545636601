"""Pre-training corpora: raw text (a Wikipedia dump, the livedoor articles, a folder of .txt files)
to the standard layout, one sentence per line and a blank line between documents.

    docs = read_source("jawiki-latest-pages-articles.xml.bz2", work_dir)   # or a folder, or "livedoor"
    layout = write_layout(docs, "corpus/", valid_fraction=0.01, test_fraction=0.01, shard_sentences=500_000)
    layout.files["train"]       # [corpus/train/train-00000.txt, ...]

A Wikipedia dump goes through `wikiextractor` (templates expanded, markup removed) in a subprocess.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .download import CorpusError  # noqa: F401  (corpora.CorpusError, as before)

WIKI_DUMP_URL = "https://dumps.wikimedia.org/jawiki/latest/jawiki-latest-pages-articles.xml.bz2"
WIKI_FOLDER = "data/wikipedia"  # in the prepared shared folder ($COURSEKIT_SHARED; python -m coursekit prepare)
WIKI_HINT = (f"download the Japanese Wikipedia dump (about 4 GB) on the cluster's login node:\n"
             f"  wget -P data/ {WIKI_DUMP_URL}\n"
             "and pass its path with -p corpus data/jawiki-latest-pages-articles.xml.bz2, or pass a folder of "
             ".txt files, or 'livedoor'\n"
             "ログインノードで日本語 Wikipedia のダンプ(約 4 GB)をダウンロードして -p corpus で渡すか、"
             ".txt のフォルダ、または 'livedoor' を渡してください")
SPLITS = ("train", "valid", "test")

# A sentence ends after 。！？ (and a run of them, e.g. ！？), unless a closing bracket or quote follows,
# which stays with its sentence: 「はい。」と言った。 -> one sentence.
_SENTENCE_END = re.compile(r"(?<=[。！？!?])(?![。！？!?」』）)\]】〕\"'])")


def split_sentences(text: str, min_chars: int = 1) -> list[str]:
    """Japanese sentence splitting: on newlines and after 。！？ (closing brackets kept with their
    sentence). Whitespace is stripped; sentences shorter than `min_chars` characters are dropped
    (wikiextractor's leftover headings such as "歴史." are a few characters long)."""
    out = []
    for line in text.splitlines():
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(sentence) >= max(1, min_chars):
                out.append(sentence)
    return out


# ----------------------------------------------------------------------------- sources
def extract_wikipedia(dump: str | Path, out_dir: str | Path, processes: int = 2) -> Path:
    """Run wikiextractor on a `*-pages-articles*.xml.bz2` dump into out_dir (JSON lines, one article
    per line, in out_dir/AA/wiki_00 ...); return out_dir. wikiextractor writes into a private folder
    beside out_dir, which gets a completion mark and is renamed into place once it exited cleanly; an
    out_dir with the mark is reused, one without it (an interrupted extraction) is extracted again."""
    from . import download

    dump = Path(dump).expanduser()
    if not dump.is_file():
        raise CorpusError(f"Wikipedia dump not found: {dump} / Wikipedia のダンプが見つかりません\n{WIKI_HINT}")
    out = Path(out_dir)
    if download.is_complete(out):
        print(f"wikiextractor output found in {out}, not extracting again / 抽出済みの結果を使います")
        return out
    if out.exists():
        print(f"{out} has no {download.COMPLETE_MARK} (an interrupted extraction): extracting again / "
              "前回の抽出が途中で止まっていたので、抽出し直します")
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    private = download.private_dir(out.parent, f".{out.name}-")
    try:
        cmd = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "--json", "-o", str(private),
               "--processes", str(max(1, processes)), "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(f"wikiextractor failed (exit {proc.returncode}) on {dump} / "
                              f"wikiextractor が失敗しました:\n{proc.stderr[-2000:]}")
        (private / download.COMPLETE_MARK).write_text(f"wikiextractor on {dump} at {time.ctime()}\n")
        os.replace(private, out)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return out


def read_wikiextractor(folder: str | Path) -> Iterator[str]:
    """Article texts (title line + body) from wikiextractor's --json output. A line that is cut off or
    damaged (not UTF-8, not one JSON object) raises CorpusError naming the file and the line."""
    for path in sorted(Path(folder).glob("*/wiki_*")):
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    article = json.loads(raw.decode("utf-8"))
                except ValueError as exc:   # UnicodeDecodeError and JSONDecodeError alike
                    raise CorpusError(f"{path}, line {number}: cut off or damaged ({type(exc).__name__}: {exc}); "
                                      f"delete {Path(folder)} to extract the dump again / wikiextractor の出力の "
                                      f"{number} 行目が途中で切れているか壊れています。フォルダを消して抽出し直してください"
                                      ) from None
                if article.get("text", "").strip():
                    yield f"{article['title']}\n{article['text']}"


def read_text_folder(folder: str | Path, pattern: str = "**/*.txt") -> Iterator[str]:
    """Every text file under `folder` is one document (LICENSE/README/CHANGES files skipped). Text is
    strict UTF-8, never replacement characters: files that are not UTF-8 or empty are skipped and
    counted in a CorpusWarning (recorded in the run's metrics.json)."""
    from collections import Counter

    from . import download

    skipped: Counter = Counter()
    example: dict[str, str] = {}
    for path in sorted(Path(folder).glob(pattern)):
        if path.is_file() and path.name not in ("LICENSE.txt", "README.txt", "CHANGES.txt"):
            try:
                text = download.decode_utf8(path.read_bytes(), path)
            except UnicodeDecodeError:
                skipped["not UTF-8"] += 1
                example.setdefault("not UTF-8", str(path))
                continue
            if not text.strip():
                skipped["empty file"] += 1
                example.setdefault("empty file", str(path))
                continue
            yield text
    if skipped:
        download.data_warning(f"text folder {folder}", f"skipped {sum(skipped.values())} unreadable file(s): "
                              + ", ".join(f"{n} {k} (e.g. {example[k]})" for k, n in sorted(skipped.items())),
                              {f"unreadable: {k}": n for k, n in skipped.items()})


def read_livedoor(data_dir: str | Path = "", cache_dir: str | Path = "~/.cache/coursekit/livedoor",
                  seed: int = 0, per_category: int = 0) -> list[str]:
    """The livedoor articles of notebook 02's TRAINING split (title + body), so the articles that
    notebook 02 validates and tests on never appear in pre-training. Downloaded into cache_dir when
    data_dir is ''. Notebook 02 splits all articles (per_category 0) or a balanced subset (its tiny
    profile: per_category 300), with the same seed: with `per_category` > 0 the articles that the
    subset's split holds out are left out too, so both of 02's splits stay unseen. The release holds a
    few articles twice under two ids: a copy of a held-out article is left out as well (same text, or the
    same first 510 characters, what notebook 02 reads)."""
    from . import livedoor

    corpus = livedoor.load_corpus(livedoor.locate(data_dir, cache_dir), max_chars=0)
    held_out: set[str] = set()
    for n in {0, max(0, per_category)}:
        _, val, test = livedoor.split(livedoor.balanced_subset(corpus, n, seed=seed), 0.1, 0.1, seed=seed)
        held_out |= {text[:510] for text in val.texts + test.texts}
    return [text for text in corpus.texts if text[:510] not in held_out]


def _is_livedoor(folder: Path) -> bool:
    from . import livedoor

    root = folder / "text" if (folder / "text").is_dir() else folder
    return any((root / c).is_dir() for c in livedoor.CATEGORIES)


def read_source(source: str, work_dir: str | Path, *, livedoor_cache: str = "~/.cache/coursekit/livedoor",
                processes: int = 2, seed: int = 0, per_category: int = 0) -> list[str]:
    """Documents from `source`: a Wikipedia dump (.xml.bz2 / .xml), "livedoor" (downloaded, or from
    $COURSEKIT_MIRROR), the URL of a livedoor tarball, a livedoor text/ folder (training split; see
    read_livedoor for `per_category`), or
    any folder of .txt files (one document per file). A dump given by a relative path that is not here
    (the default data/jawiki-...) is read from the prepared shared folder ($COURSEKIT_SHARED/data/
    wikipedia/) when it is there; missing there too, the error names the file and the prepare command."""
    from . import download

    if source == "livedoor" or (download.is_url(source) and source.endswith((".tar.gz", ".tgz"))):
        return read_livedoor("" if source == "livedoor" else source, livedoor_cache, seed=seed,
                             per_category=per_category)
    if source.endswith((".xml.bz2", ".xml")):
        source = download.shared_fallback(source, WIKI_FOLDER)
        if not Path(source).expanduser().exists() and download.shared_dir() is not None:
            raise CorpusError(str(download.not_staged(f"{WIKI_FOLDER}/{Path(source).name}", "the Wikipedia dump",
                                                      "a job never downloads the 4 GB dump")))
    path = Path(source).expanduser()
    if path.name.endswith((".xml.bz2", ".xml")):
        return list(read_wikiextractor(extract_wikipedia(path, Path(work_dir) / "wikiextractor", processes)))
    if not path.exists():
        raise CorpusError(f"corpus not found: {path} / コーパスが見つかりません\n{WIKI_HINT}")
    if not path.is_dir():
        raise CorpusError(f"corpus must be a Wikipedia dump (*.xml.bz2), a folder of .txt files or "
                          f"'livedoor', got the file {path} / コーパスには Wikipedia のダンプ、.txt のフォルダ、"
                          "'livedoor' のどれかを渡してください")
    if _is_livedoor(path):
        return read_livedoor(path, livedoor_cache, seed=seed, per_category=per_category)
    return list(read_text_folder(path))


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    """Where write_layout put the corpus, and how much of it there is."""
    root: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {split: {"documents": self.documents[split], "sentences": self.sentences[split],
                        "characters": self.characters[split], "files": len(self.files[split])}
                for split in SPLITS}


def write_layout(documents: Iterable[str], out_dir: str | Path, *, valid_fraction: float = 0.05,
                 test_fraction: float = 0.05, shard_sentences: int = 100_000, min_chars: int = 5,
                 max_documents: int = 0, seed: int = 0) -> Layout:
    """Split documents into sentences and write out_dir/{train,valid,test}/<split>-NNNNN.txt: one
    sentence per line, a blank line after each document, a new shard after `shard_sentences`
    sentences (a document is never cut). Documents are shuffled (seed) before the split.
    Raises CorpusError when no sentence is left or a split would be empty."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be "
                         "in [0, 1) with a sum below 1")
    docs = [s for s in (split_sentences(d, min_chars) for d in documents) if s]
    if not docs:
        raise CorpusError(f"empty corpus: no sentence of {min_chars} or more characters in the documents given / "
                          f"{min_chars} 文字以上の文が一つもありません")
    random.Random(seed).shuffle(docs)
    if max_documents > 0:
        docs = docs[:max_documents]
    n_valid = max(1, round(len(docs) * valid_fraction)) if valid_fraction else 0
    n_test = max(1, round(len(docs) * test_fraction)) if test_fraction else 0
    if len(docs) - n_valid - n_test < 1:
        raise CorpusError(f"only {len(docs)} document(s): too few for a training, validation and test split / "
                          f"文書が {len(docs)} 件しかなく、学習・検証・テストに分けられません")
    parts = {"valid": docs[:n_valid], "test": docs[n_valid:n_valid + n_test], "train": docs[n_valid + n_test:]}
    layout = Layout(Path(out_dir))
    for split in SPLITS:
        folder = layout.root / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{split}-*.txt"):
            old.unlink()
        files, shard, in_shard = [], None, 0
        for doc in parts[split]:
            if shard is None or in_shard >= shard_sentences:
                if shard:
                    shard.close()
                files.append(folder / f"{split}-{len(files):05d}.txt")
                shard, in_shard = open(files[-1], "w", encoding="utf-8"), 0
            shard.write("\n".join(doc) + "\n\n")
            in_shard += len(doc)
        if shard:
            shard.close()
        layout.files[split] = files
        layout.documents[split] = len(parts[split])
        layout.sentences[split] = sum(len(d) for d in parts[split])
        layout.characters[split] = sum(len(s) for d in parts[split] for s in d)
    return layout


def read_layout(files: Iterable[str | Path]) -> list[list[str]]:
    """Documents (lists of sentences) back from layout files."""
    from . import download

    docs = []
    for path in files:
        try:
            text = download.decode_utf8(Path(path).read_bytes(), path)
        except UnicodeDecodeError as exc:
            raise CorpusError(f"shard {path} is cut off or damaged ({exc.reason}): write the layout again / "
                              "シャードのファイルが壊れています。write_layout で書き直してください") from None
        for block in text.split("\n\n"):
            lines = [ln for ln in block.split("\n") if ln.strip()]
            if lines:
                docs.append(lines)
    return docs
