"""Progress lines for the job log: throttling, the generic loop wrapper, the Keras and transformers
callbacks, and the lines reaching the runner's stdout while the cell still runs."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest

from coursekit.harness import progress
from coursekit.harness.progress import Progress

from ..conftest import ROOT, write_notebook


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_prints_the_first_update_then_at_most_every_n_seconds_and_always_at_the_end():
    out, clock = io.StringIO(), Clock()
    bar = Progress("train", total=100, every=10, stream=out, clock=clock)
    clock.t += 2
    # the rate counts from the start: 1 step in 2 s, 99 steps left
    assert bar.update(1, loss=2.345678) == "[train] step 1/100 (1%) loss 2.346 | 2.0 s elapsed (経過), ~3 min 18 s left (残り)"
    clock.t += 5
    assert bar.update(5) is None, "5 s after the last line: nothing"
    clock.t += 6
    line = bar.update(20, loss=1.5)
    assert line == "[train] step 20/100 (20%) loss 1.5 | 13.0 s elapsed (経過), ~52.0 s left (残り)"
    clock.t += 1
    assert bar.finish(21).startswith("[train] step 21/100 (21%) | 14.0 s elapsed")
    assert out.getvalue().count("\n") == 3 and bar.lines == 3


def test_progress_without_total_and_with_strings_tensors_and_missing_values():
    out, clock = io.StringIO(), Clock()
    bar = Progress("encode", every=0, unit="document", stream=out, clock=clock)
    np = pytest.importorskip("numpy")
    line = bar.update(7, epoch="1/2", loss=np.float32(0.25), accuracy=None, note=object())
    assert line == "[encode] document 7 epoch 1/2 loss 0.25 | 0.0 s elapsed (経過)"


def test_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.ENV_EVERY, "2.5")
    assert progress.interval() == 2.5 and progress.interval(7) == 7.0
    monkeypatch.setenv(progress.ENV_EVERY, "soon")
    assert progress.interval() == progress.DEFAULT_EVERY


def test_progress_wraps_a_loop(capsys):
    assert list(progress.progress(range(4), what="translate", every=0)) == [0, 1, 2, 3]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" |")[0] for line in lines] == [
        "[translate] item 1/4 (25%)", "[translate] item 2/4 (50%)", "[translate] item 3/4 (75%)",
        "[translate] item 4/4 (100%)", "[translate] item 4/4 (100%)"]
    # a long interval: the first item and the end only; a generator has no len(): no total
    list(progress.progress((i for i in range(50)), what="gen", every=3600))
    assert [line.split(" |")[0] for line in capsys.readouterr().out.splitlines()] == [
        "[gen] item 1", "[gen] item 50"]
    for _ in progress.progress(range(10), what="cut", every=3600):
        break
    assert capsys.readouterr().out.splitlines()[-1].startswith("[cut] item 0/10"), "a loop left early ends too"


def test_keras_callback_prints_steps_epochs_and_prediction(capsys):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    np = pytest.importorskip("numpy")
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    x, y = np.random.rand(40, 3).astype("float32"), np.random.randint(0, 2, 40)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=2, batch_size=10, verbose=0,
              callbacks=[progress.KerasProgress("fine-tune", every=0)])
    model.predict(x, batch_size=20, verbose=0, callbacks=[progress.KerasProgress("evaluate", every=0)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[fine-tune] step 1/8 (12%) epoch 1/2 loss ")
    epoch_end = [line for line in lines if "epoch 1/2 done" in line]
    assert len(epoch_end) == 1 and "val_loss" in epoch_end[0] and "val_accuracy" in epoch_end[0]
    assert any(line.startswith("[fine-tune] step 8/8 (100%) finished fit") for line in lines)
    assert [line.split(" |")[0] for line in lines if line.startswith("[evaluate: predict]")] == [
        "[evaluate: predict] batch 1/2 (50%)", "[evaluate: predict] batch 2/2 (100%)",
        "[evaluate: predict] batch 2/2 (100%)"]
    assert all(re.search(r"\| [\d.]+ s elapsed", line) for line in lines if line.startswith("[fine-tune]"))


def test_trainer_callback_prints_steps_loss_and_evaluation(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from transformers import Trainer, TrainingArguments

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, x, labels=None):
            out = self.linear(x).squeeze(-1)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    data = [{"x": torch.tensor([i / 10, 1.0]), "labels": torch.tensor(i / 5)} for i in range(24)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4,
                             per_device_eval_batch_size=4, eval_strategy="steps", eval_steps=3,
                             logging_steps=2, save_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True)
    trainer = Trainer(model=Tiny(), args=args, train_dataset=data, eval_dataset=data[:8],
                      callbacks=[progress.TrainerProgress("train", every=0)])
    trainer.train()
    lines = capsys.readouterr().out.splitlines()
    ours = [line for line in lines if line.startswith("[train")]
    steps = [line.split(" |")[0] for line in ours if line.startswith("[train] step")]
    assert steps[0] == "[train] step 1/6 (17%) epoch 0.17"
    # step 2 logs its loss after its step_end: the line of step 3 shows it
    assert any(s.startswith("[train] step 3/6 (50%) epoch 0.5 loss ") for s in steps), "the logged loss"
    assert steps[-1].startswith("[train] step 6/6 (100%) loss ") and "train_loss" in steps[-1]
    evals = [line for line in ours if line.startswith("[train: evaluate] batch 2/2 (100%) at_step")]
    assert len(evals) == 2 and "eval_loss" in evals[0]
    assert "at_step 3" in evals[0] and "at_step 6" in evals[1]


def test_lines_reach_the_runner_stdout_while_the_cell_runs(tmp_path):
    """papermill forwards the kernel's stdout to the runner's stdout (the job's log) line by line:
    each line arrives while the loop is still running, not when the cell ends."""
    nb = write_notebook(tmp_path / "slow.ipynb", 'profile = "full"  # profile\nsteps = 5  # loop length',
                        "import time\nfrom coursekit.harness import progress\n"
                        "for i in progress.progress(range(steps), what='slow', every=0):\n"
                        "    time.sleep(0.8)\n"
                        "time.sleep(1.5)\n"
                        "print('cell done', flush=True)")
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "run", str(nb), "--runs-dir", str(tmp_path / "runs"),
                             "--no-html"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    seen = {}
    for line in proc.stdout:
        seen.setdefault(line.split(" |")[0].strip(), time.monotonic())
    assert proc.wait(timeout=300) == 0
    first, last, done = seen["[slow] item 1/5 (20%)"], seen["[slow] item 5/5 (100%)"], seen["cell done"]
    assert last - first > 2.4, "four sleeps of 0.8 s between the first and the last line: they came one by one"
    assert done - last > 1.0, "the last progress line arrived before the cell ended"
