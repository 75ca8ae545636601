"""Notebook 05 executed through the runner over a runs folder holding real tiny runs of notebook 00
made here: its table, its plots, its own run kept out of the results, and its exercises (left undone, and
with the reference solutions computed from the same runs)."""
from __future__ import annotations

import csv

import pytest

from coursekit.harness import report
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS

pytestmark = pytest.mark.notebook
GPU_CHECK = NOTEBOOKS / "00_gpu_check.ipynb"
RESULTS = NOTEBOOKS / "05_results.ipynb"


@pytest.fixture(scope="module")
def runs_tree(tmp_path_factory):
    """Three real tiny runs of notebook 00 (PyTorch only, to keep them short): two alike, so one has a
    speed-up over the other, and one with another matrix size, so there is a parameter to compare."""
    root = tmp_path_factory.mktemp("runs")
    for name, size in (("a", 64), ("b", 64), ("c", 96)):
        result = run_notebook(GPU_CHECK, "tiny", {"matmul_size": size, "frameworks": "torch"},
                              runs_dir=root, name=name, quiet=True)
        assert result.ok, result.error
    return root


def test_notebook_05_reports_the_runs_of_notebook_00(runs_tree):
    result = run_notebook(RESULTS, "tiny", {"runs_dir": str(runs_tree)}, runs_dir=runs_tree,
                          name="report", quiet=True)
    assert result.ok, result.error
    data = result.metrics
    assert data["status"] == "completed" and data["in_report"] is False
    m = data["metrics"]
    assert m["runs"] == 3 and m["completed"] == 3 and m["not_completed"] == []
    assert m["param"] == "matmul_size" and m["metric"].startswith("matmul_gflops.torch/cpu")
    folder = result.run_dir
    assert folder == runs_tree / "05_results" / "report"
    with (folder / "report.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["notebook"], r["run"]) for r in rows] == [("00_gpu_check", n) for n in "abc"], \
        "only the three results: notebook 05's own run is left out"
    assert [r["differing_params"] for r in rows] == ["matmul_size=64", "matmul_size=64", "matmul_size=96"]
    assert all(float(r["phase:matmul"]) >= 0 and r["status"] == "completed" for r in rows)
    speedups = [float(r["speedup"]) for r in rows]  # against the slowest run with the same parameters
    assert speedups[2] == 1.0 and min(speedups[:2]) == 1.0 and max(speedups[:2]) >= 1.0
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert md.startswith("| notebook | run |") and md.count("| 00_gpu_check |") == 3
    for fig in ("phases", "sweep"):
        assert (folder / f"{fig}.png").stat().st_size > 5000, fig
    assert {"phases.png", "sweep.png"} <= set(data["figures"])
    exact = [i.speedup for i in report.find_runs(runs_tree, "00_gpu_check")]  # the CSV rounds them
    assert ("speedup.png" in data["figures"]) == (max(exact) > 1.0)
    html = result.html.read_text(encoding="utf-8")
    assert "学習曲線を記録した実行は、まだありません" in html and "Traceback" not in html
    assert m["exercises"] == {"1": "todo", "2": "todo", "3": "todo", "4": "open"}
    assert html.count("まだです") >= 3 and "解答例:" not in html


def test_notebook_05_reference_solutions_are_right(runs_tree):
    result = run_notebook(RESULTS, "tiny", {"runs_dir": str(runs_tree), "solutions": True}, runs_dir=runs_tree,
                          name="solutions", quiet=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "correct", "4": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 3 and "解答例:" in html


def test_notebook_05_without_runs_skips_what_needs_runs(tmp_path):
    """A student with no runs yet: the run-based checks say they cannot check, the rest still works."""
    empty = tmp_path / "runs"
    empty.mkdir()
    result = run_notebook(RESULTS, "tiny", {"runs_dir": str(empty), "solutions": True}, runs_dir=tmp_path / "own",
                          quiet=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "skipped", "2": "correct", "3": "skipped", "4": "open"}
