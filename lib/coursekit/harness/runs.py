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


class RunFolderError(ValueError):
    """A run name that would leave the runs folder, or a runs folder that cannot be used."""


def check_name(name: str, what: str = "run name") -> str:
    """A run or notebook name is one plain folder name: it can never leave the runs folder."""
    text = str(name)
    if (not text.strip() or text in (".", "..") or "/" in text or "\\" in text or "\0" in text
            or text.startswith("~") or Path(text).is_absolute() or text != text.strip()):
        raise RunFolderError(f"{what} {name!r} is not a plain folder name: it must stay inside the runs "
                             "folder (no '/', no '..', not absolute, not empty) / "
                             f"{name!r} はフォルダ名に使えません('/' や '..' を含まない、空でない名前にしてください)")
    return text


def check_root(root: Path) -> Path:
    """The runs folder, created if needed; a clear RunFolderError when it is a file or not writable."""
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"runs folder {root} is a file, not a folder: pass another --runs-dir / "
                             "これはフォルダではなくファイルです。--runs-dir で別のフォルダを指定してください")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(f"runs folder {root} cannot be used ({exc.strerror or exc}): pass a "
                             "writable folder with --runs-dir or set COURSEKIT_RUNS / このフォルダには書き込めません。"
                             "書き込めるフォルダを --runs-dir か COURSEKIT_RUNS で指定してください") from None
    return root


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
    """Create and return a fresh folder runs/<notebook>/<name>[-N] (names are checked: a run folder
    never lands outside the runs folder)."""
    base = check_name(name or run_name())
    parent = check_root(root or runs_root()) / check_name(notebook, "notebook name")
    parent.mkdir(parents=True, exist_ok=True)
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
