"""Notebook 03 runs through the runner on generated parallel data, records a real BLEU, and a second run
with the same checkpoint_dir resumes from the first one's checkpoint instead of starting over."""
import json

import nbformat
import pytest

from coursekit.lessons import alt, translation
from ..conftest import coursekit_cli
from ..lessons.test_alt import write_parallel

NOTEBOOK = "notebooks/03_bart_translation.ipynb"
# a model of seconds: 320 training pairs, batch 16 -> 20 steps per epoch
SMALL = ("-p", "vocab_size", "120", "-p", "d_model", "32", "-p", "layers", "1", "-p", "max_length", "24",
         "-p", "batch_size", "16", "-p", "learning_rate", "0.003", "-p", "num_beams", "1", "-p", "examples", "3")
ENV = {"OMP_NUM_THREADS": "1"}


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def errors_in(notebook):
    executed = nbformat.read(str(notebook), as_version=4)
    return [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


@pytest.mark.notebook
def test_bart_notebook_runs_on_generated_data(runs_dir, tmp_path):
    data = write_parallel(tmp_path / "data", sizes=(320, 32, 24))
    proc = coursekit_cli("run", NOTEBOOK, "--profile", "tiny", "--name", "t3", "-p", "data_dir", str(data),
                         "-p", "epochs", "2", *SMALL, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = runs_dir / "03_bart_translation" / "t3"
    for name in ("03_bart_translation.ipynb", "03_bart_translation.html", "metrics.json", "loss.png",
                 "lengths.png", "token_lengths.png", "phases.png", "checkpoints/tokenizer/spiece.model",
                 "checkpoints/trainer_state.json"):
        assert (folder / name).is_file(), name
    assert (folder / "checkpoints" / "checkpoint-40").is_dir(), "a checkpoint after each epoch"
    record = metrics(folder)
    assert record["status"] == "completed" and record["runner"]["status"] == "completed"
    assert record["profile"] == "tiny" and record["params"]["max_train"] == record["params"]["max_test"] == 0, "tiny yaml applied"
    m = record["metrics"]
    assert m["exercises"] == {"1": "todo", "2": "todo", "3": "open"}, "left undone: no error"
    assert m["pairs"] == {"train": 320, "validation": 32, "test": 24}
    assert 0.0 <= m["bleu"] <= 100.0 and 0.0 <= m["chrf"] <= 100.0 and m["sentences"] == 24
    assert m["bleu_tokenizer"] == "ja-mecab" and len(m["bleu_precisions"]) == 4
    assert len(m["eval_losses"]) == 2 and m["last_loss"] < m["first_loss"]
    assert m["eval_losses"][1] < m["eval_losses"][0]
    assert m["training"]["global_step"] == 40 and m["training"]["resumed_from_step"] == 0
    assert m["model"] == "tiny-bart" and m["vocabulary"] <= 120 and m["parameters"] > 0
    assert len(m["examples"]) == 3 and all(" " not in e["参照訳"] for e in m["examples"])
    curve = record["curves"]["loss"]
    assert any("eval_loss" in p for p in curve) and curve[0]["step"] == 1
    assert set(record["phases"]) == {"load", "model", "tokenize", "train", "evaluate"}
    assert errors_in(folder / "03_bart_translation.ipynb") == []
    html = (folder / "03_bart_translation.html").read_text(encoding="utf-8")
    assert "Seq2SeqTrainer" in html and "BLEU = " in html, "the executed code and its output are in the HTML"


@pytest.mark.notebook
def test_a_second_run_with_the_same_checkpoint_dir_resumes(runs_dir, tmp_path):
    data = write_parallel(tmp_path / "data", sizes=(320, 32, 8))
    checkpoints = tmp_path / "ckpt"
    common = ("-p", "data_dir", str(data), "-p", "checkpoint_dir", str(checkpoints), *SMALL)
    first = coursekit_cli("run", NOTEBOOK, "--profile", "tiny", "--name", "r1", "--no-html",
                          "-p", "epochs", "1", *common, env=ENV)
    assert first.returncode == 0, first.stderr[-3000:]
    assert metrics(runs_dir / "03_bart_translation" / "r1")["metrics"]["training"]["global_step"] == 20
    assert (checkpoints / "checkpoint-20").is_dir() and not (runs_dir / "03_bart_translation" / "r1" / "checkpoints").exists()
    vocab = (checkpoints / "tokenizer" / "spiece.model").read_bytes()

    second = coursekit_cli("run", NOTEBOOK, "--profile", "tiny", "--name", "r2", "--no-html",
                           "-p", "epochs", "2", *common, env=ENV)
    assert second.returncode == 0, second.stderr[-3000:]
    folder = runs_dir / "03_bart_translation" / "r2"
    m = metrics(folder)["metrics"]
    assert m["training"]["resumed_from_step"] == 20, "resumed from the first run's checkpoint, not from 0"
    assert m["training"]["global_step"] == 40 and m["training"]["epochs"] == 2
    assert (checkpoints / "checkpoint-40").is_dir()
    assert (checkpoints / "tokenizer" / "spiece.model").read_bytes() == vocab, "the same vocabulary"
    executed = (folder / "03_bart_translation.ipynb").read_text(encoding="utf-8")
    assert "checkpoint-20 から再開します(ステップ 20)" in executed
    # one continuous history: the first run's steps, then the second's, each step once
    steps = [p["step"] for p in metrics(folder)["curves"]["loss"] if "loss" in p]
    assert steps[0] == 1 and steps[-1] == 40 and steps == sorted(set(steps))
    assert len(m["eval_losses"]) == 2
    state = json.loads((checkpoints / "trainer_state.json").read_text())
    assert state["global_step"] == 40
    assert errors_in(folder / "03_bart_translation.ipynb") == []


def test_preemption_callback_checkpoints_a_real_trainer_and_the_next_attempt_resumes(tmp_path, monkeypatch):
    """The notebook's recipe with a real Seq2SeqTrainer: warned -> checkpoint + Preempted; requeued ->
    get_last_checkpoint -> trainer.train(resume_from_checkpoint=...) continues from that step."""
    import torch
    from transformers import (BartConfig, BartForConditionalGeneration, DataCollatorForSeq2Seq, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)
    from transformers.trainer_utils import get_last_checkpoint

    from coursekit.harness import preemption

    corpus, _ = alt.load_parallel(write_parallel(tmp_path / "data", sizes=(64, 8, 8)))
    tok = translation.build_tiny_tokenizer(corpus["train"], tmp_path / "tok", vocab_size=80)
    data = corpus.map(lambda b: tok(b["en"], text_target=b["ja"], max_length=24, truncation=True),
                      batched=True, remove_columns=["en", "ja"])
    out = str(tmp_path / "checkpoints")
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))

    def trainer():
        torch.manual_seed(0)
        model = BartForConditionalGeneration(BartConfig(
            vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
            pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=3))
        args = Seq2SeqTrainingArguments(output_dir=out, num_train_epochs=1, per_device_train_batch_size=8,
                                        save_strategy="epoch", eval_strategy="no", report_to="none",
                                        disable_tqdm=True)
        return Seq2SeqTrainer(model=model, args=args, train_dataset=data["train"],
                              data_collator=DataCollatorForSeq2Seq(tok, model=model), processing_class=tok,
                              callbacks=[preemption.PreemptionCallback()])

    preemption.request_stop(tmp_path)  # what the runner does when Slurm sends the warning signal
    first = trainer()
    first.train()
    with pytest.raises(preemption.Preempted, match="after step 1"):
        preemption.raise_if_preempted(first)
    assert get_last_checkpoint(out).endswith("checkpoint-1"), "saved before stopping"

    preemption.clear_stop(tmp_path)  # the requeued attempt
    second = trainer()
    second.train(resume_from_checkpoint=get_last_checkpoint(out))
    preemption.raise_if_preempted(second)
    assert second.state.global_step == 64 // 8 and get_last_checkpoint(out).endswith("checkpoint-8")


