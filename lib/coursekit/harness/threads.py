"""Threads follow the job's allocation, not the node's core count.

PyTorch, TensorFlow and the BLAS libraries start as many threads as the machine has cores. In a
Slurm job given 4 of a node's 64 cores, 64 spinning threads share 4 cores: training slows down by
far more than the share (on 2 cores, a tiny BART epoch took 16.7 minutes beside another busy
process and 2.4 minutes alone). The runner therefore gives the kernel the thread variables below,
each set to the job's CPU count unless the user set it already (MKL and OpenBLAS follow a
user's OMP_NUM_THREADS):

    count: $SLURM_CPUS_PER_TASK, else the CPUs this process may run on (os.sched_getaffinity),
           else os.cpu_count()
    OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS   torch.get_num_threads(), NumPy's BLAS
    TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS           TensorFlow's two thread pools

The frameworks read them when they start, so they must be in the kernel's environment before the
notebook imports anything: the runner sets `kernel_values(plan())` while the kernel starts; the run
record (metrics.json, runner.threads) says what was used.
"""
from __future__ import annotations

import os
from typing import Mapping

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
BLAS_VARS = ("MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def allocated(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(CPU count of this job, where it came from)."""
    env = os.environ if environ is None else environ
    value = (env.get("SLURM_CPUS_PER_TASK") or "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "SLURM_CPUS_PER_TASK"
    try:
        return max(1, len(os.sched_getaffinity(0))), "CPU affinity"
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1), "os.cpu_count()"


def plan(environ: Mapping[str, str] | None = None) -> dict:
    """What the kernel gets: {"count", "source", "env": every thread variable's value,
    "set": the variables set here (the others were set by the user and are kept)}."""
    env = os.environ if environ is None else environ
    count, source = allocated(env)
    missing = [name for name in THREAD_VARS if not (env.get(name) or "").strip()]
    # the BLAS libraries follow the user's OMP_NUM_THREADS when there is one: torch reads
    # MKL_NUM_THREADS after OMP_NUM_THREADS, so a different value would silently win over the user's
    blas = (env.get("OMP_NUM_THREADS") or "").strip() or str(count)
    default = {name: (blas if name in BLAS_VARS else str(count)) for name in THREAD_VARS}
    values = {name: (default[name] if name in missing else env[name]) for name in THREAD_VARS}
    return {"count": count, "source": source, "env": values, "set": missing}


def kernel_values(info: dict) -> dict[str, str]:
    """The variables of `plan()` to put into the kernel's environment: those the user did not set."""
    return {name: info["env"][name] for name in info["set"]}


def log_line(info: dict) -> str:
    """The job-log line: how many threads, from where, which values of the user's were kept."""
    kept = ", ".join(f"{n}={info['env'][n]}" for n in THREAD_VARS if n not in info["set"])
    return (f"{info['count']} threads ({info['source']})" + (f"; kept the user's {kept}" if kept else "")
            + f" / スレッド数 {info['count']}")
