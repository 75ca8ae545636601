"""Notebook 04's corpora: sentence splitting, the train/valid/test shard layout, text folders,
Wikipedia dumps through wikiextractor, livedoor's training split."""
import bz2

import pytest

from coursekit.lessons import corpora, livedoor
from ..conftest import SHARED_DATA
from ..corpora import sample_documents, write_sample_corpus, write_sample_folder


# ----------------------------------------------------------------------------- corpus
def test_split_sentences_on_japanese_punctuation_and_newlines():
    text = "今日は晴れです。明日は雨！本当に？はい。\n「そうですか。」と彼は言った。\n\n見出し\n"
    assert corpora.split_sentences(text) == [
        "今日は晴れです。", "明日は雨！", "本当に？", "はい。", "「そうですか。」と彼は言った。", "見出し"]
    assert corpora.split_sentences("えっ！？ 本当。", min_chars=1) == ["えっ！？", "本当。"]
    assert corpora.split_sentences("歴史.\n江戸と呼ばれていた。", min_chars=5) == ["江戸と呼ばれていた。"]
    assert corpora.split_sentences("  \n\n ") == []


def test_layout_one_sentence_per_line_blank_line_between_documents_and_shards(tmp_path):
    docs = sample_documents(40, sentences=6, seed=1)
    layout = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0.1, test_fraction=0.1,
                                  shard_sentences=20, seed=0)
    assert layout.documents == {"train": 32, "valid": 4, "test": 4}
    assert layout.sentences["train"] == 32 * 7  # 6 sentences + the closing question
    assert len(layout.files["train"]) == 11 and all(p.name.startswith("train-") for p in layout.files["train"])
    first = layout.files["train"][0].read_text(encoding="utf-8")
    blocks = first.rstrip("\n").split("\n\n")
    assert len(blocks) == 3, "a shard ends after the document that reaches 20 sentences"
    assert all(len(b.split("\n")) == 7 for b in blocks)
    assert all(line.endswith(("。", "？")) for b in blocks for line in b.split("\n"))
    back = {split: corpora.read_layout(files) for split, files in layout.files.items()}
    assert [len(back[s]) for s in corpora.SPLITS] == [32, 4, 4]
    joined = {s: {"".join(d) for d in back[s]} for s in corpora.SPLITS}
    assert not (joined["train"] & joined["valid"]) and not (joined["train"] & joined["test"])
    assert joined["train"] | joined["valid"] | joined["test"] <= set(docs)
    again = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0.1, test_fraction=0.1,
                                 shard_sentences=1000, seed=0)
    assert len(again.files["train"]) == 1 and len(list((tmp_path / "c" / "train").iterdir())) == 1


def test_empty_or_too_small_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(corpora.CorpusError, match="empty corpus"):
        corpora.write_layout(["", "  \n", "短い。"], tmp_path / "c", min_chars=5)
    with pytest.raises(corpora.CorpusError, match="too few for a training"):
        corpora.write_layout(["これは一つの文書です。"], tmp_path / "c", valid_fraction=0.1, test_fraction=0.1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(corpora.CorpusError, match="empty corpus"):
        corpora.write_layout(corpora.read_source(str(tmp_path / "empty"), tmp_path), tmp_path / "c")


def test_read_source_text_folder_missing_path_and_wrong_file(tmp_path):
    folder = write_sample_folder(tmp_path / "txt", n_documents=5)
    (folder / "LICENSE.txt").write_text("not a document\n", encoding="utf-8")
    docs = corpora.read_source(str(folder), tmp_path)
    assert len(docs) == 5 and not any("not a document" in d for d in docs)
    with pytest.raises(corpora.CorpusError, match=r"(?s)corpus not found.*wget.*dumps\.wikimedia\.org"):
        corpora.read_source(str(tmp_path / "nope"), tmp_path)
    with pytest.raises(corpora.CorpusError, match="Wikipedia dump not found.*Wikipedia のダンプが見つかりません"):
        corpora.read_source(str(tmp_path / "jawiki-pages-articles.xml.bz2"), tmp_path)
    with pytest.raises(corpora.CorpusError, match="got the file"):
        corpora.read_source(str(folder / "doc-00000.txt"), tmp_path)


def _write_dump(path):
    pages = [("東京", "'''東京'''は日本の首都である。人口は多い。\n\n== 歴史 ==\n江戸と呼ばれていた。"
                      "[[徳川家康]]が幕府を開いた！"),
             ("富士山", "'''富士山'''は日本で一番高い山です。標高は3776メートル。本当に？はい。"),
             ("転送", "#REDIRECT [[東京]]")]
    lines = ['<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="ja">',
             "  <siteinfo>", "    <sitename>Wikipedia</sitename>", "    <dbname>jawiki</dbname>",
             "    <base>https://ja.wikipedia.org/wiki/</base>", "    <namespaces>",
             '      <namespace key="0" case="first-letter" />',
             '      <namespace key="10" case="first-letter">Template</namespace>',
             "    </namespaces>", "  </siteinfo>"]
    for i, (title, text) in enumerate(pages, 1):
        redirect = [f'    <redirect title="{title}" />'] if text.startswith("#REDIRECT") else []
        lines += ["  <page>", f"    <title>{title}</title>", "    <ns>0</ns>", f"    <id>{i}</id>", *redirect,
                  "    <revision>", f"      <id>{100 + i}</id>",
                  f'      <text bytes="{len(text)}" xml:space="preserve">{text}</text>', "    </revision>",
                  "  </page>"]
    lines.append("</mediawiki>")
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def test_wikipedia_dump_goes_through_wikiextractor(tmp_path):
    dump = _write_dump(tmp_path / "jawiki-test-pages-articles.xml.bz2")
    docs = corpora.read_source(str(dump), tmp_path / "work", processes=1)
    assert len(docs) == 2, "the redirect page is not an article"
    assert docs[0].startswith("東京\n東京は日本の首都である。")
    assert "[[" not in docs[0] and "'''" not in docs[0] and "徳川家康が幕府を開いた！" in docs[0]
    assert (tmp_path / "work" / "wikiextractor" / "AA" / "wiki_00").is_file()
    layout = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0, test_fraction=0, min_chars=5)
    sentences = [s for d in corpora.read_layout(layout.files["train"]) for s in d]
    assert "江戸と呼ばれていた。" in sentences and "歴史." not in sentences


