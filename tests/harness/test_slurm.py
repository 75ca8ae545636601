"""The sbatch scripts against a REAL Slurm: the workshop's two-node test cluster (tests/cluster/start-slurm.sh).

Needs root on Debian (the script installs slurmctld/slurmd/slurm-client/munge when missing): .ci/run
has both. Elsewhere these tests skip with the reason. The daemons are stopped at the end of the session.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.harness import preemption, runner, slurm, sweep
from ..conftest import ROOT, coursekit_cli
from .slurmjobs import all_idle, field, wait

COUNTER_NB = ROOT / "tests" / "notebooks" / "counter_training.ipynb"


# ----------------------------------------------------------------------------- without Slurm
def test_every_sbatch_script_has_the_agreed_directives():
    for name in ("gpu_check", "livedoor", "bart", "pretrain", "sweep", "notebook"):
        script = ROOT / "sbatch" / f"{name}.sbatch"
        d = slurm.sbatch_directives(script)
        assert d["--job-name"] == name
        assert d["--output"].startswith("logs/%x-") and d["--error"].startswith("logs/%x-")
        # no --nodes/--ntasks: a guide's --nodes=2 --ntasks-per-node=2 must not meet a script's --ntasks=1
        assert "--nodes" not in d and "--ntasks" not in d and "--requeue" in d
        # an untyped GPU request (the site file's GPU type is added by submit); none for notebook.sbatch
        assert d.get("--gpus-per-node") == (None if name == "notebook" else "1") and "--gpus" not in d
        assert re.fullmatch(r"\d+G", d["--mem"]), "each script states its memory"
        assert "--partition" not in d and "-p" not in d, "the partition comes from the site file"
        assert re.fullmatch(r"\d\d:\d\d:\d\d", d["--time"])
        assert re.fullmatch(r"B:USR1@\d+", d["--signal"]), "the warning goes to the batch shell"
        own = slurm.default_container(script, {})
        assert own is None if name in ("sweep", "notebook") else own.startswith("defs/")
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert slurm.sbatch_directives(ROOT / "sbatch/sweep.sbatch")["--output"] == "logs/%x-%A_%a.log"


def test_grid_combinations_and_sweep_task_selection(runs_dir):
    grid, rest = sweep.parse_grid(["--profile", "tiny", "-g", "lr", "0.1,0.2", "-p", "steps", "2",
                                   "-g", "steps", "1,2,3"])
    assert rest == ["--profile", "tiny", "-p", "steps", "2"]
    combos = sweep.combinations(grid)
    assert len(combos) == 6 and combos[0] == [("lr", "0.1"), ("steps", "1")]
    assert combos[5] == [("lr", "0.2"), ("steps", "3")]
    with pytest.raises(runner.UsageError, match="needs NAME"):
        sweep.parse_grid(["-g", "lr"])
    listed = coursekit_cli("sweep", str(COUNTER_NB), "-g", "lr", "0.1,0.5", "--list")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["0 lr=0.1", "1 lr=0.5"]
    bad = coursekit_cli("sweep", str(COUNTER_NB), "-g", "lr", "0.1,0.5", "--task", "2")
    assert bad.returncode == 2 and "outside the grid's 2 combinations" in bad.stderr


def test_submit_checks_the_notebooks_parameters_before_sbatch(tmp_path):
    with pytest.raises(slurm.SubmitError, match=r"coursekit run: error: unknown parameter 'epoch' for 02_livedoor_bert.*did you mean 'epochs'"):
        slurm.submit("sbatch/livedoor.sbatch", ["--profile", "tiny", "-p", "epoch", "3"], container="none",
                     workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match=r"job would stop with: coursekit sweep: error: .*'learning_rate' expects float, got 'fast'"):
        slurm.submit("sbatch/sweep.sbatch", ["notebooks/02_livedoor_bert.ipynb", "-g", "learning_rate", "1e-4,fast"],
                     container="none", workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match="val_fraction"):  # fine alone, impossible together
        slurm.submit("sbatch/sweep.sbatch", ["notebooks/02_livedoor_bert.ipynb", "-g", "val_fraction", "0.1,0.6",
                                             "-g", "test_fraction", "0.1,0.5"], container="none", workdir=tmp_path,
                     dry_run=True)
    with pytest.raises(slurm.SubmitError, match="no profile 'small'"):
        slurm.submit("sbatch/bart.sbatch", ["--profile", "small"], container="none", workdir=tmp_path, dry_run=True)
    with pytest.raises(slurm.SubmitError, match="notebook not found"):
        slurm.submit("sbatch/notebook.sbatch", ["notebooks/99_none.ipynb"], container="none", workdir=tmp_path,
                     dry_run=True)


@pytest.mark.parametrize("args", [
    ["--profile", "tiny", "--bogus"],                   # an option the runner does not have
    ["--profile=tiny", "-p", "epochs", "0"],            # --profile=NAME read as the runner reads it: range check
    ["--profile", "tiny", "-p", "epochs"],              # -p needs NAME and VALUE
    ["--profile", "tiny", "--name", "../up"],           # a run folder name the runner refuses
])
def test_the_dry_run_refuses_what_the_job_would_refuse_with_the_same_message(tmp_path, args):
    """submit checks the job's command line with the runner's own parser and resolution."""
    job = coursekit_cli("run", "notebooks/02_livedoor_bert.ipynb", *args)
    assert job.returncode == 2
    message = job.stderr.strip().splitlines()[-1].split("coursekit run: error: ", 1)[1]
    dry = coursekit_cli("submit", "--dry-run", "--container", "none", "--workdir", str(tmp_path),
                        "sbatch/livedoor.sbatch", *args)
    assert dry.returncode == 2 and f"coursekit run: error: {message}" in dry.stderr, dry.stderr


def test_profile_equals_form_is_the_profile(tmp_path):
    out = coursekit_cli("submit", "--dry-run", "--container", "none", "--workdir", str(tmp_path),
                        "sbatch/livedoor.sbatch", "--profile=tiny", "-p", "epochs", "2")
    assert out.returncode == 0, out.stderr
    assert slurm.check_job_arguments(ROOT / "sbatch/livedoor.sbatch", ["--profile=tiny"], ROOT)[1] == 1


def test_dry_run_says_when_sbatch_is_missing(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # this Python, no Slurm commands
    out = coursekit_cli("submit", "--dry-run", "--container", "none", "--workdir", str(tmp_path),
                        "sbatch/gpu_check.sbatch", "--profile", "tiny", env=env)
    assert out.returncode == 0 and "sbatch is not installed here" in out.stdout, out.stdout + out.stderr


def test_site_file_values_are_shown_and_a_missing_partition_or_gpu_type_refused(tmp_path):
    site = tmp_path / "site.env"
    text = (ROOT / "sbatch" / "site.env").read_text()
    site.write_text(text.replace('partition=""', 'partition="workshop"').replace(
        'export COURSEKIT_GPU_TYPE=""', 'export COURSEKIT_GPU_TYPE="a100"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SALLOC_", "COURSEKIT_"))}
    values = slurm.site_environment({**env, "COURSEKIT_SITE": str(site)})
    assert values["SBATCH_PARTITION"] == values["SLURM_PARTITION"] == values["SALLOC_PARTITION"] == "workshop"
    assert values["COURSEKIT_GPU_TYPE"] == "a100" and values["COURSEKIT_SHARED"] == ""
    assert slurm.typed_gpu_option({"--gpus-per-node": "1"}, [], "a100") == ["--gpus-per-node=a100:1"]
    assert slurm.typed_gpu_option({"--gpus-per-node": "1"}, ["--gpus-per-node=2"], "a100") == []
    assert slurm.typed_gpu_option({}, [], "a100") == [], "no GPU asked for: none added (notebook.sbatch)"
    with pytest.raises(slurm.SubmitError, match="site file .* not found"):
        slurm.site_environment({**env, "COURSEKIT_SITE": str(tmp_path / "none.env")})


def test_a_sweep_runs_in_the_image_of_its_notebooks_own_script(tmp_path, monkeypatch):
    monkeypatch.delenv("CONTAINER", raising=False)
    assert slurm.notebook_image(ROOT / "notebooks/02_livedoor_bert.ipynb", ROOT) == "keras-bert"
    assert slurm.notebook_image(ROOT / "notebooks/03_bart_translation.ipynb", ROOT) == "transformers"
    assert slurm.notebook_image(ROOT / "notebooks/05_results.ipynb", ROOT) == "transformers"
    with pytest.raises(slurm.SubmitError, match="keras-bert.sif not found"):
        slurm.submit("sbatch/sweep.sbatch", ["notebooks/02_livedoor_bert.ipynb", "-g", "epochs", "1,2"],
                     workdir=tmp_path, dry_run=True)


@pytest.mark.parametrize("text, seconds", [("5", 300), ("05:30", 330), ("00:05:00", 300), ("1:00:00", 3600),
                                           ("2-00", 172800), ("1-02:03", 93780), ("1-00:00:10", 86410),
                                           ("UNLIMITED", None)])
def test_slurm_time_limits_are_read_in_every_format(text, seconds):
    assert slurm.slurm_seconds(text) == seconds


def test_submit_refuses_a_time_limit_inside_the_warning_signal(tmp_path):
    # gpu_check.sbatch warns 300 s before its limit (#SBATCH --signal=B:USR1@300): a 5-minute job would be
    # told to stop as it starts (this reached a guide once and failed a job at random)
    with pytest.raises(slurm.SubmitError, match=r"--time=00:05:00 \(300 s\) is not longer than the warning "
                                                r"signal's 300 s.*時間の上限"):
        slurm.submit("sbatch/gpu_check.sbatch", ["--profile", "tiny"], container="none", workdir=tmp_path,
                     sbatch_options=["--time=00:05:00"], dry_run=True)
    with pytest.raises(slurm.SubmitError, match="warning signal's 300 s"):
        slurm.submit("sbatch/gpu_check.sbatch", [], container="none", workdir=tmp_path,
                     sbatch_options=["-t4"], dry_run=True)
    for options in (["--time=00:10:00"], ["--time=00:05:00", "--signal=B:USR1@60"], []):
        assert slurm.submit("sbatch/gpu_check.sbatch", [], container="none", workdir=tmp_path,
                            sbatch_options=options, dry_run=True) is None, options


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
@pytest.fixture
def slurm_env(workshop):
    """The workshop's test cluster (tests/conftest.py), shared by every job test."""
    return workshop


