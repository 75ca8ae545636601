"""coursekit.lessons.alt: the ALT release and plain parallel files as a DatasetDict, drops counted.

write_parallel / write_alt write generated corpora in the real layouts (also used by the notebook 03 test)."""
from __future__ import annotations

import itertools
import random
import zipfile
from pathlib import Path

import pytest

from coursekit.lessons import alt
from ..conftest import SHARED_DATA

ALT_SAMPLE = SHARED_DATA / "alt-sample" / "dummy_data"

# A toy language pair with a real structure: the tiny model can learn it in a few dozen steps.
SUBJECTS = [("i", "私"), ("he", "彼"), ("she", "彼女"), ("we", "私たち"), ("they", "彼ら")]
ADJECTIVES = [("red", "赤い"), ("big", "大きい"), ("old", "古い"), ("new", "新しい"), ("small", "小さい")]
NOUNS = [("dog", "犬"), ("book", "本"), ("car", "車"), ("house", "家"), ("cat", "猫")]
VERBS = [("see", "見る"), ("like", "好きだ"), ("want", "欲しい"), ("buy", "買う")]


def toy_pairs(seed: int = 0) -> list[tuple[str, str]]:
    """500 (en, ja) pairs, e.g. ('she likes the old car .', '彼女 は 古い 車 を 好きだ 。')."""
    pairs = [(f"{s} {v} the {a} {n} .", f"{sj} は {aj} {nj} を {vj} 。")
             for (s, sj), (a, aj), (n, nj), (v, vj) in itertools.product(SUBJECTS, ADJECTIVES, NOUNS, VERBS)]
    random.Random(seed).shuffle(pairs)
    return pairs


