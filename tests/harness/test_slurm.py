"""The sbatch scripts against a REAL single-node Slurm (tests/cluster/start-slurm.sh).

Needs root on Debian (the script installs slurmctld/slurmd/slurm-client/munge when missing): .ci/run
has both. Elsewhere these tests skip with the reason. The daemons are stopped at the end of the session.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.harness import preemption, slurm
from ..conftest import ROOT, coursekit_cli

CLUSTER = ROOT / "tests" / "cluster"
COUNTER_NB = ROOT / "tests" / "notebooks" / "counter_training.ipynb"


# ----------------------------------------------------------------------------- without Slurm
def test_every_sbatch_script_has_the_agreed_directives():
    for name in ("gpu_check", "livedoor", "bart", "pretrain", "sweep", "notebook"):
        script = ROOT / "sbatch" / f"{name}.sbatch"
        d = slurm.sbatch_directives(script)
        assert d["--job-name"] == name
        assert d["--output"].startswith("logs/%x-") and d["--error"].startswith("logs/%x-")
        assert d["--nodes"] == "1" and d["--gpus"] == "tesla:1" and "--requeue" in d
        assert re.fullmatch(r"\d\d:\d\d:\d\d", d["--time"])
        assert re.fullmatch(r"B:USR1@\d+", d["--signal"]), "the warning goes to the batch shell"
        assert slurm.default_container(script).startswith("defs/")
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert slurm.sbatch_directives(ROOT / "sbatch/sweep.sbatch")["--output"] == "logs/%x-%A_%a.log"


def test_grid_combinations_and_sweep_task_selection(runs_dir):
    grid, rest = slurm.parse_grid(["--profile", "tiny", "-g", "lr", "0.1,0.2", "-p", "steps", "2",
                                   "-g", "steps", "1,2,3"])
    assert rest == ["--profile", "tiny", "-p", "steps", "2"]
    combos = slurm.combinations(grid)
    assert len(combos) == 6 and combos[0] == [("lr", "0.1"), ("steps", "1")]
    assert combos[5] == [("lr", "0.2"), ("steps", "3")]
    with pytest.raises(slurm.SubmitError, match="needs NAME"):
        slurm.parse_grid(["-g", "lr"])
    listed = coursekit_cli("sweep", str(COUNTER_NB), "-g", "lr", "0.1,0.5", "--list")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["0 lr=0.1", "1 lr=0.5"]
    bad = coursekit_cli("sweep", str(COUNTER_NB), "-g", "lr", "0.1,0.5", "--task", "2")
    assert bad.returncode == 2 and "outside the grid's 2 combinations" in bad.stderr


def test_submit_checks_the_notebooks_parameters_before_sbatch(tmp_path):
    with pytest.raises(slurm.SubmitError, match=r"02_livedoor_bert.ipynb: unknown parameter 'epoch'.*did you mean 'epochs'"):
        slurm.submit("sbatch/livedoor.sbatch", ["--profile", "tiny", "-p", "epoch", "3"], container="none",
                     workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match="'learning_rate' expects float, got 'fast'"):
        slurm.submit("sbatch/sweep.sbatch", ["notebooks/02_livedoor_bert.ipynb", "-g", "learning_rate", "1e-4,fast"],
                     container="none", workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match="no profile 'small'"):
        slurm.submit("sbatch/bart.sbatch", ["--profile", "small"], container="none", workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match="notebook not found"):
        slurm.submit("sbatch/notebook.sbatch", ["notebooks/99_none.ipynb"], container="none", workdir=tmp_path,
                     dry_run=True)


def test_a_sweep_runs_in_the_image_of_its_notebooks_own_script(tmp_path, monkeypatch):
    monkeypatch.delenv("CONTAINER", raising=False)
    assert slurm.notebook_container(ROOT / "notebooks/02_livedoor_bert.ipynb", ROOT) == "defs/keras-bert.sif"
    assert slurm.notebook_container(ROOT / "notebooks/03_bart_translation.ipynb", ROOT) == "defs/transformers.sif"
    with pytest.raises(slurm.SubmitError, match="keras-bert.sif not found"):
        slurm.submit("sbatch/sweep.sbatch", ["notebooks/02_livedoor_bert.ipynb", "-g", "epochs", "1,2"],
                     workdir=tmp_path, dry_run=True)


def test_submit_refuses_a_missing_container_and_creates_logs(tmp_path):
    with pytest.raises(slurm.SubmitError, match="build-container defs/keras-bert.def"):
        slurm.submit(ROOT / "sbatch/livedoor.sbatch", [], container=str(tmp_path / "keras-bert.sif"),
                     workdir=tmp_path, dry_run=True)
    lines = []

    class Out:
        def write(self, s):
            lines.append(s)

    slurm.submit("sbatch/sweep.sbatch", [str(COUNTER_NB), "-g", "lr", "1,2,3", "-g", "steps", "1,2"],
                 container="none", workdir=tmp_path, dry_run=True, out=Out())
    text = "".join(lines)
    assert (tmp_path / "logs").is_dir(), "the logs folder is created before sbatch runs"
    assert "--array=0-5" in text and "6 combinations" in text


# ----------------------------------------------------------------------------- a real Slurm
def _wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    """A single-node Slurm started for this session (and stopped after it)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a real Slurm needs root on Linux (tests/cluster/start-slurm.sh); .ci/run has it")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("Slurm is not installed and apt-get is missing (Debian/Ubuntu needed)")
    root = Path(f"/tmp/coursekit-slurm-test-{os.getpid()}")
    ctld_port, d_port = _free_ports(2)  # another test session may run its own cluster meanwhile
    env = {**os.environ, "SLURM_ROOT": str(root), "SLURM_CLEAN": "1", "FAKE_GPUS": "2", "LINK_ETC": "0",
           "SLURMCTLD_PORT": str(ctld_port), "SLURMD_PORT": str(d_port)}
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(CLUSTER / "start-slurm.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        subprocess.run(["bash", str(CLUSTER / "stop-slurm.sh")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
        if not shutil.which("slurmctld"):
            pytest.skip(f"could not install Slurm: {proc.stderr.strip()[-500:]}")
        pytest.fail(f"start-slurm.sh failed:\n{proc.stderr[-3000:]}")
    print(f"\n[slurm] up in {time.monotonic() - t0:.1f}s")
    venv_bin = str(Path(sys.executable).parent)
    job_env = {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf"), "CONTAINER": "none",
               "PYTHON": sys.executable, "KIT_DIR": str(ROOT),
               "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
               "COURSEKIT_RUNS": str(tmp_path_factory.mktemp("slurm-runs")), "SLURM_ROOT": str(root)}
    job_env.pop("COURSEKIT_RUN_DIR", None)
    yield job_env
    subprocess.run(["bash", str(CLUSTER / "stop-slurm.sh")], env=env, capture_output=True, timeout=120)
    left = [n for n in ("slurmctld", "slurmd", "munged")
            if (root / "run" / f"{n}.pid").exists()]
    assert not left, f"daemons left running: {left}"
    shutil.rmtree(root, ignore_errors=True)


def _sbatch(env, cwd, *args) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _job_field(env, job, field) -> str:
    proc = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True)
    m = re.search(rf"\b{field}=(\S+)", proc.stdout)
    return m.group(1) if m else ""


