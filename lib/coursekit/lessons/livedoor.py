"""The livedoor news corpus (ldcc-20140209): download, load, verify, split, report.

    text_dir = livedoor.locate(data_dir="", cache_dir="~/.cache/coursekit")  # downloads when needed
    corpus = livedoor.load_corpus(text_dir, max_chars=510)
    print(corpus.summary())                        # counts per genre, what differs from the release
    train, val, test = livedoor.split(corpus, val_fraction=0.1, test_fraction=0.1, seed=0)

On disk: text/<category>/<category>-<id>.txt, 9 categories, 7,367 articles; a LICENSE.txt in every
category and README.txt / CHANGES.txt at the top are not articles. Each article: line 1 URL, line 2
timestamp, line 3 title, then the body. Text = title + body (lines 1-2 dropped), capped at max_chars.

    full_texts(test)                               # the same articles without the cap (an uncapped baseline)
    accuracy_interval(0.9, len(test))              # standard error and 95% interval of a test accuracy
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import download as _download
from .download import CorpusError  # noqa: F401  (livedoor.CorpusError, as before)

URL = "https://www.rondhuit.com/download/ldcc-20140209.tar.gz"
ARCHIVE = "ldcc-20140209.tar.gz"
SHARED_FOLDER = "data/livedoor"   # in the prepared shared folder: the tarball and its unpacked text/
# The release's article counts per category (sum 7,367).
EXPECTED_COUNTS = {
    "dokujo-tsushin": 870, "it-life-hack": 870, "kaden-channel": 864, "livedoor-homme": 511,
    "movie-enter": 870, "peachy": 842, "smax": 870, "sports-watch": 900, "topic-news": 770,
}
CATEGORIES = tuple(sorted(EXPECTED_COUNTS))
NOT_ARTICLES = {"LICENSE.txt", "README.txt", "CHANGES.txt"}
# Japanese names for plots and tables.
JAPANESE_NAMES = {
    "dokujo-tsushin": "独女通信", "it-life-hack": "ITライフハック", "kaden-channel": "家電チャンネル",
    "livedoor-homme": "ライブドアHOMME", "movie-enter": "映画エンタメ", "peachy": "Peachy(女性)",
    "smax": "エスマックス(スマホ)", "sports-watch": "スポーツ", "topic-news": "トピックニュース",
}
DOWNLOAD_HINT = (f"download {URL} and unpack it (tar xzf {ARCHIVE}), then pass the unpacked text/ "
                 "folder as data_dir, or leave data_dir empty to let the kit download it\n"
                 f"{URL} をダウンロードして展開し(tar xzf {ARCHIVE})、text/ フォルダを -p data_dir で渡すか、"
                 "data_dir を空にして教材にダウンロードさせてください")


@dataclass
class Corpus:
    texts: list[str]
    labels: list[int]                 # index into label_names
    label_names: list[str]            # category folder names, sorted
    paths: list[str]
    lengths: list[int] = field(default_factory=list)      # characters of title + body before the cap
    problems: Counter = field(default_factory=Counter)    # kind of skipped file -> count
    examples: dict = field(default_factory=dict)          # kind -> first few paths
    differences: list[str] = field(default_factory=list)  # how the counts differ from the release

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        c = Counter(self.labels)
        return {name: c[i] for i, name in enumerate(self.label_names)}

    def subset(self, index) -> "Corpus":
        index = list(index)
        return Corpus([self.texts[i] for i in index], [self.labels[i] for i in index],
                      self.label_names, [self.paths[i] for i in index],
                      [self.lengths[i] for i in index] if self.lengths else [])

    def summary(self) -> str:
        lines = [f"{len(self)} articles in {len(self.label_names)} categories / "
                 f"{len(self.label_names)} ジャンル、{len(self)} 本の記事"]
        lines += [f"  {name:<16} {n:>5}" for name, n in self.counts().items()]
        for kind, n in sorted(self.problems.items()):
            lines.append(f"  skipped {n} file(s) / 読めずに飛ばしたファイル: {kind} "
                         f"(e.g. {', '.join(self.examples[kind][:2])})")
        lines += [f"  differs from the release / 配布元と違う点: {d}" for d in self.differences]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- getting the data
def download(cache_dir: str | Path, url: str = "") -> Path:
    """The tarball in cache_dir, downloaded once (progress bar), complete and verified (a readable
    tar.gz to its end, not an HTML page), under the cache's lock; return its path. `url` empty: the
    release, or the same file on $COURSEKIT_MIRROR. A damaged cached tarball is fetched again."""
    url = url or _download.source_url(URL)
    try:
        return _download.fetch(url, cache_dir, Path(url).name or ARCHIVE, hint=DOWNLOAD_HINT,
                               staged=f"{SHARED_FOLDER}/text")
    except _download.DownloadError as err:
        raise CorpusError(str(err)) from err


def _check_unpacked(text: Path) -> None:
    if not any((text / c).is_dir() for c in CATEGORIES):
        raise CorpusError(f"{text} holds none of the livedoor categories: is the archive the "
                          f"livedoor news corpus? / livedoor のジャンルのフォルダがありません\n{DOWNLOAD_HINT}")


def _unpack(archive: Path, cache: Path) -> Path:
    """cache/text, unpacked safely from the tarball (into a private folder, checked, then renamed into
    place; the cache's complete text/ when it already has one)."""
    try:
        return _download.unpack(archive, cache, "text", _download.extract_tar, _check_unpacked)
    except _download.DownloadError as err:
        raise CorpusError(str(err)) from None


def _local_archive(archive: Path, cache_dir: str | Path) -> Path:
    """A tarball given where the text/ folder is expected (a lab's copy of the release): checked to its
    end, then unpacked into cache_dir like a download; any other file is refused, named."""
    if not archive.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        raise CorpusError(f"data_dir {archive} is a file, not the corpus's text/ folder or its tarball / "
                          f"data_dir {archive} はファイルです。text/ フォルダか .tar.gz を渡してください\n{DOWNLOAD_HINT}")
    try:
        _download.verify_file(archive)
    except (ValueError, OSError) as exc:
        raise CorpusError(f"data_dir {archive} cannot be unpacked: {exc} (an interrupted download or copy?) / "
                          f"{archive} は壊れているか途中で切れています。ダウンロードし直してください") from None
    return _unpack(archive, Path(cache_dir).expanduser())


def locate(data_dir: str | Path = "", cache_dir: str | Path = "~/.cache/coursekit/livedoor",
           url: str = "") -> Path:
    """The corpus's text/ folder: data_dir when given (the text/ folder or its parent; the tarball, or
    a URL of it, is unpacked into cache_dir), else the prepared shared folder's copy ($COURSEKIT_SHARED/
    data/livedoor/text), else the download cache: downloaded and unpacked on first use, from `url` or
    the release (or $COURSEKIT_MIRROR). The cache is used only when its unpacking completed; concurrent
    jobs wait for the one that fills it. A node that cannot download stops before trying, naming the
    missing file and the prepare command (download.NotStagedError, as CorpusError)."""
    if data_dir and _download.is_url(str(data_dir)):
        url, data_dir = str(data_dir), ""
    if data_dir:
        path = Path(data_dir).expanduser()
        if path.is_file():
            return _local_archive(path, cache_dir)
        if (path / "text").is_dir() and not any((path / c).is_dir() for c in CATEGORIES):
            path = path / "text"
        if not path.is_dir():
            raise CorpusError(f"livedoor corpus folder not found: {path} / "
                              f"livedoor コーパスのフォルダが見つかりません\n{DOWNLOAD_HINT}")
        return path
    shared = _download.staged(f"{SHARED_FOLDER}/text", complete=True)
    if shared is not None and not url:
        return shared
    cache = Path(cache_dir).expanduser()
    if _download.is_complete(cache / "text"):
        return cache / "text"
    return _unpack(download(cache, url), cache)


# ----------------------------------------------------------------------------- reading
def read_article(path: Path, max_chars: int = 510) -> tuple[str | None, str | None, int]:
    """(text, None, length) for a good article (title + body, lines 1-2 dropped, capped at max_chars;
    length before the cap), (None, problem, 0) for a file to skip."""
    raw = path.read_bytes()
    if not raw.strip():
        return None, "empty file", 0
    try:
        content = raw.decode("utf-8-sig")  # strict: never replacement characters
    except UnicodeDecodeError:
        return None, "not UTF-8", 0
    lines = [ln.strip() for ln in content.splitlines()]
    if len(lines) < 3:
        return None, "fewer than 3 lines (URL, date, title)", 0
    text = "\n".join(ln for ln in lines[2:] if ln)
    if not text:
        return None, "no title or body", 0
    return (text[:max_chars] if max_chars and max_chars > 0 else text), None, len(text)


def load_corpus(data_dir: str | Path, max_chars: int = 510, categories=None) -> Corpus:
    """Read every article under data_dir (text/<category>/*.txt), skipping LICENSE/README/CHANGES.

    Bad files are counted in `problems` (with examples), never fatal; counts are compared with the
    release (`differences`). A category is a folder holding at least one readable article: a folder
    without one (an empty category, a link back to the corpus folder) is no class, and a counted
    warning names it. A missing folder or no article at all raises CorpusError."""
    from tqdm.auto import tqdm

    root = Path(data_dir).expanduser()
    if root.is_file():
        raise CorpusError(f"{root} is a file, not the corpus's text/ folder (a tarball? livedoor.locate "
                          f"unpacks it) / {root} はファイルです。text/ フォルダを渡してください\n{DOWNLOAD_HINT}")
    if not root.is_dir():
        raise CorpusError(f"livedoor corpus folder not found: {root} / "
                          f"livedoor コーパスのフォルダが見つかりません\n{DOWNLOAD_HINT}")
    folders, seen, not_classes = [], {root.resolve(), *root.resolve().parents}, []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if categories is not None and folder.name not in set(categories):
            continue
        if folder.resolve() in seen:   # a link back to the corpus (or above it), or to a folder read already
            not_classes.append(f"{folder.name} (a link to {folder.resolve()})")
            continue
        seen.add(folder.resolve())
        folders.append(folder)
    read: dict[str, list] = {folder.name: [] for folder in folders}
    problems, examples = Counter(), {}
    files = [(folder.name, f) for folder in folders for f in sorted(folder.glob("*.txt"))
             if f.name not in NOT_ARTICLES]
    for name, path in tqdm(files, desc="read articles", mininterval=1.0):
        text, problem, length = read_article(path, max_chars)
        if problem:
            problems[problem] += 1
            examples.setdefault(problem, []).append(str(path))
        else:
            read[name].append((text, str(path), length))
    not_classes += [f"{name} (no readable article)" for name, articles in read.items() if not articles]
    label_names = [name for name, articles in read.items() if articles]
    if not label_names:
        raise CorpusError(f"no category folder with a readable article in {root} (expected text/<category>/"
                          f"<category>-<id>.txt, e.g. {root}/sports-watch/; {dict(problems)}) / 読める記事の"
                          f"入ったジャンルのフォルダがありません\n{DOWNLOAD_HINT}")
    corpus = Corpus([], [], label_names, [], [], problems, examples)
    for label, name in enumerate(label_names):
        for text, path, length in read[name]:
            corpus.texts.append(text)
            corpus.labels.append(label)
            corpus.paths.append(path)
            corpus.lengths.append(length)
    if not_classes:
        _download.data_warning(
            f"livedoor {root}", f"{len(not_classes)} folder(s) hold no article and are not categories: "
            + ", ".join(sorted(not_classes)), {"folders without articles": len(not_classes)})
    corpus.differences = compare_counts(corpus.counts(), categories)
    if corpus.problems:
        _download.data_warning(
            f"livedoor {root}", f"skipped {sum(corpus.problems.values())} unreadable file(s): "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(corpus.problems.items()))
            + " (e.g. " + ", ".join(corpus.examples[k][0] for k in sorted(corpus.problems)) + ")",
            {f"unreadable: {k}": n for k, n in corpus.problems.items()})
    missing = [d for d in corpus.differences if d.startswith("missing category")]
    extra = [d for d in corpus.differences if d.startswith("unknown category")]
    if missing or extra:
        _download.data_warning(
            f"livedoor {root}", f"the corpus differs from the release: {len(missing)} missing and "
            f"{len(extra)} extra categor(ies): " + "; ".join(missing + extra),
            {"missing categories": len(missing), "extra categories": len(extra)})
    return corpus


