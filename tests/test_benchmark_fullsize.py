"""benchmarks/fullsize.py --smoke: the full-size script end to end with tiny shapes on generated corpora
(stand-ins written, notebooks 02, 03 and 04 run on their full profile with max_steps, results written)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT
from .corpora import write_sample_corpus
from .lessons.test_alt import write_parallel

pytestmark = pytest.mark.notebook


def test_fullsize_smoke_writes_stand_ins_runs_the_full_profile_and_records(tmp_path):
    livedoor = write_sample_corpus(tmp_path / "ldcc", per_category=14, seed=1, body_sentences=12)
    parallel = write_parallel(tmp_path / "enja", sizes=(200, 16, 8))
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "benchmarks/fullsize.py", "--smoke", "--steps", "1",
                           "--livedoor", str(livedoor), "--parallel", str(parallel), "--work", str(tmp_path / "work"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "fullsize.json").read_text())
    assert results["size"] == "smoke" and results["commit"] and results["machine"]["cores"] >= 1
    assert len(results["machine"]["load_average_before"]) == 3
    bert = (tmp_path / "work/smoke/bert")
    assert (bert / "bert_config.json").is_file() and (bert / "bert_model.ckpt.index").is_file()
    assert (bert / "wiki-ja.model").is_file() and (tmp_path / "work/smoke/bart/config.json").is_file()
    by = {r["notebook"]: r for r in results["runs"]}
    assert set(by) == {"02_livedoor_bert", "03_bart_translation", "04_bert_pretraining"}
    for r in by.values():
        assert r["status"] == "completed" and r["rc"] == 0, r
        assert r["s_per_step"] > 0 and r["peak_rss_mb"] > 50 and r["steps_per_epoch"] >= 1
        assert "--profile full" in r["command"] and "-p max_steps 1" in r["command"]
    assert by["02_livedoor_bert"]["overrides"]["bert_checkpoint"].endswith("bert_model.ckpt")
    md = (out / "fullsize.md").read_text()
    assert "| 03_bart_translation | completed |" in md and "load average before" in md