def _node_state(env) -> str:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
    return out.stdout.strip()


def _wait_done(env, job, seconds=240) -> str:
    final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")
    _wait_for(lambda: _job_field(env, job, "JobState") in final, seconds, f"job {job} to end")
    return _job_field(env, job, "JobState")


def test_gpu_check_job_via_submit_helper(slurm_env, tmp_path):
    """The real sbatch/gpu_check.sbatch with CONTAINER=none; the helper creates the missing logs/."""
    assert not (tmp_path / "logs").exists()
    proc = coursekit_cli("submit", "sbatch/gpu_check.sbatch", "--container", "none",
                         "--workdir", str(tmp_path), "--profile", "tiny", "-p", "frameworks", "torch",
                         "-p", "matmul_size", "128", env=slurm_env)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().splitlines()[-1]
    assert job.isdigit() and f"scancel {job}" in proc.stdout and f"squeue -j {job}" in proc.stdout
    assert (tmp_path / "logs").is_dir() and "created" in proc.stdout
    assert _wait_done(slurm_env, job) == "COMPLETED", (tmp_path / f"logs/gpu_check-{job}.err").read_text()
    folder = Path(slurm_env["COURSEKIT_RUNS"]) / "00_gpu_check" / job
    for name in ("00_gpu_check.ipynb", "00_gpu_check.html", "metrics.json", "matmul.png"):
        assert (folder / name).is_file(), name
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "completed" and data["slurm_job_id"] == job
    assert data["runner"]["attempt"] == 1 and data["profile"] == "tiny"
    log = (tmp_path / f"logs/gpu_check-{job}.log").read_text()
    assert f"gpu_check job {job}" in log and "attempt 1" in log
    assert "finished with exit status 0" in log


