"""sbatch/jupyter.sbatch: JupyterLab as a job on the workshop's test cluster, on 127.0.0.1 of its node with a
token, the SSH tunnel command and the URL in its log, and tiny copies of the notebooks it was asked for
(`coursekit open`) that JupyterLab serves and that run."""
from __future__ import annotations

import getpass
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from coursekit.harness import workcopy

from ..conftest import ROOT
from .slurmjobs import field, wait

SCRIPT = ROOT / "sbatch" / "jupyter.sbatch"
URL = re.compile(r"^\s+http://localhost:(\d+)/lab\?token=([0-9a-f]{32,})$", re.M)
TUNNEL = re.compile(r"^\s+(ssh -N -L .+)$", re.M)


# the last line of the job's how-to-connect block: the URL, the copies' URLs and the tunnel are all above it
# (waiting for the first URL alone raced with the lines after it on a loaded machine)
BLOCK_END = "the job ends by itself at its time limit"


def wait_for_url(env, job: str, workdir: Path, seconds: float) -> None:
    """Wait until the JupyterLab job has printed its whole how-to-connect block (URL, copies, tunnel);
    fail with its logs when it ended first."""
    log, err = workdir / f"logs/jupyter-{job}.log", workdir / f"logs/jupyter-{job}.err"

    def started() -> bool:
        state = field(env, job, "JobState")
        assert state in ("PENDING", "CONFIGURING", "RUNNING"), \
            f"job {job} {state}:\n{log.read_text() if log.exists() else ''}\n{err.read_text() if err.exists() else ''}"
        text = log.read_text() if log.exists() else ""
        return bool(URL.search(text)) and BLOCK_END in text

    wait(started, seconds, "JupyterLab's URL and instructions in the job's log")