def _sbatch(env, cwd, *args) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _wait_done(env, job, seconds=240) -> str:
    final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")
    wait(lambda: field(env, job, "JobState") in final, seconds, f"job {job} to end")
    return field(env, job, "JobState")


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
    wait(lambda: all((runs / f"{job}_{i}" / "metrics.json").exists() and
                          json.loads((runs / f"{job}_{i}" / "metrics.json").read_text())
                          .get("runner", {}).get("status") == "completed" for i in range(3)), 300, "3 tasks")
    xs = []
    for i, lr in enumerate(("0.1", "0.2", "0.3")):
        data = json.loads((runs / f"{job}_{i}" / "metrics.json").read_text())
        assert data["params"] == {"profile": "tiny", "steps": 3, "step_seconds": 0, "lr": float(lr)}
        state = json.loads((runs / f"{job}_{i}" / "counter.json").read_text())
        assert state["done"] and state["step"] == 3
        xs.append(state["x"])
        log = (tmp_path / f"logs/sweep-{job}_{i}.log").read_text()
        assert f"task {i}" in log and f"lr={lr}" in log
    assert xs[0] < xs[1] < xs[2] < 3.0, "a larger learning rate gets closer to the minimum at 3"


def _release_requeued(env, job) -> None:
    """Wait until the warned job is requeued, then let its second attempt start now."""
    wait(lambda: field(env, job, "Restarts") == "1" and
              field(env, job, "JobState") == "PENDING", 120, "the job to be requeued")
    requeued_at = time.time()
    # Slurm holds a requeued job for about two minutes (BeginTime); release it sooner to save time,
    # but not in the same second as the requeue: slurmd revokes the old attempt's credential with a
    # one-second timestamp, and a new launch credential issued in that same second counts as revoked
    # ("Killing non-startable batch JobId=N: Job credential revoked" -> the job ends FAILED without a
    # second attempt; seen on a loaded machine, where the release came right after the requeue).
    wait(lambda: all_idle(env), 120, "the nodes to finish the first attempt")
    time.sleep(max(0.0, requeued_at + 2.0 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)


def test_a_warning_before_the_notebook_starts_still_checkpoints_and_requeues(slurm_env, tmp_path):
    """USR1 as soon as the batch shell has started, before the runner (python) has set any handler:
    the shell turns it into the stop file, which the notebook finds at its first step (a signal passed
    on to the runner at that moment would have killed it: exit 138, no requeue)."""
    (tmp_path / "logs").mkdir()
    job = _sbatch(slurm_env, tmp_path, str(ROOT / "sbatch/notebook.sbatch"), str(COUNTER_NB),
                  "-p", "steps", "5", "-p", "step_seconds", "0.3")
    log = tmp_path / f"logs/notebook-{job}.log"
    wait(lambda: log.exists() and "attempt 1 on" in log.read_text(), 120, "the batch shell to start")
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm_env, check=True)
    _release_requeued(slurm_env, job)
    state = _wait_done(slurm_env, job, 300)
    text = log.read_text()
    assert state == "COMPLETED", f"{field(slurm_env, job, 'ExitCode')=}\n{text[-3000:]}"
    assert "warning signal (USR1)" in text and "requeueing job" in text and "attempt 2" in text
    folder = Path(slurm_env["COURSEKIT_RUNS"]) / "counter_training" / job
    assert json.loads((folder / "metrics.attempt1.json").read_text())["status"] == "preempted"
    counter = json.loads((folder / "counter.json").read_text())
    assert counter["done"] and counter["step"] == 5 and counter["attempts"] == [1, 2]
    assert counter["resumed_from"] == [0, 1], "the first attempt stopped after its first step"
    assert not list(Path("/tmp").glob(f"coursekit-stop-{job}-*")), "the stop files are removed"


