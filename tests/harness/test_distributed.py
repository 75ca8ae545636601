"""Data parallelism (harness/distributed.py): the launch variables, and notebook 03 trained by 2 processes
with gloo on this CPU, launched as sbatch/run-notebook.sh launches them (directly with the variables srun
gives, and through a real single-node Slurm with --ntasks=2, warned, requeued and resumed).

Tolerance: the validation loss after the same 20 optimizer steps, 1 process x batch 16 against 2 processes
x batch 8 (the same global batch and seed), agrees within 2 % (measured here: 3.9657 vs 3.9675, 0.05 %;
not bit-identical because dropout draws differ per process and DDP sums the two halves' gradients in
another order)."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.harness import distributed, utilisation
from coursekit.lessons.dataparallel import free_port
from ..conftest import ROOT
from ..lessons.test_alt import write_parallel
from .slurmjobs import all_idle, field, wait

NOTEBOOK = "notebooks/03_bart_translation.ipynb"
SMALL = ("-p", "vocab_size", "120", "-p", "d_model", "32", "-p", "layers", "1", "-p", "max_length", "24",
         "-p", "learning_rate", "0.003", "-p", "num_beams", "1", "-p", "examples", "3")
TOLERANCE = 0.02   # relative, on the validation loss after k = 20 steps


# ----------------------------------------------------------------------------- launch variables
def test_srun_variables_become_torch_distributed_ones():
    env = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
           "SLURM_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_ID": "123456", "MASTER_ADDR": "gpu01"}
    info = distributed.plan(env)
    assert info["env"] == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                           "MASTER_ADDR": "gpu01", "MASTER_PORT": str(20000 + 123456 % 20000)}
    assert info["source"] == "slurm"
    # the batch shell itself (no step), one task, or no Slurm at all: a single process
    assert distributed.plan({**env, "SLURM_STEP_ID": "batch"}) is None
    assert distributed.plan({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_STEP_ID": "0"}) is None
    assert distributed.plan({}) is None
    # torchrun or a test sets the variables itself: kept
    kept = distributed.plan({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1234"})
    assert kept["source"] == "environment" and kept["env"]["MASTER_PORT"] == "1234"


def test_ports_differ_between_jobs_and_hosts_come_from_the_node_list(monkeypatch):
    assert len({distributed.port_for_job(j) for j in range(5000, 5100)}) == 100   # array tasks: own job ids
    assert all(20000 <= distributed.port_for_job(j) < 40000 for j in (0, 19999, 20000, 10 ** 9))
    monkeypatch.setenv("PATH", "/nonexistent")   # no scontrol: the list is expanded here
    assert distributed.first_host("gpu[03-05,07],cpu1") == "gpu03"
    assert distributed.first_host("node7") == "node7"


def test_utilisation_summary_flags_idle_devices():
    rows = [[(90.0, 1000.0, 16000.0), (10.0, 500.0, 16000.0)], [(100.0, 1200.0, 16000.0), (20.0, 600.0, 16000.0)]]
    s = utilisation.summarise("gpu", 2.0, [0, 1], ["A", "B"], rows)
    assert s["samples"] == 2 and s["devices"][0]["util_mean"] == 95.0 and s["devices"][1]["util_max"] == 20.0
    assert s["util_mean"] == 55.0 and s["idle"] is False
    assert utilisation.summarise("gpu", 2.0, [0], ["A"], [[(5.0, 1.0, 2.0)]])["idle"] is True
    assert utilisation.summarise(None, 2.0, [], [], [])["samples"] == 0
    with utilisation.Sampler(0.05) as sampler:   # this machine: no GPU, so the CPU
        sum(i * i for i in range(2_000_000))
    summary = sampler.summary()
    assert summary["kind"] in ("cpu", "gpu") and summary["samples"] >= 1


# ----------------------------------------------------------------------------- 2 processes, no Slurm
def _launch(n: int, name: str, runs: Path, *args: str) -> list[subprocess.CompletedProcess]:
    """n runners on one notebook, with the variables srun + sbatch/run-notebook.sh give each task."""
    base = {**os.environ, "COURSEKIT_RUNS": str(runs), "OMP_NUM_THREADS": "1", "COURSEKIT_SAMPLE_S": "0.5"}
    base.pop("COURSEKIT_RUN_DIR", None)
    port = free_port()
    procs = []
    for rank in range(n):
        env = dict(base)
        if n > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port), COURSEKIT_LAUNCH_ID=f"{name}-{port}")
        procs.append(subprocess.Popen([sys.executable, "-m", "coursekit", "run", NOTEBOOK, "--profile", "tiny",
                                       "--name", name, "--no-html", *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.notebook
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    data = write_parallel(tmp_path / "data", sizes=(320, 32, 8))
    runs = tmp_path / "runs"
    common = ("-p", "data_dir", str(data), "-p", "epochs", "1", *SMALL)
    two = _launch(2, "ddp", runs, *common, "-p", "batch_size", "8")
    assert [p.returncode for p in two] == [0, 0], two[0].stderr[-3000:] + two[1].stderr[-3000:]
    one = _launch(1, "single", runs, *common, "-p", "batch_size", "16")
    assert one[0].returncode == 0, one[0].stderr[-3000:]

    folders = sorted(p.parent.name for p in (runs / "03_bart_translation").glob("*/metrics.json"))
    assert folders == ["ddp", "single"], "exactly one run folder (and one metrics.json) per launch"
    ddp = json.loads((runs / "03_bart_translation/ddp/metrics.json").read_text())
    single = json.loads((runs / "03_bart_translation/single/metrics.json").read_text())
    assert ddp["status"] == "completed" and ddp["runner"]["processes"] == 2
    assert ddp["runner"]["distributed"]["world_size"] == 2 and single["runner"]["processes"] == 1
    m2, m1 = ddp["metrics"], single["metrics"]
    assert m2["global_batch"] == m1["global_batch"] == 16 and m2["world_size"] == 2
    assert m2["training"]["global_step"] == m1["training"]["global_step"] == 20, "20 steps of 16 pairs each"
    a, b = m2["eval_losses"][-1], m1["eval_losses"][-1]
    assert abs(a - b) / b < TOLERANCE, f"validation loss after 20 steps: 2 processes {a:.4f}, 1 process {b:.4f}"
    assert abs(m2["train_loss"] - m1["train_loss"]) / m1["train_loss"] < TOLERANCE
    assert "rank 1 of 2" in two[1].stderr and "scratch folder" in two[1].stderr
    scratch = Path(re.search(r"in scratch folder (\S+) \(rank 0", two[1].stderr).group(1))
    assert "scratch folder removed" in two[1].stderr and not scratch.exists(), "rank 1 cleans up after a success"
    assert ddp["utilisation"]["samples"] >= 1 and ddp["utilisation"]["kind"] in ("cpu", "gpu")
    assert not list((runs / "03_bart_translation").glob(".launch-*")), "the pointer file is removed"


# ----------------------------------------------------------------------------- a real Slurm, 2 tasks
@pytest.fixture(scope="module")
def slurm(workshop, tmp_path_factory):
    """The workshop's test cluster (tests/conftest.py), with run folders of this module's own."""
    return {**workshop, "COURSEKIT_RUNS": str(tmp_path_factory.mktemp("ddp-runs"))}


@pytest.mark.notebook
def test_a_warned_two_task_job_checkpoints_on_all_ranks_requeues_and_resumes(slurm, tmp_path):
    data = write_parallel(tmp_path / "data", sizes=(320, 32, 8))
    (tmp_path / "logs").mkdir()
    proc = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=2",
                           "--cpus-per-task=1",
                           str(ROOT / "sbatch/bart.sbatch"), "--profile", "tiny", "--no-html", *SMALL,
                           "-p", "data_dir", str(data), "-p", "epochs", "30", "-p", "batch_size", "8"],
                          cwd=tmp_path, env=slurm, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    log = tmp_path / f"logs/bart-{job}.log"
    wait(lambda: log.exists() and "[train] step" in log.read_text(errors="replace"), 300, "training to start")
    time.sleep(3)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm, check=True)
    wait(lambda: field(slurm, job, "Restarts") == "1" and field(slurm, job, "JobState") == "PENDING", 180,
          "the requeue")
    requeued = time.time()
    wait(lambda: all_idle(slurm), 120, "the nodes to be idle")
    time.sleep(max(0.0, requeued + 2.0 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm, check=True)
    wait(lambda: field(slurm, job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED"), 400, "the job to end")
    text = log.read_text(errors="replace")
    assert field(slurm, job, "JobState") == "COMPLETED", text[-3000:]
    assert "data parallel: 2 processes" in text and "requeueing job" in text
    assert len(re.findall(r"checkpoint-\d+ から再開します", text)) == 2, "both ranks resumed from the checkpoint"
    runs = Path(slurm["COURSEKIT_RUNS"]) / "03_bart_translation"
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == [job], "one run folder"
    folder = runs / job
    first = json.loads((folder / "metrics.attempt1.json").read_text())
    final = json.loads((folder / "metrics.json").read_text())
    assert first["status"] == "preempted" and final["status"] == "completed"
    step = final["metrics"]["training"]["resumed_from_step"]
    assert 0 < step < 600 and f"after step {step}" in first["runner"]["error"], "resumed where all ranks stopped"
    assert final["metrics"]["training"]["global_step"] == 600 and final["runner"]["processes"] == 2


# ----------------------------------------------------------------------------- report
def test_report_shows_utilisation_idle_runs_and_scaling(tmp_path):
    from coursekit.harness import report

    def run(name, processes, seconds, util):
        folder = tmp_path / "03_bart_translation" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "notebook": "03_bart_translation", "profile": "full", "params": {"epochs": 1}, "status": "completed",
            "device": {}, "phases": {"train": seconds}, "metrics": {},
            "runner": {"status": "completed", "duration_s": seconds, "processes": processes},
            "utilisation": utilisation.summarise("gpu", 2.0, list(range(processes)), ["X"] * processes,
                                                 [[(util, 1.0, 2.0)] * processes])}))

    run("one", 1, 100.0, 90.0)
    run("two", 2, 55.0, 85.0)
    run("four", 4, 100.0, 10.0)   # the original workshop's case: four GPUs, one used, no faster
    infos = {i.run: i for i in report.find_runs(tmp_path)}
    assert infos["two"].scaling == pytest.approx(100 / 55) and infos["two"].efficiency == pytest.approx(100 / 55 / 2)
    assert infos["four"].efficiency == pytest.approx(0.25) and infos["four"].idle and not infos["one"].idle
    md = report.markdown(list(infos.values()))
    assert "1.82x (91%)" in md and "GPU 10% ⚠ idle" in md and "sat mostly idle" in md
