"""The livedoor corpus loader, evaluation, plots and the baseline, on a corpus the tests write in the
release's layout (tests/corpora.py)."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from coursekit.lessons import baseline, download, livedoor
from ..conftest import SHARED_DATA
from ..corpora import write_sample_corpus

REAL_TEXT = SHARED_DATA / "livedoor" / "text"


@pytest.fixture
def sample(tmp_path):
    return write_sample_corpus(tmp_path / "ldcc", per_category=10, seed=1)


def test_sample_corpus_layout_and_loading(sample):
    assert (sample / "README.txt").is_file() and (sample / "CHANGES.txt").is_file()
    assert all((sample / c / "LICENSE.txt").is_file() for c in livedoor.CATEGORIES)
    corpus = livedoor.load_corpus(sample, max_chars=40)
    assert len(corpus) == 90  # LICENSE/README/CHANGES are not articles
    assert corpus.label_names == sorted(livedoor.CATEGORIES)
    assert set(corpus.counts().values()) == {10}
    assert not any("LICENSE" in p for p in corpus.paths)
    assert all(0 < len(t) <= 40 for t in corpus.texts)
    first = (sample / "dokujo-tsushin").glob("dokujo-tsushin-*.txt").__next__()
    lines = first.read_text(encoding="utf-8").splitlines()
    text = corpus.texts[corpus.paths.index(str(first))]
    assert text.startswith(lines[2][:20]) and "http" not in text  # title kept, URL + date dropped
    # the differences from the release are spelled out, one per category here
    assert len(corpus.differences) == 9 and "the release has 870" in corpus.differences[0]


def test_bad_files_are_counted_not_fatal(sample):
    folder = sample / "smax"
    (folder / "smax-empty.txt").write_text("", encoding="utf-8")
    (folder / "smax-latin1.txt").write_bytes("url\ndate\ntitre é\n".encode("latin-1"))
    (folder / "smax-short.txt").write_text("http://x\n2012-01-01\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="skipped 3 unreadable file"):
        corpus = livedoor.load_corpus(sample)
    assert len(corpus) == 90
    assert corpus.problems == {"empty file": 1, "not UTF-8": 1, "fewer than 3 lines (URL, date, title)": 1}
    assert "smax-latin1.txt" in corpus.summary()


def test_missing_folder_gives_the_download_hint(tmp_path):
    with pytest.raises(livedoor.CorpusError, match="not found.*\n.*ldcc-20140209.tar.gz") as err:
        livedoor.load_corpus(tmp_path / "nowhere")
    assert "livedoor コーパスのフォルダが見つかりません" in str(err.value)
    assert "text/ フォルダを -p data_dir で渡す" in str(err.value), "what to do, in Japanese too"
    with pytest.raises(livedoor.CorpusError, match="not found"):
        livedoor.locate(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(livedoor.CorpusError, match="no category folder with a readable article"):
        livedoor.load_corpus(tmp_path / "empty")


def test_missing_category_is_reported(sample):
    import shutil

    shutil.rmtree(sample / "peachy")
    with pytest.warns(download.CorpusWarning, match="missing category 'peachy'"):
        corpus = livedoor.load_corpus(sample)
    assert "peachy" not in corpus.label_names and len(corpus.label_names) == 8
    assert any("missing category 'peachy'" in d for d in corpus.differences)


def test_locate_accepts_the_parent_of_text(sample):
    assert livedoor.locate(sample.parent) == sample
    assert livedoor.locate(sample) == sample


def test_split_is_stratified_and_reproducible(tmp_path):
    corpus = livedoor.load_corpus(write_sample_corpus(tmp_path, per_category=20))
    train, val, test = livedoor.split(corpus, 0.1, 0.2, seed=3)
    assert len(train) + len(val) + len(test) == 180
    assert set(test.counts().values()) == {4} and set(val.counts().values()) == {2}
    assert not set(train.paths) & set(test.paths) and not set(val.paths) & set(test.paths)
    again = livedoor.split(corpus, 0.1, 0.2, seed=3)[2]
    assert again.paths == test.paths
    assert livedoor.split(corpus, 0.1, 0.2, seed=4)[2].paths != test.paths
    with pytest.raises(ValueError, match="val_fraction"):
        livedoor.split(corpus, 0.6, 0.5)
    sub = livedoor.balanced_subset(corpus, 5, seed=0)
    assert set(sub.counts().values()) == {5}


def test_safe_extraction_refuses_path_escapes(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("text/../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(download.DownloadError, match="refusing to extract"):
        download.extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_an_archive_given_as_data_dir_is_checked_then_unpacked_into_the_cache(sample, tmp_path):
    archive = tmp_path / "ldcc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sample, arcname="text")
    cut = tmp_path / "cut" / "ldcc.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(archive.read_bytes()[:4000])
    with pytest.raises(livedoor.CorpusError, match=r"data_dir .*cut/ldcc.tar.gz cannot be unpacked: damaged or truncated"):
        livedoor.locate(cut, tmp_path / "cache")
    assert not (tmp_path / "cache" / "text").exists(), "nothing half-unpacked"
    text = livedoor.locate(archive, tmp_path / "cache")
    assert text == tmp_path / "cache" / "text" and download.is_complete(text)
    assert len(livedoor.load_corpus(text)) == 90
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(livedoor.CorpusError, match="notes.csv is a file, not the corpus's text/ folder"):
        livedoor.locate(tmp_path / "notes.csv", tmp_path / "cache")
    with pytest.raises(livedoor.CorpusError, match="ldcc.tar.gz is a file, not the corpus's text/ folder"):
        livedoor.load_corpus(archive)


def test_folders_without_articles_are_no_classes(sample, tmp_path, monkeypatch):
    (sample / "empty-genre").mkdir()
    (sample / "empty-genre" / "LICENSE.txt").write_text("license only\n", encoding="utf-8")
    (sample / "loop").symlink_to(sample, target_is_directory=True)   # a link back to the corpus folder
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    with pytest.warns(download.CorpusWarning, match=r"2 folder\(s\) hold no article and are not categories: "
                                                    r"empty-genre \(no readable article\), loop \(a link to"):
        corpus = livedoor.load_corpus(sample)
    assert corpus.label_names == sorted(livedoor.CATEGORIES) and len(corpus) == 90
    entries = json.loads((tmp_path / download.WARNINGS_FILE).read_text())
    assert {"folders without articles": 2} in [e["counts"] for e in entries], "a counted warning in the run record"


def test_macro_f1_counts_only_genres_that_occur(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    with pytest.warns(download.CorpusWarning, match=r"1 of 3 genre\(s\) have no test article .*: c"):
        result = livedoor.evaluate([0, 0, 1, 1], [0, 0, 1, 1], ["a", "b", "c"])
    assert result["macro_f1"] == 1.0 and result["absent"] == ["c"], "not (1 + 1 + 0) / 3"
    assert result["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]
    assert list(livedoor.report_table(result, ["a", "b", "c"]).index) == ["a", "b"]
    wrong = livedoor.evaluate([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c"])   # a genre predicted, never true: counted
    assert wrong["absent"] == [] and wrong["macro_f1"] < 0.8


def test_locate_downloads_and_unpacks_once(sample, tmp_path):
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / livedoor.ARCHIVE, "w:gz") as tar:
        tar.add(sample, arcname="text")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{livedoor.ARCHIVE}"
        text = livedoor.locate("", tmp_path / "cache", url=url)
    finally:
        server.shutdown()
    assert text == tmp_path / "cache" / "text" and len(livedoor.load_corpus(text)) == 90
    assert (tmp_path / "cache" / livedoor.ARCHIVE).is_file()
    assert livedoor.locate("", tmp_path / "cache", url="http://127.0.0.1:9/unused") == text  # cached


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(livedoor.CorpusError, match="could not download"):
        livedoor.download(tmp_path, url="http://127.0.0.1:9/ldcc-20140209.tar.gz")
    assert not list(tmp_path.glob("*.tar.gz"))  # no half-written archive left as if complete


def test_baseline_learns_the_sample_and_reports(tmp_path):
    corpus = livedoor.load_corpus(write_sample_corpus(tmp_path, per_category=20))
    train, _, test = livedoor.split(corpus, 0.1, 0.2, seed=0)
    model = baseline.train(train.texts, train.labels)
    result = livedoor.evaluate(test.labels, model.predict(test.texts), corpus.label_names)
    assert result["accuracy"] > 0.8  # each generated genre has its own words
    assert len(result["confusion"]) == 9 and sum(map(sum, result["confusion"])) == len(test)
    table = livedoor.report_table(result, corpus.label_names)
    assert list(table.index)[0] == "独女通信" and "f1-score" in table.columns
    with pytest.raises(ValueError, match="at least 2 genres"):
        baseline.train(["a", "b"], [0, 0])


def test_read_article_keeps_title_and_body_and_caps(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("http://x\n2012-01-01\nタイトル\n\n本文の一行目。\n二行目。\n", encoding="utf-8")
    text, problem, length = livedoor.read_article(path, max_chars=8)
    assert problem is None and text == "タイトル\n本文の" and length == len("タイトル\n本文の一行目。\n二行目。")
    assert livedoor.read_article(path, max_chars=0)[0].endswith("二行目。")
    path.write_text("http://x\n2012-01-01\n\n", encoding="utf-8")
    assert livedoor.read_article(path) == (None, "no title or body", 0)


def test_compare_counts_names_each_difference():
    assert livedoor.compare_counts(dict(livedoor.EXPECTED_COUNTS)) == []
    counts = {**livedoor.EXPECTED_COUNTS, "smax": 869, "extra": 3}
    del counts["peachy"]
    diffs = livedoor.compare_counts(counts)
    assert "missing category 'peachy' (expected 842 articles)" in diffs
    assert "unknown category 'extra' (3 articles)" in diffs and "smax: 869 articles, the release has 870" in diffs
    assert livedoor.compare_counts({"smax": 870}, categories=["smax"]) == []


def test_split_refuses_categories_too_small(tmp_path):
    corpus = livedoor.load_corpus(write_sample_corpus(tmp_path, per_category=2))
    with pytest.raises(livedoor.CorpusError, match="too few articles"):
        livedoor.split(corpus)
    assert livedoor.balanced_subset(corpus, 0) is corpus


def test_evaluate_and_misclassified():
    names = ["movie-enter", "smax", "sports-watch"]
    result = livedoor.evaluate([0, 0, 1, 2], [0, 1, 1, 2], names)
    assert result["accuracy"] == 0.75 and result["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert 0 < result["macro_f1"] < 1 and result["report"]["smax"]["precision"] == 0.5
    wrong = livedoor.misclassified(["映画の\n記事", "映画の話", "スマホ", "試合"], [0, 0, 1, 2], [0, 1, 1, 2], names)
    assert wrong.to_dict("records") == [{"正解": "映画エンタメ", "予測": "エスマックス(スマホ)", "本文(冒頭)": "映画の話"}]


def test_misclassified_at_most_one_per_true_genre():
    names = ["movie-enter", "smax", "sports-watch"]
    y_true, y_pred = [0, 0, 0, 1, 2, 2], [1, 2, 1, 1, 0, 1]
    texts = ["映画1", "映画2", "映画3", "スマホ", "試合1", "試合2"]
    every = livedoor.misclassified(texts, y_true, y_pred, names, n=10)
    assert list(every["本文(冒頭)"]) == ["映画1", "映画2", "映画3", "試合1", "試合2"]
    one = livedoor.misclassified(texts, y_true, y_pred, names, n=10, per_genre=1)
    assert list(one["本文(冒頭)"]) == ["映画1", "試合1"] and one["正解"].is_unique


def test_accuracy_interval():
    import math

    got = livedoor.accuracy_interval(0.9, 270)
    assert got["n"] == 270 and math.isclose(got["se"], math.sqrt(0.9 * 0.1 / 270))
    assert got["low"] < 0.9 < got["high"]
    assert math.isclose(got["high"] - got["low"], 2 * 1.96 * got["se"], rel_tol=0.05)  # close to p +- 1.96 se
    perfect = livedoor.accuracy_interval(1.0, 50)  # Wilson: not empty at p = 1, never above 1
    assert perfect["se"] == 0 and perfect["high"] == 1.0 and 0.9 < perfect["low"] < 1.0
    assert livedoor.accuracy_interval(0.5, 1000)["high"] - 0.5 < livedoor.accuracy_interval(0.5, 100)["high"] - 0.5
    with pytest.raises(ValueError):
        livedoor.accuracy_interval(0.5, 0)


def test_full_texts_reads_the_same_articles_uncapped(sample):
    capped = livedoor.load_corpus(sample, max_chars=20)
    part = capped.subset([3, 0, 7])
    full = livedoor.full_texts(part)
    assert len(full) == 3 and all(f.startswith(c) for f, c in zip(full, part.texts))
    assert [len(f) for f in full] == [part.lengths[k] for k in range(3)] and max(map(len, full)) > 20


def test_plots_draw_japanese_without_missing_glyphs(tmp_path, recwarn):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coursekit.jpfont import use_japanese_font

    use_japanese_font()
    corpus = livedoor.load_corpus(write_sample_corpus(tmp_path, per_category=6))
    figs = [
        livedoor.plot_corpus(corpus, used=livedoor.balanced_subset(corpus, 3), max_chars=510),
        livedoor.plot_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.8],
                              "accuracy": [0.4, 0.8], "val_accuracy": [0.3, 0.7]}),
        livedoor.plot_confusion(livedoor.evaluate([0, 1], [0, 0], corpus.label_names)["confusion"],
                                corpus.label_names, "混同行列"),
    ]
    for k, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{k}.png")
        plt.close(fig)
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
    assert all((tmp_path / f"{k}.png").stat().st_size > 5000 for k in range(3))


@pytest.mark.skipif(not REAL_TEXT.is_dir(), reason=f"real livedoor corpus not found at {REAL_TEXT}")
def test_real_corpus_counts():
    corpus = livedoor.load_corpus(REAL_TEXT)
    assert len(corpus) == 7367
    assert corpus.counts() == livedoor.EXPECTED_COUNTS
    assert corpus.differences == [] and not corpus.problems
