"""Preemption and time limits: checkpoint when warned, requeue, resume.

Slurm sends the warning signal (`#SBATCH --signal=B:USR1@300`: USR1 five minutes before the end)
to the batch shell; sbatch/run-notebook.sh touches the stop file $COURSEKIT_STOP_FILE (a USR1 sent to
the runner itself makes it write PREEMPT_FILE into the run folder). The notebook (a separate kernel
process) sees either here:

    from coursekit.harness import preemption
    state = preemption.load_state("counter.json", {"step": 0})      # {"step": 0} on the first attempt
    for step in range(state["step"], steps):
        ...one training step...
        state["step"] = step + 1
        if preemption.stop_requested():
            preemption.save_state("counter.json", state)
            raise preemption.Preempted(f"checkpoint at step {step + 1}")

`Preempted` ends the notebook; the runner records the run as "preempted" and exits with status
EX_PREEMPTED; the batch script requeues the job (`scontrol requeue`). The requeued job has the same
job id, so the runner reuses the same run folder (keeping the earlier attempt's notebook) and
`load_state` finds the checkpoint. With a transformers Trainer pass `PreemptionCallback()` in
`callbacks=` and call `raise_if_preempted(trainer)` after `trainer.train(...)`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..contracts import MAIN_RUN_DIR_ENV, RUN_DIR_ENV
from .record import write_json
from .runs import restart_count

PREEMPT_FILE = "PREEMPT"  # written into the run folder when the warning signal arrived
EX_PREEMPTED = 75         # the runner's exit status for "checkpoint saved, please requeue"


class Preempted(Exception):
    """Raise after saving a checkpoint: the job stops now and is requeued to continue later."""


def run_dir() -> Path:
    """The run folder of the notebook being executed ($COURSEKIT_RUN_DIR), else the current folder."""
    return Path(os.environ.get(RUN_DIR_ENV) or ".")


def attempt() -> int:
    """1 for the first run of a job, 2 after the first requeue, ... (from SLURM_RESTART_COUNT)."""
    return restart_count() + 1


def request_stop(folder: Path | None = None, reason: str = "warning signal") -> Path:
    """Ask the notebook running in `folder` to checkpoint and stop (what the runner does on USR1)."""
    path = Path(folder or run_dir()) / PREEMPT_FILE
    path.write_text(reason + "\n", encoding="utf-8")
    return path


def stop_requested() -> bool:
    """True once the job was warned that it will be stopped (cheap: one or two stat calls). In a
    data-parallel run, a warning in rank 0's run folder counts on every rank."""
    if (run_dir() / PREEMPT_FILE).exists():
        return True
    stop_file = os.environ.get("COURSEKIT_STOP_FILE")   # what sbatch/run-notebook.sh touches on the warning
    if stop_file and Path(stop_file).exists():
        return True
    main = os.environ.get(MAIN_RUN_DIR_ENV)
    return bool(main) and (Path(main) / PREEMPT_FILE).exists()


def clear_stop(folder: Path | None = None) -> None:
    """Forget an earlier warning (the runner does this when a requeued attempt starts)."""
    (Path(folder or run_dir()) / PREEMPT_FILE).unlink(missing_ok=True)


def load_state(name: str, default: Any = None) -> Any:
    """A JSON checkpoint from the run folder, or `default` when there is none yet."""
    path = run_dir() / name
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def save_state(name: str, state: Any) -> Path:
    """Write a JSON checkpoint into the run folder atomically (a kill never leaves half a file)."""
    path = run_dir() / name
    write_json(path, state)
    return path


def PreemptionCallback():  # noqa: N802 - a factory that reads like the class it returns
    """A transformers TrainerCallback: when the warning arrives, save a checkpoint and stop training.

        trainer = Trainer(..., callbacks=[preemption.PreemptionCallback()])   # output_dir in run.dir
        trainer.train(resume_from_checkpoint=get_last_checkpoint(args.output_dir))
        preemption.raise_if_preempted(trainer)   # ends the notebook here; the job is requeued

    transformers is imported only when this is called.
    """
    from transformers import TrainerCallback

    from .distributed import stop_flag_all_ranks

    class _PreemptionCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # data-parallel: every rank must stop at the same step (a rank still training would wait
            # forever for the others in the next gradient all-reduce), so the flag is all-reduced
            if stop_flag_all_ranks(stop_requested()):
                state.preempted = True
                control.should_save = True
                control.should_training_stop = True
            return control

    return _PreemptionCallback()


def raise_if_preempted(trainer=None) -> None:
    """Raise Preempted if the warning arrived (after Trainer.train() returned early because of it)."""
    preempted = getattr(getattr(trainer, "state", None), "preempted", False)
    if trainer is not None and int(os.environ.get("WORLD_SIZE") or 1) > 1:
        warned = preempted   # several processes: the all-reduced decision of the callback, the same on all
    else:
        warned = stop_requested() or preempted
    if warned:
        step = getattr(getattr(trainer, "state", None), "global_step", None)
        where = f" after step {step}" if step is not None else ""
        where_ja = f"ステップ {step} の後で" if step is not None else ""
        raise Preempted(f"stopped for requeue{where} / 再投入のために{where_ja}止めました")
