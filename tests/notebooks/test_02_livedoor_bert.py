"""Notebook 02 executed through the runner on a generated livedoor-format corpus (tiny profile)."""
from __future__ import annotations

import pytest

from coursekit.lessons import livedoor
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "02_livedoor_bert.ipynb"
SMALL_RUN = {"per_category": 0, "seq_len": 48, "vocab_size": 300, "epochs": 2, "batch_size": 16,
             "sentence": "映画の試写会で主演の俳優が挨拶した。"}


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory):
    return livedoor.write_sample_corpus(tmp_path_factory.mktemp("ldcc"), per_category=14, seed=2)


def test_notebook_02_tiny_on_generated_corpus(sample_corpus, runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", {"data_dir": str(sample_corpus), **SMALL_RUN},
                          runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    data = result.metrics
    m = data["metrics"]
    assert data["status"] == "completed" and data["profile"] == "tiny"
    assert m["corpus_articles"] == 126 and m["corpus_categories"] == 9
    assert m["n_train"] + m["n_val"] + m["n_test"] == 126
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    assert m["baseline_accuracy"] >= 0.8  # generated genres have their own words
    assert m["bert_pretrained"] is False and m["bert_layers"] == 2 and m["bert_hidden_size"] == 128
    assert 1 <= m["epochs_run"] <= 2 and m["reload_same_predictions"] is True
    assert m["sentence_genre"] in livedoor.CATEGORIES
    for phase in ("tokenize", "fine-tune", "evaluate", "baseline"):
        assert data["phases"][phase] > 0
    assert m["total_s"] > data["phases"]["fine-tune"]
    assert [p["epoch"] for p in data["curves"]["epochs"]] == list(range(1, m["epochs_run"] + 1))
    for fig in ("corpus", "curves", "confusion", "confusion_baseline", "phases", "comparison"):
        assert (result.run_dir / f"{fig}.png").stat().st_size > 5000
    assert (result.run_dir / "classifier.h5").is_file() and result.html.is_file()
    html = result.html.read_text(encoding="utf-8")
    assert "混同行列" in html and "Traceback" not in html


def test_notebook_02_missing_corpus_fails_with_the_download_hint(tmp_path, runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", {"data_dir": str(tmp_path / "no-corpus"), **SMALL_RUN},
                          runs_dir=runs_dir, quiet=True)
    assert not result.ok and result.metrics["status"] == "failed"
    assert "CorpusError" in result.error and "not found" in result.error
    assert "ldcc-20140209.tar.gz" in (result.run_dir / "02_livedoor_bert.html").read_text(encoding="utf-8")