def write_parallel(folder: Path, sizes=(400, 50, 50)) -> Path:
    """train/dev/test.en and .ja, Japanese split by spaces as small_parallel_enja is."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = iter(toy_pairs())
    for name, size in zip(("train", "dev", "test"), sizes):
        chunk = list(itertools.islice(pairs, size))
        (folder / f"{name}.en").write_text("".join(f"{en}\n" for en, _ in chunk), encoding="utf-8")
        (folder / f"{name}.ja").write_text("".join(f"{ja}\n" for _, ja in chunk), encoding="utf-8")
    return folder


def write_alt(folder: Path, as_zip: bool) -> Path:
    """An ALT release in the exact on-disk format: CRLF lines, no final newline in URL-*.txt,
    an empty Japanese line, one id only in English and one only in Japanese."""
    folder.mkdir(parents=True, exist_ok=True)
    en, ja = [], []
    for article in (101, 202, 303):
        for n in (1, 2, 3):
            en.append(f"SNT.{article}.{n}\tSentence {n} of article {article}.")
            ja.append(f"SNT.{article}.{n}\t記事{article}の{n}番目の文。")
    ja[1] = "SNT.101.2\t"           # empty Japanese: dropped and counted
    en.append("SNT.303.4\tOnly in English.")
    ja.append("SNT.303.5\t日本語だけ。")
    files = {f"{alt.ALT_RELEASE}/data_en.txt": "\r\n".join(en) + "\r\n",
             f"{alt.ALT_RELEASE}/data_ja.txt": "\r\n".join(ja),
             f"{alt.ALT_RELEASE}/README.txt": "Asian Language Treebank Parallel Corpus\r\n"}
    if as_zip:
        with zipfile.ZipFile(folder / f"{alt.ALT_RELEASE}.zip", "w") as zf:
            for name, text in files.items():
                zf.writestr(name, text.encode("utf-8"))
    else:
        for name, text in files.items():
            path = folder / f"{alt.ALT_RELEASE}.zip" / name  # the unpacked folder keeps the zip's name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
    for split, article in (("train", 101), ("dev", 202), ("test", 303)):
        (folder / f"URL-{split}.txt").write_text(f"URL.{article}\thttp://example.org/{article}", encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------ loaders
def test_alt_sample_parses_through_the_same_code():
    if not ALT_SAMPLE.is_dir():
        pytest.skip(f"ALT sample not found at {ALT_SAMPLE}")
    from coursekit.lessons.download import CorpusWarning

    with pytest.warns(CorpusWarning, match="15 source sentence.*stand in two splits"):  # the sample repeats its 5
        corpus, report = alt.load_alt(ALT_SAMPLE)
    assert {k: len(v) for k, v in corpus.items()} == {"train": 5, "validation": 5, "test": 5}
    first = corpus["train"][0]
    assert first["en"].startswith("Italy have defeated Portugal 31-5")
    assert first["ja"].startswith("フランスのパリ") and first["ja"].endswith("下した。")
    assert not any("\r" in t or "\t" in t for t in list(corpus["test"]["ja"]) + list(corpus["test"]["en"]))
    assert report["only_in_en"] == report["only_in_ja"] == report["empty_ja"] == 0
    inner = ALT_SAMPLE / f"{alt.ALT_RELEASE}.zip" / alt.ALT_RELEASE  # the unpacked folder itself
    with pytest.warns(CorpusWarning, match="stand in two splits"):
        again, _ = alt.load_corpus(str(inner))
    assert list(again["test"]["ja"]) == list(corpus["test"]["ja"])


@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "folder"])
def test_alt_release_split_by_article_with_drops_counted(tmp_path, as_zip):
    folder = write_alt(tmp_path / "alt", as_zip)
    with pytest.warns(UserWarning, match="only_in_en=1"):
        corpus, report = alt.load_corpus(str(folder))
    assert list(corpus["train"]["en"]) == ["Sentence 1 of article 101.", "Sentence 3 of article 101."]
    assert list(corpus["train"]["ja"]) == ["記事101の1番目の文。", "記事101の3番目の文。"]
    assert len(corpus["validation"]) == 3 and corpus["validation"]["ja"][2] == "記事202の3番目の文。"
    assert list(corpus["test"]["en"]) == [f"Sentence {n} of article 303." for n in (1, 2, 3)]
    assert (report["empty_ja"], report["only_in_en"], report["only_in_ja"]) == (1, 1, 1)
    lines = alt.describe(corpus, report)  # what the notebook prints: pairs per split, then every drop
    assert lines[0].split() == ["train", "2", "pairs", "/", "文の組"] and lines[2].split()[:3] == ["test", "3", "pairs"]
    assert "empty_ja=1" in lines[-1] and "only_in_en=1" in lines[-1] and "only_in_ja=1" in lines[-1]
    if as_zip:  # the zip file itself is accepted too (URL-*.txt beside it)
        with pytest.warns(UserWarning, match="only_in_ja=1"):
            direct, _ = alt.load_alt(folder / f"{alt.ALT_RELEASE}.zip")
        assert list(direct["test"]["ja"]) == list(corpus["test"]["ja"])


def test_alt_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        alt.load_corpus(str(tmp_path / "nowhere"))
    folder = write_alt(tmp_path / "alt", as_zip=True)
    (folder / "URL-train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="URL-train.txt"):
        alt.load_alt(folder)
    fake = tmp_path / "fake" / f"{alt.ALT_RELEASE}.zip"
    fake.parent.mkdir()
    fake.write_text("not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        alt.load_alt(fake)
    empty = tmp_path / "empty"
    (empty / alt.ALT_RELEASE).mkdir(parents=True)
    (empty / "URL-train.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="data_en.txt"):
        alt.load_alt(empty / alt.ALT_RELEASE)


def test_parallel_files_undo_japanese_spacing_and_check_alignment(tmp_path):
    folder = write_parallel(tmp_path / "par")
    corpus, report = alt.load_corpus(str(folder))
    assert {k: len(v) for k, v in corpus.items()} == {"train": 400, "validation": 50, "test": 50}
    assert all(" " not in t for t in corpus["train"]["ja"])
    assert all(t.endswith(" .") for t in corpus["train"]["en"]), "English is left as it is"
    assert alt.undo_japanese_spacing("私 は iPad mini を 買 っ た 。") == "私はiPad miniを買った。"
    (folder / "dev.ja").write_text("一 行 だけ 。\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev.en has 50 lines but dev.ja has 1"):
        alt.load_parallel(folder)
    (folder / "test.ja").unlink()
    with pytest.raises(FileNotFoundError, match="test.ja"):
        alt.load_parallel(folder)


# ------------------------------------------------------------------------ downloads and decoding
def test_alt_download_is_verified_and_a_bad_file_is_refetched(tmp_path, monkeypatch):
    from coursekit.lessons import download
    from ..fileserver import FileServer

    served = write_alt(tmp_path / "served", as_zip=True)
    cache = tmp_path / "cache"
    with FileServer(served) as server:
        with pytest.raises(download.DownloadError, match="ALT-Parallel-Corpus-20191206.zip"):
            alt.download_alt(cache, server.url("truncated", "").rstrip("/"))
        assert not (cache / f"{alt.ALT_RELEASE}.zip").exists(), "a truncated zip never lands"
        with pytest.raises(download.DownloadError, match="HTML page"):
            alt.download_alt(cache, server.url("html", "").rstrip("/"))
        (cache / "URL-train.txt").write_text("<html>proxy error</html>")  # an old kit's leftover
        with pytest.warns(download.CorpusWarning, match="sentences dropped"):  # write_alt's unpaired ids
            corpus, report = alt.load_corpus(server.url("ok", f"{alt.ALT_RELEASE}.zip"), cache)
        assert server.hits["/ok/URL-train.txt"] == 1, "the damaged split file was fetched again"
        monkeypatch.setenv(download.MIRROR_ENV, server.url("ok", "").rstrip("/"))
        before = sum(server.hits.values())
        with pytest.warns(download.CorpusWarning, match="sentences dropped"):
            corpus2, _ = alt.load_corpus("", cache)  # the mirror; everything cached and valid: no request
        assert sum(server.hits.values()) == before
    assert {k: len(v) for k, v in corpus.items()} == {k: len(v) for k, v in corpus2.items()}
    assert len(corpus["train"]) == 2


def test_small_parallel_enja_by_name_downloads_once_and_verifies(tmp_path, monkeypatch):
    from coursekit.lessons import download
    from ..fileserver import FileServer

    served = write_parallel(tmp_path / "served")
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)  # no folder named small_parallel_enja here: the name means the download
    with FileServer(served) as server:
        with pytest.raises(download.DownloadError, match=r"train\.en.*HTML page"):
            alt.download_small_parallel(cache, server.url("html", "").rstrip("/"))
        monkeypatch.setenv(download.MIRROR_ENV, server.url("ok", "").rstrip("/"))
        corpus, report = alt.load_corpus("small_parallel_enja", cache)
        assert {f"/ok/{s}.{lang}" for s in ("train", "dev", "test") for lang in ("en", "ja")} <= set(server.hits)
        assert all(n == 1 for path, n in server.hits.items() if path.startswith("/ok/"))
        again, _ = alt.load_corpus("small_parallel_enja", cache)  # cached and valid: no request
        assert sum(n for path, n in server.hits.items() if path.startswith("/ok/")) == 6
    assert {k: len(v) for k, v in corpus.items()} == {"train": 400, "validation": 50, "test": 50}
    assert report["format"] == "parallel" and all(" " not in t for t in again["test"]["ja"])
    assert alt.SMALL_PARALLEL_URL.startswith("https://raw.githubusercontent.com/odashi/small_parallel_enja/")


def test_text_that_is_not_utf8_is_an_error_naming_the_file(tmp_path):
    folder = write_parallel(tmp_path / "par")
    (folder / "dev.ja").write_bytes("犬 を 見る 。\n".encode("shift_jis") * 50)
    with pytest.raises(UnicodeDecodeError, match=r"dev\.ja.*not UTF-8"):
        alt.load_parallel(folder)
    release = write_alt(tmp_path / "alt", as_zip=False)
    data_ja = release / f"{alt.ALT_RELEASE}.zip" / alt.ALT_RELEASE / "data_ja.txt"
    data_ja.write_bytes("SNT.101.1\t記事。".encode("euc-jp"))
    with pytest.raises(UnicodeDecodeError, match="data_ja.txt"):
        alt.load_alt(release)


def test_a_sentence_in_two_splits_is_counted_with_a_warning(tmp_path, monkeypatch):
    import json

    from coursekit.lessons import download

    folder = write_parallel(tmp_path / "p", sizes=(40, 10, 10))
    first_test_en = (folder / "test.en").read_text(encoding="utf-8").splitlines()[0]
    with open(folder / "train.en", "a", encoding="utf-8") as en, open(folder / "train.ja", "a", encoding="utf-8") as ja:
        en.write(first_test_en + "\n")   # trained on, then tested on (with another translation, as in the real
        ja.write("別 の 訳 。\n")          # small_parallel_enja, where 60 of the 500 test sentences are in train)
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    with pytest.warns(download.CorpusWarning, match=r"1 source sentence\(s\) stand in two splits .*test_in_train=1"):
        corpus, report = alt.load_corpus(str(folder))
    assert (report["test_in_train"], report["validation_in_train"], report["test_in_validation"]) == (1, 0, 0)
    assert "test_in_train=1" in alt.describe(corpus, report)[-1]
    entries = json.loads((tmp_path / download.WARNINGS_FILE).read_text())
    assert {"test_in_train": 1} in [e["counts"] for e in entries], "counted in the run record"

    release = write_alt(tmp_path / "alt", as_zip=True)   # an article listed in two split files
    (release / "URL-test.txt").write_text("URL.303\thttp://example.org/303\nURL.101\thttp://example.org/101",
                                          encoding="utf-8")
    with pytest.warns(download.CorpusWarning) as said:
        _, report = alt.load_corpus(str(release))
    assert report["test_in_train"] == 2 and any("test_in_train=2" in str(w.message) for w in said)


def test_a_damaged_zip_and_a_file_for_a_folder_are_named(tmp_path):
    release = write_alt(tmp_path / "alt", as_zip=True)
    zipped = release / f"{alt.ALT_RELEASE}.zip"
    raw = zipped.read_bytes()
    zipped.write_bytes(raw.replace(b"Sentence 2 of article 202", b"Sentence 9 of article 202"))  # CRC no longer matches
    with pytest.raises(ValueError, match=r"data_en.txt cannot be read from the zip \(BadZipFile.*download it again"):
        alt.load_corpus(str(release))
    with pytest.raises(ValueError, match="is a file, not a folder of train/dev/test"):
        alt.load_parallel(zipped)
    zipped.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="is not a zip file \\(or a truncated one\\)"):
        alt.load_corpus(str(zipped))