def test_livedoor_folder_gives_the_training_split_of_notebook_02(tmp_path):
    text_dir = write_sample_corpus(tmp_path / "ld", per_category=10)
    docs = corpora.read_source(str(text_dir), tmp_path)
    full = livedoor.load_corpus(text_dir, max_chars=0)
    train, _, test = livedoor.split(full, 0.1, 0.1, seed=0)
    assert sorted(docs) == sorted(train.texts) and len(docs) == 72
    assert not set(docs) & set(test.texts)
    assert not any(d.startswith("http") for d in docs), "URL and date lines are dropped"


def test_real_livedoor_folder_is_read_without_download(tmp_path):
    root = SHARED_DATA / "livedoor" / "text"
    if not root.is_dir():
        pytest.skip(f"livedoor corpus not found at {root}")
    docs = corpora.read_source(str(root), tmp_path, livedoor_cache=str(tmp_path / "no-download"))
    assert 5800 < len(docs) < 6000, "notebook 02's training split (80% of 7,367 articles)"
    assert not (tmp_path / "no-download").exists()


def test_text_folder_never_decodes_with_replacement_characters(tmp_path, monkeypatch):
    from coursekit.lessons import download
    import json

    folder = write_sample_folder(tmp_path / "txt", n_documents=4)
    (folder / "sjis.txt").write_bytes("日本語の文書です。".encode("shift_jis"))
    (folder / "blank.txt").write_text("  \n", encoding="utf-8")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(run_dir))
    with pytest.warns(download.CorpusWarning, match=r"skipped 2 unreadable file\(s\).*1 empty file.*1 not UTF-8"):
        docs = corpora.read_source(str(folder), tmp_path)
    assert len(docs) == 4 and not any("\ufffd" in d for d in docs)
    (entry,) = json.loads((run_dir / download.WARNINGS_FILE).read_text())
    assert entry["counts"] == {"unreadable: not UTF-8": 1, "unreadable: empty file": 1}


def test_interrupted_wikiextractor_output_is_extracted_again_and_a_cut_line_is_named(tmp_path):
    from coursekit.lessons import download

    dump = _write_dump(tmp_path / "jawiki-test-pages-articles.xml.bz2")
    out = tmp_path / "work" / "wikiextractor"
    (out / "AA").mkdir(parents=True)   # what an interrupted extraction leaves: output, no completion mark
    (out / "AA" / "wiki_00").write_bytes('{"id": "1", "title": "東京", "text": "東京は日'.encode("utf-8")[:-2])
    docs = corpora.read_source(str(dump), tmp_path / "work", processes=1)
    assert len(docs) == 2 and download.is_complete(out), "extracted again, then marked complete"
    assert corpora.extract_wikipedia(dump, out, processes=1) == out  # complete: reused
    assert not list((tmp_path / "work").glob(".wikiextractor-*")), "no private folder left"

    (out / "AA" / "wiki_00").write_bytes((out / "AA" / "wiki_00").read_bytes()[:-7])  # a cut-off last line
    with pytest.raises(corpora.CorpusError, match=r"wiki_00, line 2: cut off or damaged .*delete"):
        list(corpora.read_wikiextractor(out))


def test_a_damaged_shard_is_named(tmp_path):
    layout = corpora.write_layout(["一つ目の文です。二つ目の文です。"] * 3, tmp_path / "c", valid_fraction=0,
                                  test_fraction=0)
    shard = layout.files["train"][0]
    shard.write_bytes(shard.read_bytes()[:-3])  # cut inside a character
    with pytest.raises(corpora.CorpusError, match=r"shard .*train-00000.txt is cut off or damaged"):
        corpora.read_layout([shard])