def test_array_sweep_runs_each_task_in_its_own_folder(slurm_env, tmp_path):
    (tmp_path / "logs").mkdir()
    job = _sbatch(slurm_env, tmp_path, "--array=0-2", "--cpus-per-task=1", str(ROOT / "sbatch/sweep.sbatch"),
                  str(COUNTER_NB), "-p", "steps", "3", "-p", "step_seconds", "0", "-g", "lr", "0.1,0.2,0.3")
    runs = Path(slurm_env["COURSEKIT_RUNS"]) / "counter_training"
    _wait_for(lambda: all((runs / f"{job}_{i}" / "metrics.json").exists() and
                          json.loads((runs / f"{job}_{i}" / "metrics.json").read_text())
                          .get("runner", {}).get("status") == "completed" for i in range(3)), 300, "3 tasks")
    xs = []
    for i, lr in enumerate(("0.1", "0.2", "0.3")):
        data = json.loads((runs / f"{job}_{i}" / "metrics.json").read_text())
        assert data["runner"]["parameters"] == {"profile": "tiny", "steps": 3, "step_seconds": 0, "lr": float(lr)}
        state = json.loads((runs / f"{job}_{i}" / "counter.json").read_text())
        assert state["done"] and state["step"] == 3
        xs.append(state["x"])
        log = (tmp_path / f"logs/sweep-{job}_{i}.log").read_text()
        assert f"task {i}" in log and f"lr={lr}" in log
    assert xs[0] < xs[1] < xs[2] < 3.0, "a larger learning rate gets closer to the minimum at 3"


def test_warning_signal_checkpoints_requeues_and_resumes(slurm_env, tmp_path):
    (tmp_path / "logs").mkdir()
    job = _sbatch(slurm_env, tmp_path, str(ROOT / "sbatch/notebook.sbatch"), str(COUNTER_NB),
                  "-p", "steps", "30", "-p", "step_seconds", "0.3")
    folder = Path(slurm_env["COURSEKIT_RUNS"]) / "counter_training" / job
    counter = folder / "counter.json"
    _wait_for(lambda: counter.exists() and json.loads(counter.read_text())["step"] >= 3, 180, "training to start")
    # what Slurm does at --signal=B:USR1@N before the time limit: USR1 to the batch shell only
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm_env, check=True)
    _wait_for(lambda: _job_field(slurm_env, job, "Restarts") == "1" and
              _job_field(slurm_env, job, "JobState") == "PENDING", 120, "the job to be requeued")
    requeued_at = time.time()
    # Slurm holds a requeued job for about two minutes (BeginTime); release it sooner to save time,
    # but not in the same second as the requeue: slurmd revokes the old attempt's credential with a
    # one-second timestamp, and a new launch credential issued in that same second counts as revoked
    # ("Killing non-startable batch JobId=N: Job credential revoked" -> the job ends FAILED without a
    # second attempt; seen on a loaded machine, where the release came right after the requeue).
    _wait_for(lambda: _node_state(slurm_env) == "idle", 120, "the node to finish the first attempt")
    time.sleep(max(0.0, requeued_at + 2.0 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm_env, check=True)
    state = _wait_done(slurm_env, job, 300)
    daemon_logs = sorted(Path(slurm_env["SLURM_ROOT"], "log").glob("slurm*.log"))
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                     for p in [*sorted((tmp_path / "logs").iterdir()), *daemon_logs])
    assert state == "COMPLETED", f"{_job_field(slurm_env, job, 'ExitCode')=}\n{logs}"
    assert _job_field(slurm_env, job, "Restarts") == "1"
    state = json.loads(counter.read_text())
    assert state["done"] and state["step"] == 30
    assert state["attempts"] == [1, 2]
    assert state["resumed_from"][0] == 0 and 3 <= state["resumed_from"][1] < 30, "resumed from the checkpoint"
    # the first attempt's notebook and record are kept beside the second's
    first = json.loads((folder / "metrics.attempt1.json").read_text())
    assert first["status"] == "preempted" and first["runner"]["attempt"] == 1
    assert (folder / "counter_training.attempt1.ipynb").is_file()
    final = json.loads((folder / "metrics.json").read_text())
    assert final["runner"]["status"] == "completed" and final["runner"]["attempt"] == 2
    assert not (folder / preemption.PREEMPT_FILE).exists()
    log = (tmp_path / f"logs/notebook-{job}.log").read_text()
    assert "requeueing job" in log and "attempt 2" in log


# ----------------------------------------------------------------------------- a real container
APPTAINER_PREFIX = Path("/tmp/coursekit-apptainer")


