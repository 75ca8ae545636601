"""What the tests on the real test Slurm share: starting and stopping a cluster of one or more nodes on
this machine (tests/cluster/start-slurm.sh), a field of `scontrol show job`, and waiting for a condition.

The workshop's cluster (`WORKSHOP`, started once per test session by the `workshop` fixture of tests/conftest.py
and shared by every test that submits jobs): two nodes, a partition named `workshop` that is NOT the default
(no default partition: a job must name it, as the site file does), typed fake GPUs (gres gpu:a100, two per
node), each node declaring 8 CPUs and 96 GB like a real GPU node (nothing is enforced)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import ROOT

CLUSTER = ROOT / "tests" / "cluster"
WORKSHOP = {"nodes": 2, "partition": "workshop", "gpu_type": "a100", "gpus": 2, "cpus": 8, "memory_mb": 98304}


def free_ports_in_a_row(n: int) -> int:
    """A port p with p, p + 1, ..., p + n - 1 free now (slurmd number i listens on p + i)."""
    for _ in range(50):
        with ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port + n - 1 > 65535:
                continue
            try:
                for i in range(1, n):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port + i))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no {n} consecutive free ports")


def daemon_logs(root: Path) -> str:
    """The tails of slurmctld's and every slurmd's log, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(Path(root, "log").glob("slurm*.log")))


@contextmanager
def cluster(name: str, runs: Path, nodes: int = 1, partition: str | None = None, gpu_type: str = "tesla",
            gpus: int = 2, cpus: int | None = None, memory_mb: int | None = None) -> Iterator[dict]:
    """A real Slurm with `nodes` slurmd daemons on this machine, started for the block and stopped after it.
    `partition`: its only partition, not the default one (jobs must name it; the yielded environment does,
    through SBATCH_PARTITION and SLURM_PARTITION); None: `debug`, the default. Yields the environment to submit
    jobs in: SLURM_CONF, SLURM_ROOT, the kit (KIT_DIR, this Python first on PATH, CONTAINER=none) and
    COURSEKIT_RUNS=`runs`. Skips where Slurm cannot run here (not root on Linux; not installed and no apt-get
    to install it); fails with the daemons' logs where it does not start."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a real Slurm needs root on Linux (tests/cluster/start-slurm.sh); .ci/run has it")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("Slurm is not installed and apt-get is missing (Debian/Ubuntu needed)")
    root = Path(f"/tmp/coursekit-slurm-{name}-{os.getpid()}")
    d_port = free_ports_in_a_row(nodes)  # free ports: another test session may run its own cluster meanwhile
    ctld_port = free_ports_in_a_row(1)
    while d_port <= ctld_port < d_port + nodes:
        ctld_port = free_ports_in_a_row(1)
    env = {**os.environ, "SLURM_ROOT": str(root), "SLURM_CLEAN": "1", "FAKE_GPUS": str(gpus), "LINK_ETC": "0",
           "NODES": str(nodes), "SLURMCTLD_PORT": str(ctld_port), "SLURMD_PORT": str(d_port), "GPU_TYPE": gpu_type,
           "PARTITION": partition or "debug", "PARTITION_DEFAULT": "NO" if partition else "YES",
           "NODE_CPUS": str(cpus or ""), "NODE_MEMORY": str(memory_mb or "")}

    def stop():
        subprocess.run(["bash", str(CLUSTER / "stop-slurm.sh")], env=env, capture_output=True, timeout=120)

    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(CLUSTER / "start-slurm.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        stop()
        logs = daemon_logs(root)
        shutil.rmtree(root, ignore_errors=True)
        if not shutil.which("slurmctld"):
            pytest.skip(f"could not install Slurm: {proc.stderr.strip()[-500:]}")
        pytest.fail(f"start-slurm.sh NODES={nodes} failed:\n{proc.stderr[-3000:]}\n{logs}")
    print(f"\n[slurm] {nodes} node(s) up in {time.monotonic() - t0:.1f}s")
    job_env = {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf"), "SLURM_ROOT": str(root),
               "CONTAINER": "none", "PYTHON": sys.executable, "KIT_DIR": str(ROOT),
               "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               "COURSEKIT_RUNS": str(runs)}
    if partition:
        job_env.update(SBATCH_PARTITION=partition, SLURM_PARTITION=partition, SALLOC_PARTITION=partition)
    job_env.pop("COURSEKIT_RUN_DIR", None)
    try:
        yield job_env
    finally:
        stop()
    left = sorted(p.name for p in (root / "run").glob("*.pid"))  # slurmctld, munged, slurmd-<node>
    assert not left, f"daemons left running: {left}"
    shutil.rmtree(root, ignore_errors=True)


def all_idle(env) -> bool:
    """Every node of the cluster is idle (no job step left on any)."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True).stdout.split()
    return bool(out) and set(out) == {"idle"}


def field(env, job, name) -> str:
    """The value of `name=` in `scontrol show job JOB` ("" when absent)."""
    out = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
    for token in out.split():
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return ""


def wait(cond, seconds, what, every: float = 0.5) -> None:
    """Poll `cond` until it is true; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")
