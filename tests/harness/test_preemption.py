"""Preemption without Slurm: the warning signal becomes a checkpoint and exit 75; a requeued attempt
reuses its run folder; the transformers Trainer callback saves and stops. (With a real Slurm:
tests/harness/test_slurm.py.)"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coursekit.harness import preemption

from ..conftest import ROOT
from .slurmjobs import wait
from .test_slurm import COUNTER_NB


def test_runner_turns_the_warning_into_a_checkpoint_and_exit_75(runs_dir):
    """The runner's side of preemption, without Slurm: USR1 -> PREEMPT file -> Preempted -> 75."""
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "run", str(COUNTER_NB), "--name", "p",
                             "-p", "steps", "40", "-p", "step_seconds", "0.25", "--no-html"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counter = runs_dir / "counter_training" / "p" / "counter.json"
    wait(lambda: counter.exists() and json.loads(counter.read_text())["step"] >= 2, 120, "training")
    proc.send_signal(__import__("signal").SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == preemption.EX_PREEMPTED, err[-2000:]
    state = json.loads(counter.read_text())
    assert 2 <= state["step"] < 40 and "done" not in state
    data = json.loads((counter.parent / "metrics.json").read_text())
    assert data["status"] == "preempted" and "Preempted" in data["runner"]["error"]


def test_requeued_job_reuses_its_run_folder_and_keeps_the_first_attempt(runs_dir, monkeypatch):
    from coursekit.harness.runner import run_notebook

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    first = run_notebook(COUNTER_NB, None, {"steps": 2, "step_seconds": 0.0}, html=False, quiet=True)
    (first.run_dir / preemption.PREEMPT_FILE).write_text("left over\n")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    second = run_notebook(COUNTER_NB, None, {"steps": 4, "step_seconds": 0.0}, html=False, quiet=True)
    assert second.run_dir == first.run_dir == runs_dir / "counter_training" / "4242"
    assert (second.run_dir / "counter_training.attempt1.ipynb").is_file()
    assert json.loads((second.run_dir / "metrics.attempt1.json").read_text())["runner"]["attempt"] == 1
    assert second.metrics["runner"]["attempt"] == 2 and second.ok
    state = json.loads((second.run_dir / "counter.json").read_text())
    assert state["attempts"] == [1, 2] and state["resumed_from"] == [0, 2] and state["step"] == 4
    assert not (second.run_dir / preemption.PREEMPT_FILE).exists(), "an old warning does not stop the new attempt"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    other = run_notebook(COUNTER_NB, None, {"steps": 1, "step_seconds": 0.0}, html=False, quiet=True)
    assert other.run_dir.name == "4242-2", "a first attempt never reuses a folder"


def test_trainer_callback_saves_and_stops_when_warned(tmp_path, monkeypatch):
    from transformers import TrainerControl, TrainerState

    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    callback = preemption.PreemptionCallback()
    state, control = TrainerState(global_step=7), TrainerControl()
    callback.on_step_end(None, state, control)
    assert not control.should_save and not control.should_training_stop
    preemption.raise_if_preempted()  # nothing requested: no exception
    preemption.request_stop(tmp_path)
    callback.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop

    class Trainer:
        pass

    trainer = Trainer()
    trainer.state = state
    with pytest.raises(preemption.Preempted, match="after step 7"):
        preemption.raise_if_preempted(trainer)
