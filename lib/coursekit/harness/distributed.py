"""Data-parallel runs: one process per GPU, started by Slurm's `srun`, one notebook run.

    #SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4     (8 processes, 8 GPUs)
    srun python -m coursekit run NOTEBOOK.ipynb       (sbatch/multi_gpu.sbatch does this)

`srun` starts the same command once per task; every task runs the runner on the same notebook.
Slurm tells each task who it is (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID); the runner turns that
into the variables torch.distributed reads (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
and gives them to the notebook's kernel. transformers' Trainer sees WORLD_SIZE > 1 and trains
data-parallel by itself (DistributedDataParallel; NCCL on GPUs, gloo on CPUs).

- Rank 0 is the run: it writes the run folder, the checkpoints and metrics.json.
- The other ranks execute the notebook into a scratch folder (`rank_dir`) and record nothing in the
  runs folder; they find rank 0's run folder (`COURSEKIT_MAIN_RUN_DIR`, for the shared checkpoints)
  through a small pointer file rank 0 writes next to it.
- MASTER_ADDR is the first host of the job (`scontrol show hostnames "$SLURM_JOB_NODELIST" | head -1`);
  MASTER_PORT is derived from the job id (every array task has its own job id), so two jobs that
  share a node never collide.
- A launch that sets RANK/WORLD_SIZE itself (torchrun, a test) is kept as it is.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

PORT_BASE, PORT_SPAN = 20000, 20000   # MASTER_PORT = 20000 + job id % 20000


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = (env.get(name) or "").strip()
    return int(value) if value.lstrip("-").isdigit() else default


def port_for_job(job_id: str | int | None) -> int:
    """The rendezvous port of a job: 20000 + job id % 20000 (29500, torch's default, without a job)."""
    if job_id is None or not str(job_id).strip().isdigit():
        return 29500
    return PORT_BASE + int(job_id) % PORT_SPAN


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list, as `scontrol show hostnames LIST | head -1` prints it
    (scontrol when available; else the list is expanded here: node[03-05,07],gpu1 -> node03)."""
    hosts = hostnames(nodelist)
    return hosts[0] if hosts else nodelist.strip()


def plan(environ: Mapping[str, str] | None = None) -> dict | None:
    """The distributed variables of this process, or None for a single-process run.

    {"rank", "world_size", "local_rank", "local_world_size", "master_addr", "master_port",
     "source": "environment" (torchrun, a test) or "slurm" (srun), "env": the variables to export}."""
    env = os.environ if environ is None else environ
    if _int(env, "WORLD_SIZE") is not None and _int(env, "RANK") is not None:
        world, rank, source = _int(env, "WORLD_SIZE"), _int(env, "RANK"), "environment"
        local = _int(env, "LOCAL_RANK", rank)
        local_world = _int(env, "LOCAL_WORLD_SIZE", world)
        addr = env.get("MASTER_ADDR") or "127.0.0.1"
        port = _int(env, "MASTER_PORT", port_for_job(env.get("SLURM_JOB_ID")))
    elif (_int(env, "SLURM_NTASKS", 1) or 1) > 1 and _int(env, "SLURM_PROCID") is not None \
            and env.get("SLURM_STEP_ID") not in (None, "", "batch", "extern", "4294967294"):
        world, rank, source = _int(env, "SLURM_NTASKS"), _int(env, "SLURM_PROCID"), "slurm"
        local = _int(env, "SLURM_LOCALID", 0)
        local_world = _int(env, "SLURM_NTASKS_PER_NODE", None) or _tasks_on_this_node(env) or world
        addr = env.get("MASTER_ADDR") or first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
                                                    or "127.0.0.1")
        port = _int(env, "MASTER_PORT", port_for_job(env.get("SLURM_JOB_ID")))
    else:
        return None
    if world is None or world < 2:
        return None
    values = {"RANK": rank, "WORLD_SIZE": world, "LOCAL_RANK": local, "LOCAL_WORLD_SIZE": local_world,
              "MASTER_ADDR": addr, "MASTER_PORT": port}
    return {"rank": rank, "world_size": world, "local_rank": local, "local_world_size": local_world,
            "master_addr": addr, "master_port": port, "source": source,
            "env": {k: str(v) for k, v in values.items()}}


def _tasks_on_this_node(env: Mapping[str, str]) -> int | None:
    """SLURM_TASKS_PER_NODE looks like '2' or '2(x3),1': the first entry is enough for the local size."""
    m = re.match(r"(\d+)", env.get("SLURM_TASKS_PER_NODE") or "")
    return int(m.group(1)) if m else None


def launch_key(info: dict, environ: Mapping[str, str] | None = None) -> str:
    """A name shared by the tasks of one launch (and different for the next attempt of the job)."""
    env = os.environ if environ is None else environ
    if env.get("COURSEKIT_LAUNCH_ID"):
        return re.sub(r"[^A-Za-z0-9_.-]", "_", env["COURSEKIT_LAUNCH_ID"])
    if env.get("SLURM_JOB_ID"):
        return f"{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', 'x')}.r{env.get('SLURM_RESTART_COUNT', '0')}"
    return f"{info['master_addr']}-{info['master_port']}"


def pointer_file(parent: Path, key: str) -> Path:
    return Path(parent) / f".launch-{key}.json"


def announce_run_dir(parent: Path, key: str, run_dir: Path) -> Path:
    """Rank 0: tell the other ranks where the run folder is (a pointer file beside it)."""
    path = pointer_file(parent, key)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"run_dir": str(run_dir), "time": time.time()}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def wait_for_run_dir(parent: Path, key: str, started: float, timeout: float = 600.0,
                     poll: float = 0.2) -> Path:
    """Ranks > 0: rank 0's run folder, once rank 0 has announced it (written after `started` - 120 s,
    so a pointer left by an earlier launch is never taken)."""
    path = pointer_file(parent, key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if float(data.get("time", 0)) >= started - 120:
                return Path(data["run_dir"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(poll)
    raise TimeoutError(f"rank 0 did not announce its run folder in {path} within {timeout:.0f} s "
                       "(is the runs folder shared between the nodes? COURSEKIT_RUNS must be)")


def rank_dir(stem: str, key: str, rank: int) -> Path:
    """The scratch folder where rank `rank` > 0 executes the notebook (node-local temp space), under a
    folder of this user's own: a node's /tmp is shared by every user, and one fixed folder made by the
    first user's job refused every other student's multi-process job (found by the workshop test)."""
    base = Path(os.environ.get("SLURM_TMPDIR") or tempfile.gettempdir())
    mine = base / f"coursekit-ranks-{os.getuid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    folder = mine / f"{stem}-{key}" / f"rank{rank}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ----------------------------------------------------------------------------- in the notebook
def rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank (0 in a single-process run)."""
    return _int(os.environ if environ is None else environ, "RANK", 0) or 0