@pytest.fixture(scope="session")
def cpu_image(tmp_path_factory):
    """A CPU test image built with `apptainer build --fakeroot --sandbox` from the variant GENERATED from
    defs/transformers.def (debootstrap base; the real %files/%environment/%test; %post without the
    heavy frameworks). Apptainer comes from tests/cluster/install-apptainer.sh (root, Debian)."""
    from coursekit.harness import containers

    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("building an image needs root on Linux (tests/cluster/install-apptainer.sh); .ci/run has it")
    runtime = containers.find_runtime()
    if not runtime:
        t0 = time.monotonic()
        APPTAINER_PREFIX.mkdir(parents=True, exist_ok=True)
        with open(APPTAINER_PREFIX / "install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time on a shared machine
            proc = subprocess.run(["bash", str(CLUSTER / "install-apptainer.sh")], capture_output=True,
                                  text=True, env={**os.environ, "PREFIX": str(APPTAINER_PREFIX / "prefix"),
                                                  "WORK": str(APPTAINER_PREFIX / "work")}, timeout=600)
        runtime = str(APPTAINER_PREFIX / "prefix/usr/bin/apptainer")
        if proc.returncode != 0 or not Path(runtime).exists():
            pytest.skip(f"Apptainer could not be installed here: {proc.stderr.strip()[-500:]}")
        print(f"\n[apptainer] installed in {time.monotonic() - t0:.1f}s")
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    text = containers.cpu_test_variant(ROOT / "defs/transformers.def",
                                       ca_bundle=ca if ca and Path(ca).is_file() else None)
    # The image is cached on this machine under the hash of everything that goes into it (the
    # generated .def and the %files: the kit's library, pyproject.toml, README.md), so a rerun with
    # the same inputs reuses it; COURSEKIT_REBUILD_IMAGE=1 forces a build. A fresh machine builds.
    digest = hashlib.sha256(text.encode())
    for path in sorted([ROOT / "pyproject.toml", ROOT / "README.md", *(ROOT / "lib/coursekit").glob("*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    folder = APPTAINER_PREFIX / "images" / digest.hexdigest()[:16]
    image = folder / "transformers-cpu"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Several test sessions may share this machine: one builds, the others wait and reuse; an image in
    # use is held with a shared lock; images of older inputs nobody uses are removed.
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "ok").exists() and image.is_dir() and not os.environ.get("COURSEKIT_REBUILD_IMAGE"):
            print(f"\n[apptainer] CPU test image reused: {image}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            variant = folder / "transformers-cpu.def"
            variant.write_text(text)
            t0 = time.monotonic()
            # a sandbox (folder) image: the same build, without minutes of squashfs compression on 2 cores
            containers.build(variant, image, sandbox=True, runtime=runtime, cwd=ROOT)
            (folder / "ok").write_text(f"{time.monotonic() - t0:.1f}\n")
            print(f"\n[apptainer] CPU test image (sandbox) built in {time.monotonic() - t0:.1f}s")
        fcntl.flock(lock, fcntl.LOCK_SH)
        for other in folder.parent.glob("*.lock"):
            if other.stem == folder.name:
                continue
            with open(other, "w") as old:
                try:
                    fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # another session uses it
                shutil.rmtree(other.with_suffix(""), ignore_errors=True)
                other.unlink(missing_ok=True)
        yield runtime, image


def test_cpu_test_image_passes_its_test_section(cpu_image):
    runtime, image = cpu_image
    proc = subprocess.run([runtime, "test", str(image)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = proc.stdout
    assert "Container: none" not in report and "Container: " in report, "the check knows it is in a container"
    assert "PYTHONNOUSERSITE: set" in report, "%environment of the real .def is in effect"
    assert "No GPU is visible" in report


def test_notebook_00_runs_inside_the_image_as_a_slurm_job(cpu_image, slurm_env, tmp_path):
    runtime, image = cpu_image
    env = {**slurm_env, "PYTHON": "python3", "RUNTIME": runtime}
    env.pop("CONTAINER")
    proc = coursekit_cli("submit", "sbatch/gpu_check.sbatch", "--container", str(image),
                         "--workdir", str(tmp_path), "--profile", "tiny", "-p", "frameworks", "torch", env=env)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().splitlines()[-1]
    state = _wait_done(env, job, 300)
    assert state == "COMPLETED", (tmp_path / f"logs/gpu_check-{job}.err").read_text()[-3000:]
    folder = Path(env["COURSEKIT_RUNS"]) / "00_gpu_check" / job
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "completed" and data["metrics"]["in_container"] is True
    assert data["python"] != sys.version.split()[0], "the image's own Python ran the notebook, not the host's"
    assert (folder / "00_gpu_check.html").is_file() and (folder / "00_gpu_check.ipynb").is_file()
    assert f"container: {image}" in (tmp_path / f"logs/gpu_check-{job}.log").read_text()
