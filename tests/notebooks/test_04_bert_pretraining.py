"""Notebook 04 executed through the runner on generated text (tiny profile, shrunk further)."""
from __future__ import annotations

import math
import shutil

import pytest

from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS
from ..corpora import write_sample_folder

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "04_bert_pretraining.ipynb"
SMALL_RUN = {"valid_fraction": 0.05, "test_fraction": 0.05, "vocab_size": 150, "hidden_size": 64,
             "intermediate_size": 128, "batch_size": 16, "steps": 60, "learning_rate": 0.003,
             "warmup_steps": 6, "eval_every": 30, "save_every": 30, "phase2_steps": 4,
             "phase2_seq_len": 128, "fill_mask_sentences": "太郎は東京で本を[MASK]。|今日の天気は[MASK]です。"}


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    return write_sample_folder(tmp_path_factory.mktemp("text"), n_documents=240)


def _run(runs_dir, **params):
    return run_notebook(NOTEBOOK, "tiny", {**SMALL_RUN, **params}, runs_dir=runs_dir, quiet=True)


def test_notebook_04_pretrains_exports_and_fills_masks(text_folder, runs_dir):
    result = _run(runs_dir, corpus=str(text_folder))
    assert result.ok, result.error
    data, run = result.metrics, result.run_dir
    m = data["metrics"]
    assert data["status"] == "completed" and data["profile"] == "tiny" and data["params"]["steps"] == 60
    assert m["corpus"]["train"]["documents"] == 216 and m["corpus"]["valid"]["documents"] == 12
    assert m["tokenizer_vocab"] == 150 and m["tokenizer_differences"] == 0
    assert m["valid_loss_before"] == pytest.approx(math.log(150), abs=0.5), "random init: about ln V"
    assert m["valid_loss_after"] < m["valid_loss_before"] - 0.5, "pre-training lowers the validation loss"
    assert m["perplexity_after"] < m["perplexity_before"]
    assert math.isfinite(m["valid_loss_after_phase2"])
    evals = [p for p in data["curves"]["loss"] if "eval_loss" in p]
    assert [p["step"] for p in evals] == [30, 60] and evals[-1]["eval_loss"] < m["valid_loss_before"]
    assert [p["step"] for p in data["curves"]["loss_phase2"] if "eval_loss" in p] == [4]
    fill = m["fill_mask"]
    assert [f["sentence"] for f in fill] == ["太郎は東京で本を[MASK]。", "今日の天気は[MASK]です。"]
    assert all(len(f["predictions"]) == 5 and all(p["token"] for p in f["predictions"]) for f in fill)
    assert m["keras_bert_parameters"] > 0 and m["parameters"] > 0
    assert {"corpus", "tokenizer", "encode", "evaluate-before", "pretrain-phase1", "pretrain-phase2",
            "evaluate-after", "export", "fill-mask"} <= set(data["phases"])
    for name in ("export/hf/config.json", "export/hf/model.safetensors", "export/hf/spiece.model",
                 "export/hf/tokenizer.json", "export/tf/bert_config.json", "export/tf/bert_model.ckpt.index",
                 "export/tf/spiece.model", "work/corpus/train/train-00000.txt",
                 "work/phase1/final/trainer_state.json", "work/phase2/final/config.json"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").stat().st_size > 10_000 and (run / "phases.png").is_file()
    html = result.html.read_text(encoding="utf-8")
    assert result.html.is_file() and "BertForMaskedLM(config)" in html and "Traceback" not in html


def test_notebook_04_resumes_a_killed_phase_and_loads_a_finished_one(text_folder, runs_dir, tmp_path):
    work = tmp_path / "work"
    first = _run(runs_dir, corpus=str(text_folder), work_dir=str(work))
    assert first.ok, first.error
    # as if the job had been killed in phase 1 between step 30 and step 60: only checkpoint-30 is
    # left there (phase 2's final/ stays, as a finished phase of an earlier attempt would)
    shutil.rmtree(work / "phase1" / "final")
    shutil.rmtree(work / "phase1" / "checkpoint-60")
    again = _run(runs_dir, corpus=str(text_folder), work_dir=str(work))
    assert again.ok, again.error
    executed = (again.run_dir / NOTEBOOK.name).read_text(encoding="utf-8")
    assert "reusing the tokenizer" in executed
    assert "phase1: resuming from" in executed and "checkpoint-30" in executed
    assert "phase2: finished earlier" in executed
    evals = [p["step"] for p in again.metrics["curves"]["loss"] if "eval_loss" in p]
    assert evals == [30, 60], "the log of the killed job travels with its checkpoint"
    assert again.metrics["curves"]["loss_phase2"] == first.metrics["curves"]["loss_phase2"]
    assert again.metrics["metrics"]["valid_loss_after"] < again.metrics["metrics"]["valid_loss_before"] - 0.5


def test_notebook_04_refuses_a_sequence_longer_than_the_positions_before_running(text_folder, runs_dir):
    """The cell's `# check: seq_len <= max_positions` stops the run before anything starts (the
    notebook's own pretrain.check_lengths, tested in tests/lessons, guards JupyterLab runs)."""
    from coursekit.harness.params import ParameterError

    with pytest.raises(ParameterError, match=r"seq_len <= max_positions: max_positions = 512, seq_len = 1024"):
        _run(runs_dir, corpus=str(text_folder), seq_len=1024)
    assert not runs_dir.exists() or not any(runs_dir.rglob("metrics.json")), "nothing ran"


def test_notebook_04_max_steps_caps_each_phase(text_folder, runs_dir):
    """A smoke run: `-p max_steps 2` stops phase 1 (60 steps) and phase 2 (4 steps) after 2 steps each."""
    import json

    result = _run(runs_dir, corpus=str(text_folder), max_steps=2)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "todo", "2": "todo", "3": "open"}, "left undone"
    assert result.metrics["params"]["max_steps"] == 2
    for phase in ("phase1", "phase2"):
        state = json.loads((result.run_dir / "work" / phase / "final" / "trainer_state.json").read_text())
        assert state["global_step"] == 2 and state["max_steps"] == 2, phase
    executed = result.notebook.read_text(encoding="utf-8")  # what the job's log shows too
    assert "[phase1] step 1/2 (50%)" in executed and "[phase2] step 2/2 (100%)" in executed
    assert "[encode (seq 64)] item 1/" in executed and "[evaluate: evaluate] batch" in executed


def test_notebook_04_reference_solutions_are_right(text_folder, runs_dir):
    """-p solutions True (on a smoke run): every checked exercise says 正解です."""
    result = _run(runs_dir, corpus=str(text_folder), max_steps=2, phase2_steps=0, solutions=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 2 and "解答例:" in html