@pytest.mark.notebook
def test_max_steps_smoke_run_with_the_reference_solutions(runs_dir, tmp_path):
    """A smoke run: `-p max_steps 2` stops the Trainer after 2 steps (2 epochs would be 40); with
    `-p solutions True` every checked exercise says 正解です (left undone they say todo:
    test_bart_notebook_runs_on_generated_data)."""
    data = write_parallel(tmp_path / "data", sizes=(320, 16, 8))
    proc = coursekit_cli("run", NOTEBOOK, "--profile", "tiny", "--name", "smoke",
                         "-p", "data_dir", str(data), "-p", "epochs", "2", "-p", "max_steps", "2",
                         "-p", "solutions", "True", *SMALL, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = runs_dir / "03_bart_translation" / "smoke"
    record = metrics(folder)
    assert record["status"] == "completed" and record["params"]["max_steps"] == 2
    assert record["metrics"]["training"]["global_step"] == 2
    # progress lines in the runner's stdout (the job's log): training and translation
    assert "[train] step 1/2 (50%)" in proc.stdout and "[train] step 2/2 (100%)" in proc.stdout
    assert "[translate] item 1/1 (100%)" in proc.stdout
    assert record["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "open"}
    html = (folder / "03_bart_translation.html").read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 2 and "解答例:" in html
