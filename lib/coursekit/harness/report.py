"""Every run compared: `python -m coursekit report [RUNS_DIR]`.

Reads each run folder's metrics.json and the executed notebook's papermill metadata, and writes a table
(CSV and Markdown) of runs: notebook, profile, parameters that differ, device, phase times, speed-up
against the slowest comparable run, accuracy / BLEU / loss, status. A damaged run folder (job killed
mid-run, metrics cut short, failed notebook) is listed as such; it never stops the report.
"""
from __future__ import annotations

import csv
import fnmatch
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contracts import HEADLINE_METRICS, METRICS_FILE, RUN_DIR_ENV
from . import runs
from .record import describe_device, phase_order, read_metrics, read_warnings
from .utilisation import IDLE_BELOW
from .timing import format_seconds


@dataclass
class RunInfo:
    """One run folder as the report sees it."""

    path: Path
    notebook: str
    run: str
    status: str
    error: str | None = None
    profile: str | None = None
    params: dict = field(default_factory=dict)
    device: str = "?"
    device_kind: str | None = None
    job_id: str | None = None
    started: str | None = None
    total_s: float | None = None
    phases: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    differing: dict = field(default_factory=dict)
    injected: dict = field(default_factory=dict)  # a damaged run: what the runner injected
    speedup: float | None = None
    warnings: list = field(default_factory=list)   # data warnings: a corpus that differs from the release
    processes: int = 1                  # data-parallel processes (GPUs) that ran it together
    util_mean: float | None = None      # mean GPU (or CPU) utilisation over the run, percent
    util_kind: str | None = None        # "gpu" or "cpu"
    idle: bool | None = None            # the devices sat mostly idle (utilisation.IDLE_BELOW)
    scaling: float | None = None        # speed-up against the same run on fewer processes
    efficiency: float | None = None     # scaling / (processes / fewer processes)


def _warning_entries(data: dict | None, folder: Path) -> list[dict]:
    """metrics.json's "warnings" (copied there by the runner), else the run folder's warnings.json
    (a run killed before the runner could copy it)."""
    entries = (data or {}).get("warnings")
    if not isinstance(entries, list):
        return read_warnings(folder)
    return [e for e in entries if isinstance(e, dict)]


def warning_text(entry: dict) -> str:
    return f"{entry.get('source', '?')}: {entry.get('message', '')}"


def _papermill_meta(folder: Path, notebook: str) -> dict:
    """Start/end, status and parameters from the executed notebook, if it is readable."""
    path = folder / f"{notebook}.ipynb"
    if not path.is_file():
        candidates = sorted(folder.glob("*.ipynb"))
        if not candidates:
            return {}
        path = candidates[0]
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    except (OSError, json.JSONDecodeError):
        return {"unreadable": True}
    return meta


