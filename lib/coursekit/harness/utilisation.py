"""How busy the GPUs (or CPUs) were while a notebook ran: sampled by the runner, kept in metrics.json.

The original hands-on answered "is my job using the GPU?" by watching `nvidia-smi` in a second
terminal. The runner does the same in a background thread: every `interval_s` seconds it reads each
visible GPU's utilisation and memory through NVML (nvidia-ml-py, the library nvidia-smi uses), or,
without a GPU, the CPU use of the run's own processes (the runner, its kernel and their children:
psutil) as a share of the CPUs the job was given. metrics.json gets a summary:

    "utilisation": {"kind": "gpu", "interval_s": 2.0, "samples": 412,
                    "devices": [{"index": 0, "name": "NVIDIA A100", "util_mean": 87.1, "util_max": 100,
                                 "mem_mean_mib": 30211, "mem_max_mib": 30544, "mem_total_mib": 40960}],
                    "util_mean": 87.1, "idle": false}

`idle` is true when the mean utilisation stayed below IDLE_BELOW percent: the GPUs sat mostly idle
(input pipeline, a single device used of several, CPU-bound preprocessing, waiting on disk).
COURSEKIT_SAMPLE_S sets the interval (0 turns sampling off). On a node with several GPUs, the
devices this process can see are sampled (CUDA_VISIBLE_DEVICES; Slurm's cgroup hides the others); in
a multi-node job rank 0 samples its own node.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

IDLE_BELOW = 30.0        # percent: a mean below this flags the run as "mostly idle"
DEFAULT_INTERVAL_S = 2.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("COURSEKIT_SAMPLE_S", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class _Nvml:
    """The visible GPUs through NVML; raises when there is no NVML or no GPU."""

    def __init__(self):
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        count = pynvml.nvmlDeviceGetCount()
        if count < 1:
            raise RuntimeError("no GPU")
        wanted = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        handles = []
        for i in range(count):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            if not wanted or str(i) in wanted or uuid in wanted or any(uuid.startswith(w) for w in wanted
                                                                         if w.startswith("GPU-")):
                name = pynvml.nvmlDeviceGetName(h)
                handles.append((i, name.decode() if isinstance(name, bytes) else name, h))
        if not handles:
            raise RuntimeError("no visible GPU")
        self.handles = handles

    def sample(self) -> list[tuple[float, float, float]]:
        out = []
        for _, _, h in self.handles:
            util = self.nv.nvmlDeviceGetUtilizationRates(h).gpu
            mem = self.nv.nvmlDeviceGetMemoryInfo(h)
            out.append((float(util), mem.used / 2**20, mem.total / 2**20))
        return out

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:
            pass


class _Cpu:
    """CPU use of this process and its children (the kernel), as % of the job's CPUs."""

    def __init__(self):
        import psutil

        from .threads import allocated

        self.ps = psutil
        self.me = psutil.Process()
        self.cpus = allocated()[0]
        self.last = (time.monotonic(), self._cpu_seconds())

    def _cpu_seconds(self) -> float:
        total = 0.0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except (self.ps.NoSuchProcess, self.ps.AccessDenied):
                continue
        return total

    def sample(self) -> list[tuple[float, float, float]]:
        now, cpu = time.monotonic(), self._cpu_seconds()
        (t0, c0), self.last = self.last, (now, cpu)
        # a child that ended takes its CPU seconds with it: never report a negative share
        share = max(0.0, (cpu - c0) / max(1e-6, now - t0) / self.cpus * 100.0)
        rss = 0.0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                rss += proc.memory_info().rss / 2**20
            except (self.ps.NoSuchProcess, self.ps.AccessDenied):
                continue
        total = self.ps.virtual_memory().total / 2**20
        return [(min(100.0, share), rss, total)]

    def close(self) -> None:
        pass


class Sampler:
    """A background thread sampling utilisation until the `with` block ends; `summary()` after."""

    def __init__(self, interval_s: float | None = None):
        self.interval = _interval() if interval_s is None else interval_s
        self.kind, self.names, self.indices = None, [], []
        self.rows: list[list[tuple[float, float, float]]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source = None

    def _open(self):
        try:
            source = _Nvml()
            self.kind = "gpu"
            self.indices = [i for i, _, _ in source.handles]
            self.names = [n for _, n, _ in source.handles]
            return source
        except Exception:
            pass
        try:
            source = _Cpu()
            self.kind, self.indices, self.names = "cpu", [0], [f"{source.cpus} CPU(s) of the job"]
            return source
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.rows.append(self._source.sample())
            except Exception as exc:  # a sampling problem never disturbs the run
                self.error = f"{type(exc).__name__}: {exc}"
                return

    def __enter__(self) -> "Sampler":
        if self.interval > 0:
            self._source = self._open()
            if self._source is not None:
                self._thread = threading.Thread(target=self._loop, name="coursekit-utilisation", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._source is not None:
            self._source.close()

    def summary(self) -> dict[str, Any]:
        return summarise(self.kind, self.interval, self.indices, self.names, self.rows, self.error)


def summarise(kind, interval, indices, names, rows, error=None) -> dict[str, Any]:
    """The metrics.json entry from raw samples (rows: one list per sample, (util %, mem MiB, total MiB)
    per device)."""
    if not kind or not rows:
        return {"kind": kind, "interval_s": interval, "samples": 0, "devices": [], "util_mean": None,
                "idle": None, **({"error": error} if error else {})}
    devices = []
    for d, (index, name) in enumerate(zip(indices, names)):
        util = [r[d][0] for r in rows if len(r) > d]
        mem = [r[d][1] for r in rows if len(r) > d]
        devices.append({"index": index, "name": name, "util_mean": round(sum(util) / len(util), 1),
                        "util_max": round(max(util), 1), "mem_mean_mib": round(sum(mem) / len(mem)),
                        "mem_max_mib": round(max(mem)), "mem_total_mib": round(rows[-1][d][2])})
    mean = round(sum(dev["util_mean"] for dev in devices) / len(devices), 1)
    out = {"kind": kind, "interval_s": interval, "samples": len(rows), "devices": devices,
           "util_mean": mean, "idle": mean < IDLE_BELOW}
    if error:
        out["error"] = error
    return out


def describe(summary: dict | None) -> str:
    """'GPU 0 87% (max 100%), GPU 1 85% ...' for logs and tables; '' without samples."""
    if not summary or not summary.get("samples"):
        return ""
    label = "GPU" if summary.get("kind") == "gpu" else "CPU"
    parts = [f"{label} {d['index']} {d['util_mean']:.0f}%" if summary["kind"] == "gpu" else f"CPU {d['util_mean']:.0f}%"
             for d in summary["devices"]]
    return ", ".join(parts) + (" (mostly idle)" if summary.get("idle") else "")
