"""Notebook 06 (data parallelism) executed through the runner on its tiny profile: 2 gloo processes
launched as srun would, their all-reduced gradients equal to 1 process's gradient of the global batch,
the timing and the paper estimate, and its exercises (left undone, and with the reference solutions)."""
from __future__ import annotations

import nbformat
import pytest

from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "06_multi_gpu.ipynb"


def test_notebook_06_tiny_two_processes_match_one(tmp_path, runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", {"runs_dir": str(tmp_path)}, runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    data = result.metrics
    m = data["metrics"]
    assert data["status"] == "completed" and data["profile"] == "tiny" and data["params"]["steps"] == 10
    assert m["processes"] == 2 and m["global_batch"] == 64
    # float32 rounding only: the all-reduced mean of the halves' gradients is the global batch's gradient
    assert m["grad_max_abs_diff"] < 1e-6 and m["loss_max_abs_diff"] < 1e-5 and m["same_training"] is True
    assert m["final_loss_1"] < 1.4                       # it learns (chance: ln 4 = 1.39 at the start)
    assert m["step_s_1"] > 0 and m["step_s_n"] > 0 and m["speedup_cpu"] > 0
    est = m["expected_speedup"]
    assert 1 < est["2 1 ノード(PCIe 3)"] < 2 and est["4 1 ノード(PCIe 3)"] < est["4 1 ノード(NVLink)"] < 4
    assert est["4 2 ノード × 2"] <= est["4 1 ノード(NVLink)"]
    assert m["runs_with_scaling"] == 0
    assert m["exercises"] == {"1": "todo", "2": "todo", "3": "todo", "4": "open"}
    for phase in ("1 process", "2 processes"):
        assert data["phases"][phase] > 0, phase
    assert (result.run_dir / "losses.png").stat().st_size > 5000
    assert (result.run_dir / "one_process.json").exists() and (result.run_dir / "2_processes.json").exists()
    html = result.html.read_text(encoding="utf-8")
    assert "Traceback" not in html and "同じ勾配、同じ学習です" in html
    assert "dist.all_reduce(param.grad" in html and "見積もり(測定ではありません)" in html


def test_notebook_06_reference_solutions_are_right(tmp_path, runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", {"runs_dir": str(tmp_path), "steps": 2, "solutions": True},
                          runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "correct", "4": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 3 and "解答例:" in html


def test_notebook_06_teaches_the_launch_and_is_committed_clean():
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]  # committed clean: test_all_notebooks.py
    source = "\n".join(c.source for c in code)
    for launch in ('"RANK": str(rank)', '"WORLD_SIZE": str(n)', '"MASTER_PORT"', "subprocess.Popen("):
        assert launch in source, launch
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for fact in ("17 分 20 秒", "17 分 42 秒", "17 分 10 秒", "Goyal et al., 2017", "all-reduce", "グローバルバッチ",
                 "srun", "sbatch --ntasks-per-node=2 --gpus-per-node=2",
                 "sbatch --nodes=2 --ntasks-per-node=2 --gpus-per-node=2",
                 "MirroredStrategy", "測定ではありません", "scaling", "efficiency"):
        assert fact in prose, fact
    # the glossary's words: tests/test_glossary.py
