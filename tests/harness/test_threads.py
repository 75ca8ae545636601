"""Threads follow the job's allocation: the runner gives the kernel OMP/MKL/TF thread variables set to
$SLURM_CPUS_PER_TASK (else the CPU affinity), keeps the user's own, and records what it used."""
from __future__ import annotations

import json
import os

import pytest

from coursekit.harness import threads

from ..conftest import coursekit_cli, write_notebook


def test_count_from_slurm_else_the_affinity():
    assert threads.allocated({"SLURM_CPUS_PER_TASK": "3"}) == (3, "SLURM_CPUS_PER_TASK")
    for odd in ({}, {"SLURM_CPUS_PER_TASK": ""}, {"SLURM_CPUS_PER_TASK": "0"}, {"SLURM_CPUS_PER_TASK": "2(x3)"}):
        assert threads.allocated(odd) == (len(os.sched_getaffinity(0)), "CPU affinity"), odd


def test_plan_keeps_the_users_variables():
    info = threads.plan({"SLURM_CPUS_PER_TASK": "4", "OMP_NUM_THREADS": "1"})
    assert info["count"] == 4 and info["source"] == "SLURM_CPUS_PER_TASK"
    # MKL/OpenBLAS follow the user's OMP_NUM_THREADS (torch would take MKL_NUM_THREADS over it)
    assert info["env"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                           "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "4"}
    assert "OMP_NUM_THREADS" not in info["set"] and len(info["set"]) == 4


def test_the_kernel_gets_the_missing_variables_then_they_are_restored(monkeypatch):
    from coursekit.harness.runner import kernel_env

    for name in threads.THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    info = threads.plan()
    with kernel_env(threads.kernel_values(info)):
        assert os.environ["OMP_NUM_THREADS"] == "5" and os.environ["TF_NUM_INTRAOP_THREADS"] == "5"
        assert os.environ["MKL_NUM_THREADS"] == "2"
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "2"
    assert info["count"] == 5 and threads.log_line(info) == ("5 threads (SLURM_CPUS_PER_TASK); kept the user's "
                                                           "MKL_NUM_THREADS=2 / スレッド数 5")


# Inside the kernel: torch's thread count, and TensorFlow's two pools counted by their threads (its
# inter-op threads are named tf_Compute; its intra-op (Eigen) threads keep the process's name)
PROBE = """\
import collections, json, os
def names():
    return collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
import torch
torch_threads = torch.get_num_threads()
before = names()
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
x = tf.random.uniform((256, 256))
_ = (x @ x).numpy()
after = names()
main = open("/proc/self/comm").read().strip()
print("PROBE " + json.dumps({"torch": torch_threads, "tf_inter_op": after["tf_Compute"],
                             "tf_added": after[main] - before[main],
                             "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")}}))
"""


def _probe(tmp_path, name, env):
    nb = write_notebook(tmp_path / "threads.ipynb", 'profile = "full"  # profile', PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in threads.THREAD_VARS}
    proc = coursekit_cli("run", str(nb), "--runs-dir", str(tmp_path / "runs"), "--name", name, "--no-html",
                         env={**clean, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    record = json.loads((tmp_path / "runs" / "threads" / name / "metrics.json").read_text())
    return json.loads(line[len("PROBE "):]), record["runner"]["threads"], proc.stderr


@pytest.mark.notebook
def test_torch_and_tensorflow_in_the_kernel_follow_slurm_cpus_per_task(tmp_path, monkeypatch):
    for name in threads.THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    one, rec_one, log = _probe(tmp_path, "one", {"SLURM_CPUS_PER_TASK": "1"})
    assert rec_one["count"] == 1 and rec_one["source"] == "SLURM_CPUS_PER_TASK"
    assert "coursekit run: 1 threads (SLURM_CPUS_PER_TASK)" in log
    assert one["torch"] == 1 and one["env"] == {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    assert one["tf_inter_op"] == 1
    # 3 CPUs allotted, the user's OMP_NUM_THREADS=1 kept (as in run one: the same OpenMP threads, so the
    # difference in threads is TensorFlow's intra-op pool alone): torch 1, TensorFlow's pools 3 each
    three, rec_three, _ = _probe(tmp_path, "three", {"SLURM_CPUS_PER_TASK": "3", "OMP_NUM_THREADS": "1"})
    assert rec_three["count"] == 3 and rec_three["env"]["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in rec_three["set"] and rec_three["env"]["TF_NUM_INTRAOP_THREADS"] == "3"
    assert three["torch"] == 1 and three["tf_inter_op"] == 3
    assert three["tf_added"] - one["tf_added"] == 2, "TensorFlow's intra-op pool: 3 threads instead of 1"