def world_size(environ: Mapping[str, str] | None = None) -> int:
    """How many processes train together (1 in a single-process run)."""
    return _int(os.environ if environ is None else environ, "WORLD_SIZE", 1) or 1


def describe(environ: Mapping[str, str] | None = None) -> str:
    """One line for the notebook: who am I, how many are we, where do we meet."""
    env = os.environ if environ is None else environ
    if world_size(env) < 2:
        return "1 process (no data parallelism)"
    return (f"rank {rank(env)} of {world_size(env)} (local rank {env.get('LOCAL_RANK', '?')} on "
            f"{os.uname().nodename}); rendezvous {env.get('MASTER_ADDR', '?')}:{env.get('MASTER_PORT', '?')}")


def stop_flag_all_ranks(flag: bool) -> bool:
    """True on every rank when it is True on any rank (an all-reduce of one number). Used by the
    preemption callback so that all ranks stop at the same step; without torch.distributed
    initialised, the flag itself."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return flag
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


# ----------------------------------------------------------------------------- TensorFlow workers
TF_PORT_BASE, TF_PORTS_PER_JOB, TF_JOB_SLOTS = 40000, 16, 1500   # 40000 + (job id % 1500) x 16


def tf_port_base(job_id: str | int | None) -> int:
    """The first port of a job's TensorFlow workers: 40000 + (job id % 1500) x 16, so that up to 16 tasks
    on a node (ports base .. base + 15) never meet another job's, nor torch's MASTER_PORT (20000-39999)."""
    if job_id is None or not str(job_id).strip().isdigit():
        return 8888   # SlurmClusterResolver's own default
    return TF_PORT_BASE + (int(job_id) % TF_JOB_SLOTS) * TF_PORTS_PER_JOB


def gpu_devices_present() -> bool:
    """Whether this node (or container: Apptainer binds the host's /dev) has an NVIDIA GPU device file. Slurm
    sets CUDA_VISIBLE_DEVICES from the gres it allocated, which on a cluster whose gres are placeholders (the
    kit's test cluster) names GPUs that do not exist."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def tf_slurm_resolver_args(environ: Mapping[str, str] | None = None, *, set_gpus: bool = True,
                           gpus_present: bool | None = None) -> dict:
    """Arguments for `tf.distribute.cluster_resolver.SlurmClusterResolver` in an srun step where every task
    is one TensorFlow worker (MultiWorkerMirroredStrategy).

    The resolver's defaults count GPUs with nvidia-smi (absent on a CPU node) and set CUDA_VISIBLE_DEVICES
    to indices 0, 1, ...; here instead:
      - every task sees all the node's GPUs (CUDA_VISIBLE_DEVICES lists at least as many as there are tasks
        on the node): this task keeps its own share, in the order Slurm listed them (set here when set_gpus);
      - Slurm gave each task its own GPU already, or there is no GPU (CPU workers): nothing is changed;
      - Slurm lists GPUs but the node has no GPU device (`gpus_present`, default: `gpu_devices_present()`): CPU
        workers, one replica each. Told of 2 GPUs per task, MultiWorkerMirroredStrategy builds 2 replicas per
        worker on devices that do not exist, and the workers' collectives wait for each other for ever.
    Several Slurm nodes that are all this one machine (the kit's two-node test cluster: one slurmd per node,
    each node named by a loopback address) are counted as one host: TensorFlow binds every worker to
    0.0.0.0:PORT, and the resolver gives the first task of every node the same port, so workers there need
    a port each (`tasks_per_node`). Real nodes (names that do not all resolve to loopback) are unchanged.
    Call it before TensorFlow touches a GPU (before any TensorFlow computation)."""
    env = os.environ if environ is None else environ
    from_step = re.match(r"(\d+)", env.get("SLURM_STEP_TASKS_PER_NODE") or "")
    tasks_here = int(from_step.group(1)) if from_step else (_tasks_on_this_node(env) or 1)
    local = _int(env, "SLURM_LOCALID", 0) or 0
    visible = [d.strip() for d in (env.get("CUDA_VISIBLE_DEVICES") or "").split(",")
               if d.strip() and d.strip() not in ("-1", "NoDevFiles")]
    if visible and not (gpu_devices_present() if gpus_present is None else gpus_present):
        visible = []   # placeholder gres: no GPU behind the ids
    args = {"port_base": tf_port_base(env.get("SLURM_JOB_ID")), "auto_set_gpu": False}
    if len(visible) >= tasks_here > 1 or (visible and tasks_here == 1):
        share = len(visible) // tasks_here
        mine = visible[local * share:(local + 1) * share]
        if set_gpus and environ is None:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
        args.update(gpus_per_node=tasks_here * share, gpus_per_task=share)
    else:
        args.update(gpus_per_node=tasks_here, gpus_per_task=1)
    nodes = hostnames(env.get("SLURM_STEP_NODELIST") or "")
    if len(nodes) > 1 and all(_is_loopback(n) for n in nodes):   # several nodes, one machine
        total = _int(env, "SLURM_STEP_NUM_TASKS") or _int(env, "SLURM_NTASKS") or len(nodes)
        args.update(tasks_per_node={nodes[0]: total}, gpus_per_node=total * args["gpus_per_task"])
    return args


def hostnames(nodelist: str) -> list[str]:
    """Every host of a Slurm node list, in order (`scontrol show hostnames`, else expanded here)."""
    if not nodelist.strip():
        return []
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             timeout=20)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()
    except (OSError, subprocess.SubprocessError):
        pass
    hosts = []
    for item in re.split(r",(?![^\[]*\])", nodelist.strip()):
        m = re.fullmatch(r"([^\[]*)\[([^\]]+)\](.*)", item)
        if not m:
            hosts.append(item)
            continue
        prefix, ranges, suffix = m.groups()
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            hosts += [f"{prefix}{str(i).zfill(len(lo))}{suffix}" for i in range(int(lo), int(hi or lo) + 1)]
    return hosts


def _is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback one (127.0.0.0/8, ::1)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
