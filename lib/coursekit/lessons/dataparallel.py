"""Data parallelism in miniature (notebook 06, benchmarks/distributed.py): a tiny training run by
`python -m coursekit.lessons.dataparallel`, once per process, as srun starts one task per GPU.

Every process builds the same model (same seed) and the same data; at every step each process takes its
own slice of the global batch, computes the gradient of its slice, and the processes all-reduce (sum, then
divide by their number) the gradients, so every process makes the same update. With equal slices this is
exactly the gradient of the whole global batch: one process with the global batch and N processes with
1/N of it each must give the same gradients and the same losses (up to float rounding).

The script reads the variables torch.distributed reads (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT);
gloo is the CPU backend (NCCL on GPUs). Rank 0 writes the result (JSON) to --out.

    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 python -m coursekit.lessons.dataparallel --out r.json &
    RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 python -m coursekit.lessons.dataparallel --out r.json
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="optimizer steps")
    p.add_argument("--global-batch", type=int, default=64, help="examples per update, all processes together")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ddp", action="store_true",
                   help="DistributedDataParallel (bucketed all-reduce during backward) instead of the explicit loop")
    p.add_argument("--warmup", type=int, default=0, help="steps left out of the timing")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch
    import torch.distributed as dist

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)   # meets the others at MASTER_ADDR:PORT
    if args.global_batch % world:
        raise SystemExit(f"global batch {args.global_batch} is not divisible by {world} processes")
    local_batch = args.global_batch // world

    torch.manual_seed(args.seed)                                       # the same data and weights everywhere
    x = torch.randn(args.steps * args.global_batch, args.features)
    teacher = torch.randn(args.features, args.classes)
    y = (x @ teacher).argmax(dim=1)
    model = torch.nn.Sequential(torch.nn.Linear(args.features, args.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(args.hidden, args.classes))
    net = torch.nn.parallel.DistributedDataParallel(model) if args.ddp and world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()                              # the mean over this process's slice

    losses, step_s, first_grad = [], [], None
    for step in range(args.steps):
        t0 = time.perf_counter()
        start = step * args.global_batch + rank * local_batch          # this process's slice of the global batch
        xb, yb = x[start:start + local_batch], y[start:start + local_batch]
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        if world > 1 and not args.ddp:
            for param in model.parameters():                           # the gradient all-reduce
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= world                                    # the mean over the global batch
        opt.step()
        if first_grad is None:
            first_grad = torch.cat([q.grad.flatten() for q in model.parameters()]).tolist()
        global_loss = loss.detach().clone()
        if world > 1:                                                  # for the record: the global batch's loss
            dist.all_reduce(global_loss, op=dist.ReduceOp.SUM)
            global_loss /= world
        losses.append(float(global_loss))
        step_s.append(time.perf_counter() - t0)

    if rank == 0:
        timed = sorted(step_s[args.warmup:]) or sorted(step_s)
        result = {"world_size": world, "global_batch": args.global_batch, "local_batch": local_batch,
                  "steps": args.steps, "ddp": bool(args.ddp and world > 1), "threads": torch.get_num_threads(),
                  "parameters": sum(q.numel() for q in model.parameters()),
                  "losses": losses, "first_grad": first_grad, "step_s": step_s,
                  "median_step_s": timed[len(timed) // 2], "torch": torch.__version__}
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    if world > 1:
        dist.destroy_process_group()
    return 0


def free_port() -> int:
    """A TCP port nobody listens on now (for a rendezvous on this machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, out: str | Path, args: list[str] = (), threads: int | None = None,
           timeout: float = 600) -> dict:
    """Start `processes` copies of the script on this machine, as srun starts one per task, and return
    rank 0's result. threads: torch threads per process (OMP_NUM_THREADS)."""
    port = free_port()
    procs = []
    for rank in range(processes):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(processes), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        procs.append(subprocess.Popen([sys.executable, "-m", "coursekit.lessons.dataparallel", *args,
                                       "--out", str(out)], env=env))
    codes = [p.wait(timeout=timeout) for p in procs]
    if any(codes):
        raise RuntimeError(f"exit statuses {codes}")
    return json.loads(Path(out).read_text(encoding="utf-8"))


def expected_speedup(gpus: int, compute_s: float, gradient_bytes: float, bandwidth_bytes_s: float,
                     hidden_share: float = 0.0) -> float:
    """A paper estimate of the speed-up of data parallelism with the per-GPU batch kept (weak scaling):
    each step costs the compute of one GPU plus a ring all-reduce of the gradients, which moves
    2 (N - 1) / N x gradient_bytes through each GPU's link; `hidden_share` of it overlaps the backward
    pass (DDP's buckets). Not a measurement: the assumptions are its arguments."""
    if gpus < 2:
        return 1.0
    comm = 2 * (gpus - 1) / gpus * gradient_bytes / bandwidth_bytes_s
    return gpus * compute_s / (compute_s + (1 - hidden_share) * comm)


if __name__ == "__main__":
    sys.exit(main())
