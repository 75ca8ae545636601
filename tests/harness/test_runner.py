"""The notebook runner: run folders, refusals of bad parameters, failing cells, outcomes."""
import json

import pytest

from coursekit.harness.params import ParameterError
from coursekit.harness import params
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS, coursekit_cli, write_notebook

GPU_CHECK = NOTEBOOKS / "00_gpu_check.ipynb"


@pytest.fixture
def scratch(tmp_path):
    """A notebook outside the profile tables: types come from its parameters cell."""
    return write_notebook(
        tmp_path / "scratch.ipynb",
        'profile = "full"\nsteps = 3\nrate = 0.5\nname = "x"',
        "import os, json\nprint('steps', steps, 'rate', rate, 'name', name)",
        "assert steps < 100, f'too many steps: {steps}'",
    )


def test_notebook_parameters_are_checked_against_its_cell(scratch):
    assert params.resolve(scratch, None, [("steps", "7"), ("rate", "2"), ("name", "y")]) == {
        "profile": "full", "steps": 7, "rate": 2.0, "name": "y"}
    with pytest.raises(ParameterError, match="'steps' expects int, got '2.5'"):
        params.resolve(scratch, None, [("steps", "2.5")])
    with pytest.raises(ParameterError, match="unknown parameter 'step'"):
        params.resolve(scratch, None, [("step", "1")])


def test_cli_refusals_exit_2_before_anything_runs(runs_dir):
    proc = coursekit_cli("run", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_sizee", "3")
    assert proc.returncode == 2
    assert "unknown parameter 'matmul_sizee'" in proc.stderr and "did you mean 'matmul_size'" in proc.stderr
    proc = coursekit_cli("run", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_size", "3.5")
    assert proc.returncode == 2 and "'matmul_size' expects int, got '3.5'" in proc.stderr
    proc = coursekit_cli("run", str(GPU_CHECK), "--profile", "medium")
    assert proc.returncode == 2 and "00_gpu_check.ipynb has no profile 'medium'" in proc.stderr
    proc = coursekit_cli("run", "notebooks/missing.ipynb")
    assert proc.returncode == 2 and "notebook not found" in proc.stderr
    assert not runs_dir.exists() or not any(runs_dir.rglob("*.ipynb")), "nothing may run"


def test_failing_cell_exits_1_prints_the_error_and_keeps_the_evidence(scratch, runs_dir):
    proc = coursekit_cli("run", str(scratch), "-p", "steps", "500")
    assert proc.returncode == 1
    assert "FAILED in cell" in proc.stderr and "AssertionError: too many steps: 500" in proc.stderr
    run_dir = runs_dir / "scratch"
    (folder,) = run_dir.iterdir()
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "failed" and data["runner"]["status"] == "failed"
    assert "too many steps: 500" in data["runner"]["error"]
    assert data["runner"]["parameters"] == {"profile": "full", "steps": 500, "rate": 0.5, "name": "x"}
    assert data["params"] == data["runner"]["parameters"], "the runner records what it resolved"
    executed = json.loads((folder / "scratch.ipynb").read_text())
    assert executed["metadata"]["papermill"]["exception"] is True
    assert (folder / "scratch.html").stat().st_size > 1000


def test_successful_run_writes_notebook_html_and_metrics(scratch, runs_dir):
    (scratch.parent / "scratch.tiny.yaml").write_text("profile: tiny\nrate: 0.25\n")
    result = run_notebook(scratch, "tiny", {"steps": 2}, name="demo", quiet=True)
    assert result.ok and result.run_dir == runs_dir / "scratch" / "demo"
    assert result.notebook.is_file() and result.html.is_file()
    assert result.metrics["runner"]["parameters"] == {"profile": "tiny", "steps": 2, "rate": 0.25, "name": "x"}
    assert result.metrics["status"] == "completed", "a notebook without a run record still completes"
    out = json.loads(result.notebook.read_text())
    printed = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", []))
    assert "steps 2 rate 0.25 name x" in printed
    again = run_notebook(scratch, "tiny", {"steps": 2}, name="demo", quiet=True)
    assert again.run_dir.name == "demo-2", "an earlier run folder is never overwritten"


def test_sigterm_is_recorded_as_killed_and_keeps_the_notebook(tmp_path, runs_dir):
    import signal
    import subprocess
    import sys
    import time

    nb = write_notebook(tmp_path / "sleepy.ipynb", 'profile = "full"\nn = 120',
                        "import time\nfor i in range(n):\n    print(i, flush=True)\n    time.sleep(0.5)")
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "run", str(nb), "--name", "k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = runs_dir / "sleepy" / "k"
    deadline = time.time() + 120
    while not (folder / "sleepy.ipynb").exists() and time.time() < deadline:
        time.sleep(0.5)  # papermill writes the output notebook as soon as the kernel starts
    time.sleep(4)  # well inside the 60-second loop cell
    proc.send_signal(signal.SIGTERM)  # what scancel and the time limit send
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "KILLED: received signal 15" in err
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "killed"
    outputs = json.loads((folder / "sleepy.ipynb").read_text())["cells"][1].get("outputs", [])
    assert "119\n" not in "".join("".join(o.get("text", "")) for o in outputs), "killed before the loop ended"
    assert (folder / "sleepy.html").is_file() and (folder / "sleepy.ipynb").is_file()
