"""Wall-clock timing of the phases of a job (tokenize, fine-tune, evaluate, ...)."""
from __future__ import annotations

import datetime as _dt
import time
from contextlib import contextmanager
from typing import Callable, Iterator


def timestamp() -> str:
    """Now, as the run record writes it: local time with its UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def format_seconds(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min: readable in a log and on a slide."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextmanager
def stopwatch(sync: Callable[[], None] | None = None) -> Iterator[dict]:
    """Time a block: `with stopwatch() as t: ...` then `t["seconds"]`.

    GPU work is asynchronous: pass `sync` (e.g. torch.cuda.synchronize) so the time covers the
    work itself and not only its launch.
    """
    result = {"seconds": None}
    if sync:
        sync()
    start = time.perf_counter()
    try:
        yield result
    finally:
        if sync:
            sync()
        result["seconds"] = time.perf_counter() - start