def test_warning_signal_checkpoints_requeues_and_resumes(slurm_env, tmp_path):
    (tmp_path / "logs").mkdir()
    job = _sbatch(slurm_env, tmp_path, str(ROOT / "sbatch/notebook.sbatch"), str(COUNTER_NB),
                  "-p", "steps", "30", "-p", "step_seconds", "0.3")
    folder = Path(slurm_env["COURSEKIT_RUNS"]) / "counter_training" / job
    counter = folder / "counter.json"
    wait(lambda: counter.exists() and json.loads(counter.read_text())["step"] >= 3, 180, "training to start")
    # what Slurm does at --signal=B:USR1@N before the time limit: USR1 to the batch shell only
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm_env, check=True)
    _release_requeued(slurm_env, job)
    state = _wait_done(slurm_env, job, 300)
    daemon_logs = sorted(Path(slurm_env["SLURM_ROOT"], "log").glob("slurm*.log"))
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                     for p in [*sorted((tmp_path / "logs").iterdir()), *daemon_logs])
    assert state == "COMPLETED", f"{field(slurm_env, job, 'ExitCode')=}\n{logs}"
    assert field(slurm_env, job, "Restarts") == "1"
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


# ----------------------------------------------------------------------------- real containers
# Notebooks 00, 02, 03 and 04 as jobs in their images, sweeps in them, and multi-node jobs: tests/harness/
# test_workshop.py runs every guide line that submits them, as a student on the workshop's cluster.
# The CPU test images of defs/*.def (tests/harness/cpu_images.py: generated from the real files, built with
# Apptainer, cached on this machine by the hash of their inputs). Where Apptainer cannot be had, the image
# tests FAIL, unless COURSEKIT_NO_IMAGES=1 says this machine is not expected to build images.
IMAGE_DEFS = sorted(p.stem for p in (ROOT / "defs").glob("*.def"))
SMALL_03 = ("-p", "vocab_size", "120", "-p", "d_model", "32", "-p", "layers", "1", "-p", "max_length", "24",
            "-p", "batch_size", "16", "-p", "learning_rate", "0.003", "-p", "num_beams", "1", "-p", "examples", "3")