def api(port: int, path: str, token: str | None):
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def listening_on(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def lab_env(base: dict, home: Path) -> dict:
    """JupyterLab's own settings and workspaces in the test's folder, not in the home folder."""
    return {**base, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "COURSEKIT_LOGIN_HOST": "login.example"}


def test_jupyterlab_job_serves_a_tiny_copy_over_loopback(workshop, tmp_path, monkeypatch):
    (tmp_path / "logs").mkdir()
    env = {**lab_env(workshop, tmp_path), "JUPYTER_ROOT": str(tmp_path)}
    proc = subprocess.run(["sbatch", "--parsable", str(SCRIPT), "notebooks/00_gpu_check.ipynb", "--profile", "tiny",
                           "--to", str(tmp_path / "work")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    log, err = tmp_path / f"logs/jupyter-{job}.log", tmp_path / f"logs/jupyter-{job}.err"
    try:
        wait_for_url(env, job, tmp_path, 240)
        text = log.read_text()
        port, token = int(URL.search(text)[1]), URL.search(text)[2]
        node = field(env, job, "NodeList")
        user = getpass.getuser()
        assert TUNNEL.search(text)[1] == f"ssh -N -L {port}:127.0.0.1:{port} -J {user}@login.example {user}@{node}"
        assert listening_on(port) == {"127.0.0.1"}, "JupyterLab listens on the node's loopback only"
        for path in (log, err):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} holds the token: private"
        assert token not in err.read_text(), "JupyterLab's own log does not repeat the token"

        status, body = api(port, "/api/status", token)
        assert status == 200 and "started" in body
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(port, "/api/status", None)
        assert refused.value.code == 403, "without the token: refused"

        copy = tmp_path / "work" / "00_gpu_check.tiny.ipynb"
        assert f"http://localhost:{port}/lab/tree/work/{copy.name}?token={token}" in text
        status, served = api(port, f"/api/contents/work/{copy.name}", token)
        injected = [c for c in served["content"]["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert status == 200 and len(injected) == 1 and "matmul_size = 512" in injected[0]["source"]
        assert workcopy.injected_values(copy) == {"profile": "tiny", "matmul_size": 512, "matmul_repeats": 3,
                                                  "require_gpu": False}

        # the copy runs, its kernel in the copy's folder as JupyterLab starts it
        from nbclient import NotebookClient

        runs = tmp_path / "runs"
        monkeypatch.setenv("COURSEKIT_RUNS", str(runs))
        monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
        nb = nbformat.read(str(copy), as_version=4)
        NotebookClient(nb, kernel_name="python3", timeout=600,
                       resources={"metadata": {"path": str(copy.parent)}}).execute()
        data = json.loads(next(runs.glob("00_gpu_check/*/metrics.json")).read_text())
        assert data["status"] == "completed"
        assert {t["size"] for t in data["metrics"]["matmul"]} == {512}, "the tiny matmul, not the full 4096"
    finally:
        subprocess.run(["scancel", job], env=env, capture_output=True)
    wait(lambda: field(env, job, "JobState") in ("CANCELLED", "COMPLETED"), 120, f"job {job} to end")
    wait(lambda: not listening_on(port), 60, "JupyterLab to stop with its job")
    assert "JupyterLab stopped" in log.read_text()


def _script(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    """The job script run by bash outside Slurm (what sbatch would start), its output in cwd/out.log."""
    (cwd / "out.log").write_text("")
    return subprocess.Popen(["bash", "-c", 'exec bash "$0" "$@" > out.log 2>&1', str(SCRIPT), *args], cwd=cwd,
                            env=env)


def test_a_bad_parameter_stops_the_job_before_jupyterlab_starts(tmp_path):
    env = {**lab_env(os.environ, tmp_path), "CONTAINER": "none", "PYTHON": sys.executable, "KIT_DIR": str(ROOT)}
    proc = _script(env, tmp_path, "notebooks/00_gpu_check.ipynb", "--profile", "tiny", "-p", "matmul_sise", "3",
                   "--to", str(tmp_path / "work"))
    assert proc.wait(timeout=120) == 2
    text = (tmp_path / "out.log").read_text()
    assert "unknown parameter 'matmul_sise'" in text and "did you mean 'matmul_size'" in text
    assert "JupyterLab is running" not in text and not (tmp_path / "work").exists()


def test_the_login_tunnel_binds_the_nodes_address(tmp_path):
    """COURSEKIT_JUPYTER_TUNNEL=login (clusters that refuse ssh to compute nodes): JupyterLab listens on the
    node's address and the tunnel ends on the login node."""
    node = "127.0.0.2"      # an address of this machine other than 127.0.0.1, as a node name
    env = {**lab_env(os.environ, tmp_path), "CONTAINER": "none", "PYTHON": sys.executable, "KIT_DIR": str(ROOT),
           "COURSEKIT_JUPYTER_TUNNEL": "login", "SLURMD_NODENAME": node, "USER": "ckstudent1"}
    proc = _script(env, tmp_path)
    try:
        wait(lambda: URL.search((tmp_path / "out.log").read_text()) or proc.poll() is not None, 120,
             "JupyterLab's URL")
        text = (tmp_path / "out.log").read_text()
        assert proc.poll() is None, text
        port, token = int(URL.search(text)[1]), URL.search(text)[2]
        assert TUNNEL.search(text)[1] == f"ssh -N -L {port}:{node}:{port} ckstudent1@login.example"
        assert listening_on(port) == {node}
        req = urllib.request.Request(f"http://{node}:{port}/api/status", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()           # SIGTERM, as scancel sends it: the script stops JupyterLab
        proc.wait(timeout=60)
    assert "JupyterLab stopped" in (tmp_path / "out.log").read_text()


def test_submit_checks_the_jupyter_jobs_arguments_as_open_would(tmp_path):
    """`coursekit submit sbatch/jupyter.sbatch ARGS` refuses what the job's `coursekit open ARGS` would refuse."""
    from coursekit.harness import slurm

    ok = slurm.submit(SCRIPT, ["notebooks/00_gpu_check.ipynb", "--profile", "tiny"], container="none",
                      workdir=tmp_path, dry_run=True)
    assert ok is None and (tmp_path / "logs").is_dir()
    slurm.submit(SCRIPT, ["--profile", "tiny"], container="none", workdir=tmp_path, dry_run=True)
    for args, message in ((["notebooks/00_gpu_check.ipynb", "--profile", "tiny", "-p", "matmul_sise", "3"],
                           "coursekit open: error: unknown parameter 'matmul_sise'"),
                          (["--profil", "tiny"], "coursekit open: error: unrecognized arguments: --profil"),
                          (["notebooks/99_none.ipynb"], "notebook not found")):
        with pytest.raises(slurm.SubmitError, match=re.escape(message)):
            slurm.submit(SCRIPT, args, container="none", workdir=tmp_path, dry_run=True)


def test_jupyterlab_job_runs_inside_the_image(images, workshop, tmp_path):
    """The script's default: JupyterLab (and `coursekit open`) from inside the transformers image, whose Python
    is the notebooks' kernel; the URL answers over loopback and the copy is there."""
    runtime, image = images["transformers"]
    (tmp_path / "logs").mkdir()
    env = {**lab_env(workshop, tmp_path), "JUPYTER_ROOT": str(tmp_path), "CONTAINER": str(image),
           "RUNTIME": runtime, "PYTHON": "python3"}
    proc = subprocess.run(["sbatch", "--parsable", str(SCRIPT), "notebooks/04_bert_pretraining.ipynb", "--profile",
                           "tiny", "--to", str(tmp_path / "work")], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    log = tmp_path / f"logs/jupyter-{job}.log"
    port = None
    try:
        wait_for_url(env, job, tmp_path, 300)
        text = log.read_text()
        port, token = int(URL.search(text)[1]), URL.search(text)[2]
        assert f"container: {image}" in text
        status, specs = api(port, "/api/kernelspecs", token)
        argv = specs["kernelspecs"]["python3"]["spec"]["argv"]
        assert status == 200 and argv[0] != sys.executable, "the kernel is the image's Python"
        assert listening_on(port) == {"127.0.0.1"}
        copy = tmp_path / "work" / "04_bert_pretraining.tiny.ipynb"
        assert workcopy.injected_values(copy)["hidden_size"] == 128
    finally:
        subprocess.run(["scancel", job], env=env, capture_output=True)
    wait(lambda: field(env, job, "JobState") in ("CANCELLED", "COMPLETED"), 120, f"job {job} to end")
    if port:
        wait(lambda: not listening_on(port), 60, "JupyterLab to stop with its job")
