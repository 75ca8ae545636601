"""The run record: what a notebook measured, in metrics.json beside the executed notebook.

    run = open_run("02_livedoor_bert")   # the runner's run folder, or a new one in JupyterLab
    with run.phase("fine-tune"):          # wall time of a phase
        ...
    run.log(accuracy=0.93)                # any JSON-serialisable values
    run.save_figure(fig, "curves")        # curves.png in the run folder, listed in metrics.json

The runner writes the parameters it resolved and the outcome (status, error, times); the notebook adds
its phases, metrics, curves and figures. metrics.json is rewritten atomically after every change, so
a job that is killed keeps what it had measured. `coursekit report` reads only this file.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..contracts import MAIN_RUN_DIR_ENV, METRICS_FILE, RUN_DIR_ENV, WARNINGS_FILE
from . import runs
from .timing import format_seconds, stopwatch, timestamp

SCHEMA = 1


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


def read_warnings(run_dir: Path) -> list[dict]:
    """The data warnings the lesson code left in the run folder's warnings.json (a corpus that differs
    from the release, unreadable files, dropped lines); [] when there are none or the file is unreadable.
    The runner copies them into metrics.json as "warnings"."""
    try:
        entries = json.loads((Path(run_dir) / WARNINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def describe_device(device: dict | None) -> tuple[str, str | None]:
    """('2 x NVIDIA H100', "gpu") or ('CPU: AMD EPYC x 16', "cpu") from a record's device section."""
    if not device:
        return "?", None
    gpus = device.get("gpus") or []
    if gpus:
        names = sorted(set(gpus))
        return " + ".join(f"{gpus.count(n)} x {n}" for n in names), "gpu"
    return f"CPU: {device.get('cpu', '?')} x {device.get('cpu_count', '?')}", "cpu"


def phase_order(phase_tables) -> list[str]:
    """Every phase name of several records' "phases", in the order first seen."""
    names: list[str] = []
    for phases in phase_tables:
        names += [p for p in phases if p not in names]
    return names


def phase_bars(ax, bars: list[tuple[str, dict]]) -> None:
    """Stacked horizontal bars, one per (label, {phase: seconds}): the time of each phase
    (`Run.plot_phases`, `coursekit report` and notebook 05 draw phases with it)."""
    import matplotlib

    phases = phase_order(p for _, p in bars)
    labels, left = [label for label, _ in bars], [0.0] * len(bars)
    colors = matplotlib.colormaps["tab20"]  # 20 distinct colours: runs of several notebooks have many phases
    for n, phase in enumerate(phases):
        widths = [p.get(phase, 0.0) for _, p in bars]
        ax.barh(labels, widths, left=left, label=phase, color=colors(n % 20))
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("秒")
    ax.set_title("フェーズごとの時間")
    ax.invert_yaxis()
    if phases:  # beside the axes, so it never hides a bar
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def new_record(notebook: str, profile: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The start of a run record: what ran, where, with which parameters."""
    from .device import device_summary  # light: reads frameworks already imported, or nvidia-smi

    return {
        "schema": SCHEMA,
        "notebook": notebook,
        "profile": profile,
        "params": _jsonable(params),
        "status": "running",
        "started": timestamp(),
        "updated": timestamp(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "python": sys.version.split()[0],
        "device": device_summary(),
        "phases": {},
        "metrics": {},
    }


class Run:
    """One execution of a notebook: its parameters, phase times, metrics and status (`data`, as in
    metrics.json)."""

    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter() - float(data.get("elapsed_s") or 0.0)
        self.data = data
        self.notebook = data["notebook"]
        self.save()

    @property
    def path(self) -> Path:
        return self.dir / METRICS_FILE

    @property
    def shared_dir(self) -> Path:
        """Rank 0's run folder: the same folder on every process of a data-parallel run (put what all
        ranks must share there, such as the Trainer's checkpoints); `dir` in a single-process run.
        On ranks > 0, `dir` is the rank's own scratch folder."""
        main = os.environ.get(MAIN_RUN_DIR_ENV)
        return Path(main) if main else self.dir

    def save(self) -> None:
        self.data["updated"] = timestamp()
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

    def plot_phases(self, name: str = "phases"):
        """A bar chart of this run's phase times (the same drawing as `coursekit report`), saved as
        <name>.png in the run folder; returns the figure."""
        import matplotlib.pyplot as plt

        from ..jpfont import use_japanese_font

        use_japanese_font()
        fig, ax = plt.subplots(figsize=(8, 2.2))
        device, _ = describe_device(self.data.get("device"))
        phase_bars(ax, [(f"{self.notebook[:2]} {self.dir.name}\n{device}", self.data["phases"])])
        self.save_figure(fig, name)
        return fig

    def finish(self) -> dict:
        """Mark the run completed, print a summary of the phases and return the record."""
        self.data["status"] = "completed"
        self.data["finished"] = timestamp()
        self.save()
        for name, seconds in self.data["phases"].items():
            print(f"  {name:<24} {format_seconds(seconds):>12}")
        print(f"  {'total / 合計':<22} {format_seconds(self.data['elapsed_s']):>12}   -> {self.path}")
        return self.data


def _notebook_namespace_params(notebook: str) -> tuple[str | None, dict[str, Any]]:
    """In JupyterLab: the current values of the names the notebook's parameters cell declares."""
    import __main__

    from . import params

    root = runs.project_root()
    path = (root / "notebooks" / f"{notebook}.ipynb") if root else None
    if path is None or not path.is_file():
        return None, {}
    names = params.declared(path)
    values = {n: getattr(__main__, n) for n in names if hasattr(__main__, n)}
    return values.pop("profile", None), values


def open_run(notebook: str, in_report: bool = True) -> Run:
    """The run record of this notebook execution.

    Under the runner ($COURSEKIT_RUN_DIR set) it continues the record the runner began (parameters
    included); run interactively (JupyterLab) it opens runs/<notebook>/<timestamp>/ and records the
    current values of the notebook's parameters. `in_report=False` keeps this run out of
    `coursekit report` (a notebook that reports on other runs is not a result itself).
    """
    env_dir = os.environ.get(RUN_DIR_ENV)
    if env_dir:
        try:
            data = read_metrics(Path(env_dir))
        except (OSError, json.JSONDecodeError):
            data = new_record(notebook, None, {})
        data.setdefault("phases", {})
        data.setdefault("metrics", {})
        run = Run(Path(env_dir), data)
    else:
        profile, values = _notebook_namespace_params(notebook)
        run = Run(runs.new_run_dir(notebook), new_record(notebook, profile, values))
    if not in_report:
        run.data["in_report"] = False
        run.save()
    print(f"run folder / 実行フォルダ: {run.dir}", flush=True)
    return run
