"""Notebook 04 executed through the runner on generated text (tiny profile, shrunk further)."""
from __future__ import annotations

import json
import math
import shlex
import shutil

import pytest

from coursekit.harness.runner import run_notebook
from coursekit.lessons import pretrain

from ..conftest import NOTEBOOKS, ROOT, committed_figures, coursekit_cli, printed_lines, printed_text
from ..corpora import write_sample_corpus, write_sample_folder

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "04_bert_pretraining.ipynb"
SMALL_RUN = {"valid_fraction": 0.05, "test_fraction": 0.05, "vocab_size": 150, "hidden_size": 64,
             "intermediate_size": 128, "batch_size": 16, "steps": 60, "learning_rate": 0.003,
             "warmup_steps": 6, "eval_every": 30, "save_every": 30, "seq_len": 64, "phase2_steps": 4,
             "phase2_seq_len": 128, "fill_mask_sentences": "太郎は東京で本を[MASK]。|今日の天気は[MASK]です。"}


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    # a last sentence of 12+ characters: the fill-mask rule (sentences of 12-60 characters that hold a frequent
    # word) finds held-out sentences in it; the default one (10-11 characters) gives none
    return write_sample_folder(tmp_path_factory.mktemp("text"), n_documents=240, last="明日の天気も{}でしょうか？")


def _run(runs_dir, **params):
    return run_notebook(NOTEBOOK, "tiny", {**SMALL_RUN, **params}, runs_dir=runs_dir, quiet=True)


