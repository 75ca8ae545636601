"""The notebook runner: run folders, refusals of bad parameters, failing cells, outcomes."""
import json

import pytest

from coursekit.harness.params import ParameterError
from coursekit.harness import params
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS, coursekit_cli, printed_text, write_notebook

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
    assert "パラメータ 'matmul_sizee' はありません('matmul_size' のことですか?)" in proc.stderr
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
    assert data["params"] == {"profile": "full", "steps": 500, "rate": 0.5, "name": "x"}, "what it resolved"
    assert "parameters" not in data["runner"], "stored once"
    executed = json.loads((folder / "scratch.ipynb").read_text())
    assert executed["metadata"]["papermill"]["exception"] is True
    assert (folder / "scratch.html").stat().st_size > 1000


def test_successful_run_writes_notebook_html_and_metrics(scratch, runs_dir):
    (scratch.parent / "scratch.tiny.yaml").write_text("profile: tiny\nrate: 0.25\n")
    result = run_notebook(scratch, "tiny", {"steps": 2}, name="demo", quiet=True)
    assert result.ok and result.run_dir == runs_dir / "scratch" / "demo"
    assert result.notebook.is_file() and result.html.is_file()
    assert result.metrics["params"] == {"profile": "tiny", "steps": 2, "rate": 0.25, "name": "x"}
    assert result.metrics["status"] == "completed", "a notebook without a run record still completes"
    assert "steps 2 rate 0.25 name x" in printed_text(result.notebook)
    again = run_notebook(scratch, "tiny", {"steps": 2}, name="demo", quiet=True)
    assert again.run_dir.name == "demo-2", "an earlier run folder is never overwritten"


def _loop_cell_outputs(executed) -> list[dict]:
    """The outputs of the executed notebook's loop cell (papermill adds a cell of injected parameters)."""
    (cell,) = [c for c in json.loads(executed.read_text())["cells"]
               if c["cell_type"] == "code" and "for i in range(n)" in "".join(c["source"])]
    return cell.get("outputs", [])


def _stop_mid_loop(tmp_path, runs_dir, signum: int):
    """`coursekit run` a notebook whose cell loops for 60 s, send the runner `signum` 2 s into that cell
    (SIGINT as a typed Ctrl-C: the child keeps Python's own handler, unlike a command started with &);
    the runner's return code, its stderr and the run folder."""
    import signal
    import subprocess
    import sys
    import time

    started = tmp_path / "loop-started"
    nb = write_notebook(tmp_path / "sleepy.ipynb", f'profile = "full"\nn = 120\nstarted = "{started}"',
                        "import time\nopen(started, 'w').close()\nfor i in range(n):\n    print(i, flush=True)\n"
                        "    time.sleep(0.5)")
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "run", str(nb), "--name", "k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not started.exists() and time.time() < deadline:
        time.sleep(0.2)  # the loop cell runs: a signal now lands mid-cell however slowly the kernel started
    assert started.exists(), "the loop cell never started"
    time.sleep(2)  # well inside the 60-second loop cell
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, runs_dir / "sleepy" / "k"


def test_sigterm_is_recorded_as_killed_and_keeps_the_notebook(tmp_path, runs_dir):
    import signal

    returncode, err, folder = _stop_mid_loop(tmp_path, runs_dir, signal.SIGTERM)  # what scancel and the time limit send
    assert returncode == 1 and "KILLED / 強制終了: received signal 15" in err and "時間切れ" in err
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "killed"
    outputs = _loop_cell_outputs(folder / "sleepy.ipynb")
    assert "0\n" in "".join("".join(o.get("text", "")) for o in outputs), "the loop cell's output is kept"
    assert "119\n" not in "".join("".join(o.get("text", "")) for o in outputs), "killed before the loop ended"
    assert outputs[-1].get("ename") == "KeyboardInterrupt", "the cell shows where the job stopped it"
    assert (folder / "sleepy.html").is_file() and (folder / "sleepy.ipynb").is_file()


def test_ctrl_c_on_the_login_node_stops_the_cell_and_records_killed(tmp_path, runs_dir):
    import signal

    returncode, err, folder = _stop_mid_loop(tmp_path, runs_dir, signal.SIGINT)
    assert returncode == 1 and "KILLED / 強制終了: interrupted" in err
    assert json.loads((folder / "metrics.json").read_text())["status"] == "killed"
    outputs = _loop_cell_outputs(folder / "sleepy.ipynb")
    assert outputs and outputs[-1].get("ename") == "KeyboardInterrupt", "the kernel was interrupted mid-cell"


# ------------------------------------------------------------------ nothing silently wrong
def test_a_kernel_killed_mid_cell_is_recorded_as_failed_with_the_evidence(tmp_path, runs_dir):
    """What the out-of-memory killer does: SIGKILL to the kernel in the middle of a cell."""
    nb = write_notebook(
        tmp_path / "oom.ipynb", 'profile = "full"\nsteps = 3',
        "from coursekit.harness import record\nrun = record.open_run('oom')\nrun.log(before=1)\nprint('reached')",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "print('never')",
    )
    proc = coursekit_cli("run", str(nb), timeout=180)
    assert proc.returncode == 1
    assert "kernel died (killed by SIGKILL, exit -9): likely out of memory" in proc.stderr
    assert "メモリ不足の可能性が高いです" in proc.stderr
    (folder,) = (runs_dir / "oom").iterdir()
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "failed" and "likely out of memory" in data["runner"]["error"]
    assert data["metrics"] == {"before": 1}, "what the notebook measured before it died is kept"
    executed = json.loads((folder / "oom.ipynb").read_text())
    assert executed["metadata"]["papermill"]["exception"] is True
    cells = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert any("reached" in "".join(o.get("text", "")) for o in cells[-3]["outputs"])
    assert cells[-2]["outputs"][-1]["ename"] == "DeadKernelError" and not cells[-1]["outputs"]
    html = (folder / "oom.html").read_text(encoding="utf-8")
    assert "DeadKernelError" in html and "likely out of memory" in html


