"""What the tests on the real test Slurm share: a field of `scontrol show job`, and waiting for a condition."""
from __future__ import annotations

import subprocess
import time


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