def _image_env(slurm_env, runtime):
    env = {**slurm_env, "PYTHON": "python3", "RUNTIME": runtime}
    env.pop("CONTAINER")
    return env


def _submit_in_image(env, workdir, script, image, *args, cpus=2):
    t0 = time.monotonic()
    proc = coursekit_cli("submit", script, "--container", str(image), "--workdir", str(workdir),
                         f"--sbatch=--cpus-per-task={cpus}", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1], t0


def _job_logs(workdir: Path, env) -> str:
    daemon = sorted(Path(env["SLURM_ROOT"], "log").glob("slurm*.log"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                     for p in [*sorted((workdir / "logs").iterdir()), *daemon])


def _ran_in_image(folder: Path, image, log: str):
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "completed", data.get("error")
    assert data["python"] != sys.version.split()[0], "the image's own Python ran the notebook, not the host's"
    assert f"container: {image}" in log
    return data


@pytest.mark.parametrize("name", IMAGE_DEFS)
def test_cpu_test_image_passes_its_test_section(images, name):
    runtime, image = images[name]
    proc = subprocess.run([runtime, "test", str(image)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = proc.stdout
    assert "Container: none" not in report and "Container: " in report, "the check knows it is in a container"
    assert "PYTHONNOUSERSITE: set" in report, "%environment of the real .def is in effect"
    assert "No GPU is visible" in report
    lab = subprocess.run([runtime, "exec", str(image), "jupyter", "lab", "--version"], capture_output=True,
                         text=True, timeout=300)
    assert lab.returncode == 0 and lab.stdout.strip() == containers_pins()["jupyterlab"], \
        "JupyterLab runs from inside the image (handson/06_jupyterlab.md)"


def containers_pins() -> dict[str, str]:
    from coursekit.harness import containers

    return containers.read_pins(ROOT / "requirements.txt")


def test_notebook_03_warned_in_its_image_checkpoints_requeues_and_resumes(images, slurm_env, tmp_path):
    """The real notebook 03 in the transformers image: USR1 (what --signal=B:USR1@300 sends) after its
    first epoch's checkpoint -> PreemptionCallback saves and stops -> the job requeues itself -> the
    second attempt resumes from the checkpoint (get_last_checkpoint) and completes."""
    from ..lessons.test_alt import write_parallel

    runtime, image = images["transformers"]
    env = _image_env(slurm_env, runtime)
    data_dir = write_parallel(tmp_path / "data", sizes=(320, 32, 24))
    checkpoints = tmp_path / "ckpt"
    job, t0 = _submit_in_image(env, tmp_path, "sbatch/bart.sbatch", image, "--profile", "tiny",
                               "-p", "data_dir", str(data_dir), "-p", "checkpoint_dir", str(checkpoints),
                               "-p", "epochs", "20", *SMALL_03)  # 400 steps: still training when warned
    wait(lambda: (checkpoints / "checkpoint-20").is_dir() or
              field(env, job, "JobState") not in ("PENDING", "RUNNING"), 900, "the first epoch's checkpoint")
    assert field(env, job, "JobState") == "RUNNING", _job_logs(tmp_path, env)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=env, check=True)
    wait(lambda: field(env, job, "Restarts") == "1" and field(env, job, "JobState") == "PENDING",
              300, "the job to be requeued")
    requeued_at = time.time()
    # release as in test_warning_signal_checkpoints_requeues_and_resumes: node idle, 2 s after the requeue
    wait(lambda: all_idle(env), 300, "the nodes to finish the first attempt")
    time.sleep(max(0.0, requeued_at + 2.0 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
    state = _wait_done(env, job, 900)
    assert state == "COMPLETED", _job_logs(tmp_path, env)
    print(f"\n[jobs] notebook 03 preempted + resumed in {image.name}: {time.monotonic() - t0:.0f} s")
    folder = Path(env["COURSEKIT_RUNS"]) / "03_bart_translation" / job
    log = (tmp_path / f"logs/bart-{job}.log").read_text()
    data = _ran_in_image(folder, image, log)
    first = json.loads((folder / "metrics.attempt1.json").read_text())
    assert first["status"] == "preempted" and first["runner"]["attempt"] == 1
    training = data["metrics"]["training"]
    assert 20 <= training["resumed_from_step"] < 400, "resumed from the checkpoint, not from 0"
    assert training["global_step"] == 400 and data["runner"]["attempt"] == 2
    assert "requeueing job" in log and "attempt 2" in log
