"""The run record: what a notebook measured, in metrics.json beside the executed notebook.

    run = start_run("00_gpu_check", profile, matmul_size=matmul_size)
    cfg = run.cfg                      # parameters merged over the profile's values
    with run.phase("fine-tune"):       # wall time of a phase
        ...
    run.log(accuracy=0.93)             # any JSON-serialisable values
    run.finish()

metrics.json is rewritten (atomically) after every phase and every log call, so a job that is killed
keeps what it had measured. The runner and `coursekit report` read only this file.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from . import profiles, runs
from .timing import format_seconds, stopwatch

METRICS_FILE = "metrics.json"
SCHEMA = 1


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, Paths, sets and NaN turned into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors on CPU
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically: a reader (or a killed job) never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(_jsonable(data), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> dict:
    """The metrics.json of a run folder (raises FileNotFoundError / json.JSONDecodeError)."""
    return json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))


class Run:
    """One execution of a notebook: its parameters, phase times, metrics and status."""

    def __init__(self, notebook: str, cfg, run_dir: Path):
        self.notebook = notebook
        self.cfg = cfg
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        from .gpu import device_summary  # light: reads frameworks already imported, or nvidia-smi

        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "notebook": notebook,
            "profile": cfg.profile,
            "params": vars(cfg),
            "status": "running",
            "started": _now(),
            "updated": _now(),
            "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "python": sys.version.split()[0],
            "device": device_summary(),
            "phases": {},
            "metrics": {},
        }
        self.save()

    @property
    def path(self) -> Path:
        return self.dir / METRICS_FILE

    def save(self) -> None:
        self.data["updated"] = _now()
        self.data["elapsed_s"] = round(time.perf_counter() - self._t0, 3)
        write_json(self.path, self.data)

    @contextmanager
    def phase(self, name: str, sync: Callable[[], None] | None = None) -> Iterator[None]:
        """Time a phase; its wall seconds go into metrics.json under "phases" (summed if repeated)."""
        print(f"[{name}] ...", flush=True)
        with stopwatch(sync) as t:
            yield
        phases = self.data["phases"]
        phases[name] = round(phases.get(name, 0.0) + t["seconds"], 3)
        print(f"[{name}] {format_seconds(t['seconds'])}", flush=True)
        self.save()

    def log(self, **metrics: Any) -> None:
        """Record measured values (accuracy, BLEU, speed-up, ...) under "metrics"."""
        self.data["metrics"].update(_jsonable(metrics))
        self.save()

    def log_curve(self, name: str, points: list[dict]) -> None:
        """Record a training curve (e.g. "loss": [{"step": 10, "loss": 2.3, "eval_loss": 2.5}, ...])
        under "curves"; `coursekit report` and notebook 05 overlay the curves of several runs."""
        self.data.setdefault("curves", {})[name] = _jsonable(points)
        self.save()

    def set_device(self, **info: Any) -> None:
        """Add to the device description (e.g. the framework's own device string)."""
        self.data["device"].update(_jsonable(info))
        self.save()

    def file(self, name: str) -> Path:
        """A path inside the run folder, for plots and artifacts."""
        return self.dir / name

    def save_figure(self, fig, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG in the run folder and list it in metrics.json."""
        path = self.file(name if name.endswith(".png") else f"{name}.png")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        figures = self.data.setdefault("figures", [])
        if path.name not in figures:
            figures.append(path.name)
        self.save()
        return path

    def finish(self) -> dict:
        """Mark the run completed, print a summary of the phases and return the record."""
        self.data["status"] = "completed"
        self.data["finished"] = _now()
        self.save()
        for name, seconds in self.data["phases"].items():
            print(f"  {name:<24} {format_seconds(seconds):>12}")
        print(f"  {'total':<24} {format_seconds(self.data['elapsed_s']):>12}   -> {self.path}")
        return self.data


def start_run(notebook: str, profile: str, /, **params: Any) -> Run:
    """Resolve the notebook's parameters over its profile and open its run record.

    Under the runner ($COURSEKIT_RUN_DIR set) the record goes into the runner's run folder;
    run interactively (JupyterLab), it goes into a new folder runs/<notebook>/<timestamp>/.
    """
    cfg = profiles.resolve(notebook, profile, **params)
    env_dir = os.environ.get("COURSEKIT_RUN_DIR")
    run_dir = Path(env_dir) if env_dir else runs.new_run_dir(notebook)
    return Run(notebook, cfg, run_dir)