def full_texts(corpus: Corpus) -> list[str]:
    """The articles of `corpus` read again without the character cap (title + body, every character),
    in the same order: what an uncapped baseline trains and is tested on."""
    texts = []
    for path in corpus.paths:
        text, problem, _ = read_article(Path(path), max_chars=0)
        if problem:
            raise CorpusError(f"{path} can no longer be read ({problem}) / このファイルが読めなくなりました")
        texts.append(text)
    return texts


def compare_counts(counts: dict[str, int], categories=None) -> list[str]:
    """What differs from the release's 9 categories / 7,367 articles, one sentence each."""
    expected = {c: n for c, n in EXPECTED_COUNTS.items() if categories is None or c in set(categories)}
    out = [f"missing category {c!r} (expected {n} articles)" for c, n in expected.items() if c not in counts]
    out += [f"unknown category {c!r} ({n} articles)" for c, n in counts.items() if c not in expected]
    out += [f"{c}: {counts[c]} articles, the release has {n}" for c, n in expected.items()
            if c in counts and counts[c] != n]
    return out


# ----------------------------------------------------------------------------- subsets and splits
def balanced_subset(corpus: Corpus, per_category: int, seed: int = 0) -> Corpus:
    """At most per_category articles of each category (random, reproducible); 0 keeps everything."""
    if per_category <= 0:
        return corpus
    rng = random.Random(seed)
    keep: list[int] = []
    for label in range(len(corpus.label_names)):
        idx = [i for i, y in enumerate(corpus.labels) if y == label]
        keep += sorted(rng.sample(idx, min(per_category, len(idx))))
    sub = corpus.subset(sorted(keep))
    sub.problems, sub.examples, sub.differences = corpus.problems, corpus.examples, corpus.differences
    return sub