def test_dead_kernel_reasons():
    from coursekit.harness.runner import dead_kernel_reason

    assert "likely out of memory (the kernel's memory use hit the job's limit) / " in dead_kernel_reason(-9)
    assert "メモリ不足" in dead_kernel_reason(-9)
    assert dead_kernel_reason(-11).startswith("kernel died (killed by SIGSEGV, exit -11) / ")
    assert "メモリ" not in dead_kernel_reason(-11)
    assert dead_kernel_reason(3).startswith("kernel died (exit 3) / ")
    assert dead_kernel_reason(None).startswith("kernel died (exit status unknown")


def test_data_warnings_of_the_lessons_reach_metrics_json(tmp_path, runs_dir):
    nb = write_notebook(
        tmp_path / "warned.ipynb", 'profile = "full"\nsteps = 3',
        "from coursekit.lessons import download\n"
        "download.data_warning('livedoor /x', 'skipped 2 unreadable file(s)', {'unreadable: empty file': 2})",
    )
    result = run_notebook(nb, runs_dir=runs_dir, quiet=True)
    assert result.ok
    assert result.metrics["warnings"] == [{"source": "livedoor /x", "message": "skipped 2 unreadable file(s)",
                                           "counts": {"unreadable: empty file": 2}}]


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "..", "a/b", "", " x"])
def test_run_names_cannot_leave_the_runs_folder(scratch, runs_dir, name):
    proc = coursekit_cli("run", str(scratch), "--name", name)
    assert proc.returncode == 2 and "is not a plain folder name" in proc.stderr
    assert not runs_dir.exists() or not any(runs_dir.rglob("*.ipynb"))
    assert not (runs_dir.parent / "escape").exists()


def test_an_unusable_runs_dir_is_a_clear_error(scratch, tmp_path):
    a_file = tmp_path / "runs-file"
    a_file.write_text("not a folder")
    proc = coursekit_cli("run", str(scratch), "--runs-dir", str(a_file))
    assert proc.returncode == 2 and f"runs folder {a_file} is a file" in proc.stderr
    proc = coursekit_cli("run", str(scratch), "--runs-dir", str(a_file / "sub"))
    assert proc.returncode == 2 and "cannot be used" in proc.stderr and "--runs-dir" in proc.stderr


def test_impossible_values_stop_before_anything_runs(runs_dir):
    proc = coursekit_cli("run", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_size", "0")
    assert proc.returncode == 2
    assert "parameter 'matmul_size' = 0 is out of range: it must be in [1, 65536]" in proc.stderr
    assert "matmul_size = 0 は範囲の外です。[1, 65536] の値にしてください" in proc.stderr
    proc = coursekit_cli("run", str(GPU_CHECK), "--profile", "tiny", "-p", "frameworks", "torch,tensorfow")
    assert proc.returncode == 2 and "'tensorfow' is not allowed" in proc.stderr
    assert not runs_dir.exists() or not any(runs_dir.rglob("*.ipynb")), "nothing may run"


def test_data_warnings_are_counted_in_the_run_s_last_line_and_the_record(tmp_path, runs_dir):
    warned = write_notebook(
        tmp_path / "warned.ipynb", 'profile = "full"',
        "from coursekit.lessons import download\n"
        "download.data_warning('demo corpus', '2 files skipped', {'skipped': 2})\n"
        "download.data_warning('demo corpus', '1 sentence in two splits', {'test_in_train': 1})")
    proc = coursekit_cli("run", str(warned), "--no-html")
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("coursekit run: completed in") and "2 data warning(s)" in last and "データの警告 2 件" in last
    (folder,) = (runs_dir / "warned").iterdir()
    data = json.loads((folder / "metrics.json").read_text())
    assert [w["counts"] for w in data["warnings"]] == [{"skipped": 2}, {"test_in_train": 1}]


def _signals_sent_at_shutdown(tmp_path, job: dict) -> list[int]:
    """Start a real kernel with the runner's kernel manager, shut it down gracefully as nbclient does
    at the end of a notebook, and return the signals the manager sent the kernel process."""
    import asyncio

    from coursekit.harness.runner import _exit_recording_kernel_manager

    async def run() -> list[int]:
        manager_class, _ = _exit_recording_kernel_manager(str(tmp_path), job)
        km = manager_class(kernel_name="python3")
        await km.start_kernel()
        sent: list[int] = []
        send = km.provisioner.send_signal

        async def recording(signum: int) -> None:
            sent.append(signum)
            await send(signum)

        km.provisioner.send_signal = recording
        try:
            await km.shutdown_kernel(now=False)
        finally:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        assert not await km.is_alive(), "the kernel process ended"
        return sent

    return asyncio.run(run())


def test_a_finished_notebook_s_kernel_is_shut_down_without_an_interrupt(tmp_path):
    """jupyter_client interrupts (SIGINT) every kernel it shuts down; a kernel still answering a message
    then logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." into the job log of a run that
    went well. The runner's manager interrupts only a job that was told to stop (SIGTERM)."""
    import signal

    assert signal.SIGINT not in _signals_sent_at_shutdown(tmp_path / "a", {})
    assert signal.SIGINT in _signals_sent_at_shutdown(tmp_path / "b", {"signal": signal.SIGTERM}), \
        "a job being stopped still interrupts the cell that runs"