def _scalar_metrics(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = value
        elif isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
            out.update({f"{key}.{k}": v for k, v in value.items()})  # e.g. gpu_speedup.torch
    return out


def read_run(folder: Path) -> RunInfo:
    """Read one run folder; never raises for a damaged one."""
    folder = Path(folder)
    notebook = folder.parent.name
    info = RunInfo(path=folder, notebook=notebook, run=folder.name, status="incomplete")
    meta = _papermill_meta(folder, notebook)
    try:
        data = read_metrics(folder)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        info.error = "metrics.json missing (killed before the notebook started its run record?)"
        data = None
    except (ValueError, OSError) as exc:
        info.error = f"metrics.json unreadable ({type(exc).__name__}: {exc})"
        data = None
    info.warnings = _warning_entries(data, folder)
    if data is None:
        if meta.get("exception"):
            info.status = "failed"
        # only what the runner injected is known: shown where it varies, never compared with
        info.injected = {k: v for k, v in (meta.get("parameters") or {}).items() if k != "profile"}
        info.differing = dict(info.injected)
        info.profile = (meta.get("parameters") or {}).get("profile")
        info.started = meta.get("start_time")
        return info

    runner = data.get("runner") or {}
    info.status = data.get("status") or "incomplete"
    if info.status == "running":  # the notebook never finished and no runner recorded an outcome
        info.status = "incomplete"
    info.error = runner.get("error")
    if info.status == "incomplete" and not info.error:
        info.error = "run record never finished (job killed or still running)"
    info.notebook = data.get("notebook") or notebook
    info.profile = data.get("profile")
    info.params = {k: v for k, v in (data.get("params") or {}).items() if k != "profile"}
    info.device, info.device_kind = describe_device(data.get("device"))
    info.job_id = data.get("slurm_job_id") or runner.get("slurm_job_id")
    info.started = data.get("started") or meta.get("start_time")
    info.total_s = runner.get("duration_s") or data.get("elapsed_s")
    info.phases = {k: v for k, v in (data.get("phases") or {}).items() if isinstance(v, (int, float))}
    info.metrics = _scalar_metrics(data.get("metrics") or {})
    info.curves = data.get("curves") or {}
    info.processes = int(runner.get("processes") or 1)
    util = data.get("utilisation") or {}
    if util.get("samples"):
        info.util_mean, info.util_kind, info.idle = util.get("util_mean"), util.get("kind"), util.get("idle")
    return info


def _in_report(folder: Path) -> bool:
    try:
        return read_metrics(folder).get("in_report", True) is not False
    except (OSError, ValueError):
        return True


def find_runs(root: Path, notebook: str = "*", run: str = "*") -> list[RunInfo]:
    """Every run folder under root/<notebook>/<run>/ (globs), oldest first within a notebook.
    Runs whose record says `"in_report": false` (the report notebook's own runs) are left out
    unless `notebook` names them."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder not found: {root}")
    own = os.environ.get(RUN_DIR_ENV)  # the report notebook's own run is not a result
    skip = Path(own).resolve() if own else None
    found = []
    for nb_dir in sorted(p for p in root.iterdir() if p.is_dir() and fnmatch.fnmatch(p.name, notebook)):
        for folder in sorted(p for p in nb_dir.iterdir() if p.is_dir() and fnmatch.fnmatch(p.name, run)):
            if folder.resolve() == skip:
                continue
            if (folder / METRICS_FILE).exists() or any(folder.glob("*.ipynb")):
                if notebook == "*" and not _in_report(folder):
                    continue  # e.g. earlier runs of the report notebook: not results; name it to see them
                found.append(read_run(folder))
    _compare(found)
    return found


def _compare(infos: list[RunInfo]) -> None:
    """Fill in the parameters that differ between runs of a notebook, and speed-ups against the
    slowest completed comparable run: same notebook, profile and parameters (so what differs is
    the device, as in a CPU vs 1 GPU vs 2 GPUs comparison)."""
    by_notebook: dict[str, list[RunInfo]] = {}
    for info in infos:
        by_notebook.setdefault(info.notebook, []).append(info)
    for group in by_notebook.values():
        known = [i for i in group if i.params]  # damaged runs (no metrics.json) are left out
        keys = sorted({k for i in known for k in i.params})
        varying = [k for k in keys if len({json.dumps(i.params.get(k), sort_keys=True) for i in known}) > 1]
        for info in known:
            info.differing = {k: info.params.get(k) for k in varying}
        for info in group:
            if not info.params and info.injected and known:
                info.differing = {k: v for k, v in info.injected.items() if k in varying}
    comparable: dict[str, list[RunInfo]] = {}
    for info in infos:
        if info.status == "completed" and info.total_s:
            key = json.dumps([info.notebook, info.profile, info.params], sort_keys=True, default=str)
            comparable.setdefault(key, []).append(info)
    for group in comparable.values():
        slowest = max(i.total_s for i in group)
        for info in group:
            info.speedup = slowest / info.total_s
        # scaling: runs that differ only in their number of processes (GPUs), against the fewest
        fewest = min(i.processes for i in group)
        base = [i.total_s for i in group if i.processes == fewest]
        if len({i.processes for i in group}) > 1:
            t0 = sorted(base)[len(base) // 2]
            for info in group:
                info.scaling = t0 / info.total_s
                info.efficiency = info.scaling / (info.processes / fewest)


def phase_names(infos: list[RunInfo]) -> list[str]:
    """Every phase any run timed, in the order first seen."""
    return phase_order(i.phases for i in infos)


def pick_metric(infos: list[RunInfo]) -> str | None:
    """The metric worth plotting across runs: the first headline metric any run has, else the first
    scalar metric whose value differs between runs."""
    for name in HEADLINE_METRICS:
        if any(name in i.metrics for i in infos):
            return name
    names: list[str] = []
    for info in infos:
        names += [m for m in info.metrics if m not in names]
    for name in names:
        if len({i.metrics[name] for i in infos if name in i.metrics}) > 1:
            return name
    return None


def table(infos: list[RunInfo]) -> tuple[list[str], list[dict]]:
    """Columns and rows for the CSV: fixed columns, then phase and metric columns as found."""
    phase_cols = phase_names(infos)
    metric_cols: list[str] = []
    for info in infos:
        metric_cols += [m for m in info.metrics if m not in metric_cols]
    columns = ["notebook", "run", "profile", "status", "warnings", "job_id", "device", "differing_params",
               "total_s", "speedup", "processes", "util_mean", "util_kind", "idle", "scaling", "efficiency",
               *[f"phase:{p}" for p in phase_cols], *metric_cols, "error",
               "warning_messages", "path"]
    rows = []
    for info in infos:
        row = {
            "notebook": info.notebook, "run": info.run, "profile": info.profile, "status": info.status,
            "job_id": info.job_id, "device": info.device,
            "differing_params": " ".join(f"{k}={v}" for k, v in info.differing.items()),
            "total_s": info.total_s, "speedup": round(info.speedup, 2) if info.speedup else None,
            "error": info.error, "path": str(info.path), "warnings": len(info.warnings),
            "warning_messages": " | ".join(warning_text(w) for w in info.warnings),
            "processes": info.processes, "util_mean": info.util_mean, "util_kind": info.util_kind,
            "idle": info.idle, "scaling": round(info.scaling, 2) if info.scaling else None,
            "efficiency": round(info.efficiency, 2) if info.efficiency else None,
        }
        row.update({f"phase:{p}": info.phases.get(p) for p in phase_cols})
        row.update({m: info.metrics.get(m) for m in metric_cols})
        rows.append(row)
    return columns, rows


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(infos: list[RunInfo]) -> list[str]:
    """One table for runs that share their columns: the phases and headline metrics they have."""
    shown = [m for m in HEADLINE_METRICS if any(m in i.metrics for i in infos)]
    shown += sorted({m for i in infos for m in i.metrics if m.startswith("gpu_speedup.")})
    phases = phase_names(infos)
    head = ["notebook", "run", "profile", "status", "warnings", "device", "params", *phases, "total",
            "speed-up", "procs", "util", "scaling (efficiency)", *shown]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in infos:
        cells = [i.notebook, i.run, i.profile or "", i.status,
                 f"⚠ {len(i.warnings)}" if i.warnings else "", i.device,
                 " ".join(f"{k}={v}" for k, v in i.differing.items()),
                 *[format_seconds(i.phases[p]) if p in i.phases else "" for p in phases],
                 format_seconds(i.total_s) if i.total_s else "",
                 f"{i.speedup:.2f}x" if i.speedup else "", str(i.processes),
                 (f"{(i.util_kind or '').upper()} {i.util_mean:.0f}%" + (" ⚠ idle" if i.idle else ""))
                 if i.util_mean is not None else "",
                 f"{i.scaling:.2f}x ({i.efficiency:.0%})" if i.scaling else "",
                 *[_fmt(i.metrics.get(m)) for m in shown]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return lines


def markdown(infos: list[RunInfo]) -> str:
    """Readable tables, one per notebook (each with its own phases and metrics), then the runs that
    did not complete."""
    notebooks: list[str] = []
    for info in infos:
        if info.notebook not in notebooks:
            notebooks.append(info.notebook)
    lines: list[str] = []
    for name in notebooks:
        if lines:
            lines.append("")
        lines += _markdown_table([i for i in infos if i.notebook == name])
    problems = [i for i in infos if i.status != "completed"]
    if problems:
        lines += ["", "Runs that did not complete:", ""]
        lines += [f"- {i.notebook}/{i.run}: {i.status}: {i.error or 'no error recorded'}" for i in problems]
    idle = [i for i in infos if i.idle]
    if idle:
        lines += ["", "Runs whose devices sat mostly idle (mean utilisation below "
                  f"{IDLE_BELOW:.0f}%: input pipeline, one device used of several, CPU-bound work?):", ""]
        lines += [f"- {i.notebook}/{i.run}: {(i.util_kind or '').upper()} {i.util_mean:.0f}% on average"
                  for i in idle]
    warned = [i for i in infos if i.warnings]
    if warned:
        lines += ["", "Runs with data warnings (a corpus that differs from the release, skipped files or folders, "
                  "sentences in two splits: check them before comparing results):", ""]
        lines += [f"- {i.notebook}/{i.run}: ⚠ {warning_text(w)}" for i in warned for w in i.warnings]
    return "\n".join(lines) + "\n"


def write_report(infos: list[RunInfo], out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns, rows = table(infos)
    csv_path = out_dir / "report.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    md_path = out_dir / "report.md"
    md_path.write_text(markdown(infos), encoding="utf-8")
    return csv_path, md_path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coursekit report",
                                     description="Compare every run: a table as CSV and Markdown.")
    parser.add_argument("runs_dir", nargs="?", type=Path, help="default: $COURSEKIT_RUNS or ./runs")
    parser.add_argument("--notebook", default="*", help="glob on notebook names, e.g. '02_*'")
    parser.add_argument("--run", default="*", help="glob on run folder names, e.g. '4711_*'")
    parser.add_argument("--out", type=Path, help="where report.csv/report.md go (default: RUNS_DIR)")
    args = parser.parse_args(argv)
    root = args.runs_dir or runs.runs_root()
    try:
        infos = find_runs(root, args.notebook, args.run)
    except FileNotFoundError as exc:
        print(f"coursekit report: error: {exc}", file=sys.stderr)
        return 2
    if not infos:
        print(f"coursekit report: no run folders under {root} match {args.notebook}/{args.run}",
              file=sys.stderr)
        return 1
    print(markdown(infos))
    csv_path, md_path = write_report(infos, args.out or root)
    print(f"{len(infos)} runs -> {csv_path}, {md_path}")
    return 0
