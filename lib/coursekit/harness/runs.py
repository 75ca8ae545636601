"""Run folders: where an executed notebook, its HTML, metrics and plots land.

    runs/<notebook-stem>/<SLURM_JOB_ID or timestamp>/

A run folder is never reused for a different run: a name already taken gets a suffix (-2, -3, ...).
The one exception is a requeued Slurm job (same job id, SLURM_RESTART_COUNT > 0): it continues in
its earlier attempt's folder, where its checkpoints are (see `resume_run_dir`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

METRICS_FILE = "metrics.json"  # the run record in every run folder (see record.py)


def project_root(start: Path | None = None) -> Path | None:
    """The kit's checkout (the folder with pyproject.toml and lib/coursekit) above `start`, if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "lib" / "coursekit").is_dir():
            return folder
    return None


def runs_root() -> Path:
    """$COURSEKIT_RUNS, else runs/ in the kit's checkout above the current folder, else ./runs."""
    if os.environ.get("COURSEKIT_RUNS"):
        return Path(os.environ["COURSEKIT_RUNS"]).expanduser().resolve()
    root = project_root()
    return (root if root else Path.cwd()) / "runs"


def run_name(env: dict | None = None) -> str:
    """The Slurm job id (array jobs: <array job>_<task>) when inside a job, else a timestamp."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"]
    return time.strftime("%Y%m%d-%H%M%S")


def new_run_dir(notebook: str, root: Path | None = None, name: str | None = None) -> Path:
    """Create and return a fresh folder runs/<notebook>/<name>[-N]."""
    parent = (root or runs_root()) / notebook
    parent.mkdir(parents=True, exist_ok=True)
    base = name or run_name()
    for n in range(1, 1000):
        candidate = parent / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not find a free run folder name under {parent}")


def restart_count(env: dict | None = None) -> int:
    """How often Slurm has requeued this job (0 outside Slurm and on the first attempt)."""
    env = os.environ if env is None else env
    try:
        return int(env.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def resume_run_dir(notebook: str, root: Path | None = None, env: dict | None = None) -> Path | None:
    """The existing folder of this job's earlier attempt, when this is a requeued Slurm job."""
    env = os.environ if env is None else env
    if restart_count(env) < 1 or not env.get("SLURM_JOB_ID"):
        return None
    folder = (root or runs_root()) / notebook / run_name(env)
    return folder if folder.is_dir() else None
