"""Notebook 03 runs through the runner on generated parallel data and records a real BLEU."""
import json

import nbformat
import pytest

from ..conftest import coursekit_cli
from ..lessons.test_translation import write_parallel


@pytest.mark.notebook
def test_bart_notebook_runs_on_generated_data(runs_dir, tmp_path):
    data = write_parallel(tmp_path / "data", sizes=(320, 32, 24))
    proc = coursekit_cli(
        "run", "notebooks/03_bart_translation.ipynb", "--profile", "tiny", "--name", "t3",
        "-p", "data_dir", str(data), "-p", "vocab_size", "120", "-p", "d_model", "32", "-p", "layers", "1",
        "-p", "max_length", "24", "-p", "epochs", "2", "-p", "batch_size", "16",
        "-p", "learning_rate", "0.003", "-p", "num_beams", "1", "-p", "examples", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = runs_dir / "03_bart_translation" / "t3"
    for name in ("03_bart_translation.ipynb", "03_bart_translation.html", "metrics.json", "loss.png",
                 "lengths.png", "token_lengths.png", "phases.png", "checkpoints/tokenizer/spiece.model"):
        assert (folder / name).is_file(), name
    assert (folder / "checkpoints" / "checkpoint-40").is_dir(), "a checkpoint after each epoch"
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed" and record["runner"]["status"] == "completed"
    m = record["metrics"]
    assert m["pairs"] == {"train": 320, "validation": 32, "test": 24}
    assert 0.0 <= m["bleu"] <= 100.0 and m["bleu_tokenizer"] in ("ja-mecab", "char")
    assert m["sentences"] == 24 and 0.0 <= m["chrf"] <= 100.0
    assert len(m["eval_losses"]) == 2 and m["last_loss"] < m["first_loss"]
    assert m["training"]["global_step"] == 40 and m["training"]["resumed_from_step"] == 0
    assert len(m["examples"]) == 3 and all(" " not in e["参照訳"] for e in m["examples"])
    assert any("eval_loss" in p for p in record["curves"]["loss"])
    assert set(record["phases"]) == {"load", "model", "tokenize", "train", "evaluate"}
    executed = nbformat.read(str(folder / "03_bart_translation.ipynb"), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