def test_notebook_04_pretrains_exports_and_fills_masks(text_folder, runs_dir):
    """Both phases (phase 2 at a longer sequence, a few steps) and gradient accumulation (batch 8 x 2, the
    same 16 sequences per optimizer step as the other runs)."""
    result = _run(runs_dir, corpus=str(text_folder), batch_size=8, grad_accum=2)
    assert result.ok, result.error
    data, run = result.metrics, result.run_dir
    m = data["metrics"]
    assert data["status"] == "completed" and data["profile"] == "tiny" and data["params"]["steps"] == 60
    assert m["exercises"] == {"1": "todo", "2": "todo", "3": "open"}, "left undone: no error"
    assert m["corpus"]["train"]["documents"] == 216 and m["corpus"]["valid"]["documents"] == 12
    assert m["tokenizer_vocab"] == 150 and m["tokenizer_differences"] == 0 and m["effective_batch"] == 16
    assert m["valid_loss_before"] == pytest.approx(math.log(150), abs=0.5), "random init: about ln V"
    assert m["valid_loss_after"] < m["valid_loss_before"] - 0.5, "pre-training lowers the validation loss"
    assert m["perplexity_after"] < m["perplexity_before"]
    assert math.isfinite(m["valid_loss_after_phase2"])
    evals = [p for p in data["curves"]["loss"] if "eval_loss" in p]
    assert [p["step"] for p in evals] == [30, 60] and evals[-1]["eval_loss"] < m["valid_loss_before"]
    # accumulated over 2 micro-batches, the logged training loss is still a mean per token (not doubled)
    train_losses = [p["loss"] for p in data["curves"]["loss"] if "loss" in p]
    assert len(train_losses) == 20 and max(train_losses) < math.log(150) + 0.5
    assert [p["step"] for p in data["curves"]["loss_phase2"] if "eval_loss" in p] == [4]
    phase2 = json.loads((run / "work" / "phase2" / "final" / "trainer_state.json").read_text())
    assert phase2["global_step"] == 4 and (run / "work" / "phase2" / "final" / "config.json").is_file()
    acc = m["masked_accuracy"]
    for name in ("before", "after", "unigram"):
        assert 0.0 <= acc[name]["top1"] <= acc[name]["topk"] <= 1.0 and acc[name]["k"] == 5
        assert acc[name]["positions"] == acc["after"]["positions"] > 20
    assert acc["after"]["topk"] > acc["before"]["topk"], "the trained model guesses better than random weights"
    assert len(acc["unigram"]["guesses"]) == 5
    assert acc["neighbours"]["positions"] == acc["after"]["positions"] and 0 < acc["neighbours"]["seen"] <= 1
    assert acc["neighbours"]["topk"] > acc["unigram"]["topk"], "on this text, reading the neighbours beats ignoring them"
    fill = m["fill_mask"]
    held_out, own = fill[:m["fill_mask_examples"]], fill[m["fill_mask_examples"]:]
    assert [f["sentence"] for f in own] == ["太郎は東京で本を[MASK]。", "今日の天気は[MASK]です。"]
    assert all(f["answer"] is None and f["hit"] is None for f in own)
    assert all("[MASK]" in f["sentence"] and f["answer"] and isinstance(f["hit"], bool) for f in held_out)
    assert m["fill_mask_top5_hits"] == sum(f["hit"] for f in held_out)
    assert all(len(f["neighbour_guesses"]) == 5 and isinstance(f["neighbour_hit"], bool) for f in held_out)
    assert m["fill_mask_neighbour_hits"] == sum(f["neighbour_hit"] for f in held_out)
    every = m["fill_mask_held_out"]   # every held-out sentence chosen the same way, the printed ones first
    assert every["k"] == 5 and every["sentences"] >= len(held_out) > 0
    assert m["fill_mask_top5_hits"] <= every["model"] <= every["sentences"] - len(held_out) + m["fill_mask_top5_hits"]
    assert 0 <= every["neighbour"] <= every["sentences"]
    assert f"同じ選び方をしたテストデータの文すべて({every['sentences']} 文)" in printed_text(result.notebook)
    assert all(len(f["predictions"]) == 5 and all(p["token"] for p in f["predictions"]) for f in fill)
    assert m["keras_bert_parameters"] > 0 and m["parameters"] > 0
    assert m["finetune_command"][4:7] == ["notebooks/02_livedoor_bert.ipynb", "--profile", "tiny"]
    assert "per_category" not in m["finetune_command"], "a folder of .txt files is not livedoor"
    assert {"corpus", "tokenizer", "encode", "evaluate-before", "pretrain-phase1", "pretrain-phase2",
            "evaluate-after", "export", "fill-mask"} <= set(data["phases"])
    for name in ("export/hf/config.json", "export/hf/model.safetensors", "export/hf/spiece.model",
                 "export/hf/tokenizer.json", "export/tf/bert_config.json", "export/tf/bert_model.ckpt.index",
                 "export/tf/spiece.model", "work/corpus/train/train-00000.txt",
                 "work/phase1/final/trainer_state.json", "work/phase2/final/config.json"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").stat().st_size > 10_000 and (run / "phases.png").is_file()
    # section 12 shows the kit's committed benchmark figures: the lift and its parts
    lift, transfer = m["lift_results"], m["transfer_results"]
    assert lift["file"] == pretrain.LIFT_RESULTS and (run / "lift.png").is_file()
    assert transfer["file"] == pretrain.TRANSFER_RESULTS and (run / "transfer.png").is_file()
    assert transfer["weights"] == pytest.approx(transfer["pretrained"] - transfer["random_04_vocab"])
    assert transfer["vocabulary"] == pytest.approx(transfer["random_04_vocab"] - lift["random"])
    committed = committed_figures(pretrain.LIFT_RESULTS)
    short_first, longer = committed["short_first"], committed["longer_finetuning"]
    shown = m["short_first_results"]
    assert shown["model_top1"] == short_first["model_top1"]["median"] > shown["unigram_top1"]
    assert shown["accuracy"] == short_first["accuracy"]["median"] and shown["tiny_accuracy"] == lift["pretrained"]
    assert (run / "short_first.png").is_file()
    shown = m["longer_finetuning_results"]
    assert shown["epochs"] == longer["epochs"] == len(shown["pretrained_val_accuracy"]) > 3
    assert shown["random_val_accuracy"] == longer["random"]["val_accuracy"]
    assert shown["pretrained_accuracy"] == longer["pretrained"]["accuracy"]["median"]
    assert shown["random_min_val_loss"] == longer["random"]["min_val_loss"]["median"]
    assert (run / "longer_finetuning.png").is_file()
    rates = committed_figures(pretrain.TRANSFER_RESULTS)["learning_rates"]["rates"]
    assert set(transfer["learning_rates"]) == {f"{r['learning_rate']:g}" for r in rates} != set()
    html = result.html.read_text(encoding="utf-8")
    assert result.html.is_file() and "SparseBertForMaskedLM(config)" in html and "Traceback" not in html
    assert "02 の学習率を 0.002 にすると" in html
    assert "-p seq_len 32 -p batch_size 128" in html, "the short-first command, from the results file"
    assert "10 分以内に終わる長さでいちばん高いのは 300 ステップ" in html, "the curve's best length within the budget"


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


def test_notebook_04_max_steps_caps_each_phase_with_the_reference_solutions(text_folder, runs_dir):
    """A smoke run: `-p max_steps 2` stops phase 1 (60 steps) and phase 2 (4 steps) after 2 steps each; with
    `-p solutions True` every checked exercise says 正解です (left undone they say todo:
    test_notebook_04_pretrains_exports_and_fills_masks).

    Then the short-blocks-first command that section 12 prints (from benchmarks/results/pretrain_lift.json),
    typed as printed with what a smoke run on the generated folder needs appended: its corpus, a vocabulary and
    model this small text fills, and `-p max_steps 2` (as printed it pre-trains livedoor for about 9 minutes)."""
    result = _run(runs_dir, corpus=str(text_folder), max_steps=2, solutions=True)
    assert result.ok, result.error
    assert result.metrics["params"]["max_steps"] == 2
    for phase in ("phase1", "phase2"):
        state = json.loads((result.run_dir / "work" / phase / "final" / "trainer_state.json").read_text())
        assert state["global_step"] == 2 and state["max_steps"] == 2, phase
    executed = result.notebook.read_text(encoding="utf-8")  # what the job's log shows too
    assert "[phase1] step 1/2 (50%)" in executed and "[phase2] step 2/2 (100%)" in executed
    assert "[encode (seq 64)] item 1/" in executed and "[evaluate: evaluate] batch" in executed
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 2 and "解答例:" in html

    [line] = printed_lines(result.notebook, "python -m coursekit run notebooks/04_bert_pretraining.ipynb")
    argv = shlex.split(line)
    expected = committed_figures(pretrain.LIFT_RESULTS)["short_first"]["params"]
    assert argv[:3] == ["python", "-m", "coursekit"] and len(argv) == 7 + 3 * len(expected)
    assert dict(zip(argv[8::3], argv[9::3])) == {k: str(v) for k, v in expected.items()}
    smoke = ["-p", "corpus", str(text_folder), "-p", "vocab_size", "150", "-p", "hidden_size", "64",
             "-p", "intermediate_size", "128", "-p", "max_steps", "2", "--name", "short-first", "--no-html"]
    typed = coursekit_cli(*argv[3:], *smoke)
    assert typed.returncode == 0, typed.stdout[-3000:] + typed.stderr[-3000:]
    run = runs_dir / "04_bert_pretraining" / "short-first"
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["profile"] == "tiny"
    assert {k: record["params"][k] for k in expected} == expected
    for phase, seq_len in (("phase1", 32), ("phase2", 128)):
        state = json.loads((run / "work" / phase / "final" / "trainer_state.json").read_text())
        assert state["global_step"] == 2 and state["max_steps"] == 2, phase
        assert f"[encode (seq {seq_len})] item 1/" in (run / NOTEBOOK.name).read_text(encoding="utf-8")
    assert record["metrics"]["effective_batch"] == 128


def test_notebook_04_then_the_notebook_02_command_it_prints(runs_dir, tmp_path):
    """The 04 -> 02 chain on a generated livedoor-format corpus: notebook 04 pre-trains without any article
    that notebook 02 (per_category 10, seed 1) validates or tests on, and the command it prints, parsed from
    its metrics.json and from its printed text, runs notebook 02 through the runner from the export."""
    from coursekit.harness.runner import build_parser
    from coursekit.lessons import corpora, livedoor

    text = write_sample_corpus(tmp_path / "ldcc", per_category=14, seed=2)
    pre = _run(runs_dir, corpus=str(text), livedoor_per_category=10, seed=1, vocab_size=300, steps=30,
               eval_every=15, save_every=15, phase2_steps=0, fill_mask_examples=3)
    assert pre.ok, pre.error
    # none of 02's validation or test articles (its all-article split and its per_category split), the rest all
    articles = livedoor.load_corpus(text, max_chars=0)
    held_out = set()
    for n in (0, 10):
        _, val, test = livedoor.split(livedoor.balanced_subset(articles, n, seed=1), 0.1, 0.1, seed=1)
        held_out |= {tuple(corpora.split_sentences(t, 5)) for t in val.texts + test.texts}
    files = [f for split in ("train", "valid", "test") for f in sorted((pre.run_dir / "work" / "corpus" / split).glob("*.txt"))]
    pretraining = {tuple(doc) for doc in corpora.read_layout(files)}
    assert len(held_out) > 26 and not held_out & pretraining
    assert len(pretraining) == len(articles) - len(held_out)

    m = pre.metrics["metrics"]
    argv = m["finetune_command"]
    shown = printed_text(pre.notebook)
    block = []
    for line in shown[shown.index("python -m coursekit run notebooks/02_livedoor_bert.ipynb"):].splitlines():
        block.append(line.rstrip("\\"))
        if not line.endswith("\\"):
            break
    assert shlex.split(" ".join(block)) == argv, "the printed command is the recorded one"
    args = build_parser().parse_args(argv[4:])
    given = dict(args.parameter)
    assert args.profile == "tiny" and given["seed"] == "1" and given["per_category"] == "10"
    assert given["data_dir"] == str(text) and given["lowercase"] == "False"
    assert float(given["learning_rate"]) == pre.metrics["params"]["finetune_learning_rate"]
    fine = run_notebook(ROOT / args.notebook, args.profile, args.parameter, runs_dir=runs_dir, quiet=True)
    assert fine.ok, fine.error
    f = fine.metrics["metrics"]
    assert fine.metrics["params"]["bert_checkpoint"] == str(pre.run_dir / "export" / "tf" / "bert_model.ckpt")
    assert f["bert_pretrained"] is True and f["bert_hidden_size"] == 64 and 0.0 <= f["accuracy"] <= 1.0
    assert f["n_train"] + f["n_val"] + f["n_test"] == 90