def split(corpus: Corpus, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0):
    """Stratified train / validation / test corpora (same seed, same split on every machine)."""
    from sklearn.model_selection import train_test_split

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in "
                         "(0, 1) with a sum below 1")
    counts = Counter(corpus.labels)
    small = [corpus.label_names[k] for k, n in counts.items() if n < 3]
    if small:
        raise CorpusError(f"too few articles to split in category {', '.join(small)} (need 3 or more) / "
                          f"ジャンル {', '.join(small)} の記事が少なすぎて分割できません(3 本以上必要です)")
    index = list(range(len(corpus)))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                  stratify=corpus.labels)
    rest_labels = [corpus.labels[i] for i in rest]
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  random_state=seed, stratify=rest_labels)
    return corpus.subset(sorted(train)), corpus.subset(sorted(val)), corpus.subset(sorted(test))


# ----------------------------------------------------------------------------- report
def evaluate(y_true, y_pred, label_names) -> dict:
    """Accuracy, macro F1, per-genre report and confusion matrix (the same for BERT and baseline).

    Macro F1 (and the report's averages) count the genres that occur, in the truth or the predictions:
    a genre with no test article and never predicted has no F1, so it is left out (counted in
    "absent", with a warning), instead of adding a 0 to the average."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    present = sorted({int(y) for y in y_true} | {int(y) for y in y_pred})
    absent = [name for k, name in enumerate(label_names) if k not in present]
    if absent:
        _download.data_warning("livedoor evaluation", f"{len(absent)} of {len(label_names)} genre(s) have no test "
                               f"article and no prediction, left out of macro F1: {', '.join(absent)}",
                               {"genres without test articles": len(absent)},
                               ja="テストデータに記事がないジャンルがあります(マクロ F1 から除きました)")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "report": classification_report(y_true, y_pred, labels=present,
                                        target_names=[label_names[k] for k in present],
                                        output_dict=True, zero_division=0),
        "confusion": confusion_matrix(y_true, y_pred, labels=list(range(len(label_names)))).tolist(),
        "absent": absent,
    }


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> dict:
    """How precisely n test articles measure an accuracy p: the binomial standard error
    sqrt(p(1-p)/n) and the Wilson score interval (95% for z=1.96; close to p +- z*se, but it stays
    inside [0, 1] and is not empty at p = 0 or 1). Returns {"n", "accuracy", "se", "low", "high"}."""
    import math

    if n <= 0:
        raise ValueError(f"an accuracy needs at least one test article, got n={n}")
    p = float(accuracy)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {p}")
    se = math.sqrt(p * (1 - p) / n)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"n": int(n), "accuracy": p, "se": se, "low": max(0.0, centre - half),
            "high": min(1.0, centre + half)}


def report_table(result: dict, label_names):
    """The per-genre report as a pandas DataFrame (precision, recall, f1, support) of the genres that occur."""
    import pandas as pd

    rows = {JAPANESE_NAMES.get(n, n): result["report"][n] for n in label_names if n in result["report"]}
    return pd.DataFrame(rows).T.round(3)


def misclassified(texts, y_true, y_pred, label_names, n: int = 5, chars: int = 80,
                  per_genre: int = 0):
    """A few wrong predictions as a DataFrame: true genre, predicted genre, start of the text.
    per_genre=1: at most one example per true genre (the first of each), so that the examples are
    not all from the genre the model confuses most; 0: the first n mistakes."""
    import pandas as pd

    rows, shown = [], Counter()
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if t == p or (per_genre > 0 and shown[t] >= per_genre):
            continue
        shown[t] += 1
        rows.append({"正解": JAPANESE_NAMES.get(label_names[t], label_names[t]),
                     "予測": JAPANESE_NAMES.get(label_names[p], label_names[p]),
                     "本文(冒頭)": texts[i][:chars].replace("\n", " ")})
    return pd.DataFrame(rows[:n])


# ----------------------------------------------------------------------------- plots
def plot_corpus(corpus: Corpus, used: Corpus | None = None, max_chars: int = 0):
    """Articles per genre (all, and the subset used) and the length distribution before the cap."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    names = [JAPANESE_NAMES.get(c, c) for c in corpus.label_names]
    a.barh(names, list(corpus.counts().values()), color="tab:blue", label="コーパス全体")
    if used is not None and len(used) < len(corpus):
        a.barh(names, list(used.counts().values()), color="tab:orange", label="この実行で使う記事")
        a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize="small")
    a.invert_yaxis()
    a.set_xlabel("記事数")
    a.set_title("ジャンルごとの記事数")
    lengths = [min(n, 3000) for n in corpus.lengths]
    b.hist(lengths, bins=60, color="tab:gray")
    if max_chars:
        b.axvline(max_chars, color="tab:red", ls="--", label=f"上限 {max_chars} 文字")
        b.legend()
    b.set_xlabel("文字数(タイトル + 本文、3000 以上は 3000 に含める)")
    b.set_ylabel("記事数")
    b.set_title("記事の長さの分布(切り詰める前)")
    fig.tight_layout()
    return fig


def plot_curves(history: dict):
    """Loss and accuracy per epoch, training vs validation."""
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "損失"), (axes[1], "accuracy", "正解率")):
        ax.plot(epochs, history[key], "o-", label="学習")
        ax.plot(epochs, history[f"val_{key}"], "s-", label="検証")
        ax.set_xlabel("エポック")
        ax.set_xticks(list(epochs))
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(confusion, label_names, title: str):
    """Confusion matrix with Japanese genre names (call coursekit.jpfont.use_japanese_font() first)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay
    import numpy as np

    names = [JAPANESE_NAMES.get(n, n) for n in label_names]
    fig, ax = plt.subplots(figsize=(8, 7))
    ConfusionMatrixDisplay(np.asarray(confusion), display_labels=names).plot(
        ax=ax, xticks_rotation=60, colorbar=False, cmap="Blues")
    ax.set_xlabel("予測したジャンル")
    ax.set_ylabel("正解のジャンル")
    ax.set_title(title)
    fig.tight_layout()
    return fig
