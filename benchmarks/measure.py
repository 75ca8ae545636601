"""What every benchmark script of the kit shares: alternated repeated timings and honest results files.

    from measure import Results, alternate

    res = Results("livedoor")                                 # machine, command line, commit, load at start
    times = alternate({"kit": run_kit, "plain": run_plain}, rounds=5, warmup=1)
    res.add("fine_tune", times)                               # median / min / max / all runs per variant
    res.write(markdown_lines)                                 # results/livedoor.json + results/livedoor.md

`alternate` runs the variants A B A B ... (a warm-up round first, not counted), so a slow minute on the
machine hits every variant alike; figures are the median of the rounds, with min and max beside it.
The load average is recorded at the start and at the end: on 2 cores a second busy process slows a
training loop several times over (a tiny BART epoch: 2.4 minutes alone, 16.7 beside another busy process;
lib/coursekit/harness/threads.py), so benchmarks are run alone, and a load above `BUSY_LOAD` at the start
is printed as a warning and written into the results file.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUSY_LOAD = 1.0  # 1-minute load average above which the machine was not idle at the start


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def summary(seconds: list[float]) -> dict:
    """Median, min and max of repeated timings (the median is the figure a results file quotes)."""
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "runs": len(seconds), "all_s": [round(s, 3) for s in seconds]}


def alternate(variants: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1,
              log: Callable[[str], None] = print) -> dict[str, dict]:
    """Time each variant `rounds` times, alternating A B A B ..., after `warmup` untimed rounds.
    A variant may return a dict of extra figures of that run (kept under "extra", one per round)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    times: dict[str, list[float]] = {name: [] for name in variants}
    extra: dict[str, list] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - t0
            counted = r >= warmup
            log(f"  {'round ' + str(r - warmup + 1) if counted else 'warm-up'}: {name} {seconds:.2f} s")
            if counted:
                times[name].append(seconds)
                if isinstance(out, dict):
                    extra[name].append(out)
    return {name: {**summary(times[name]), **({"extra": extra[name]} if extra[name] else {})}
            for name in variants}


def commit(*paths: str) -> str:
    """The kit's commit (short hash), with "+changes" when tracked files differ from it: any file, or
    only those under `paths` (e.g. "notebooks", "lib"); "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 and out.stdout.strip() \
            else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """How the script was started, relative to the kit (no machine paths in committed files)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        script = Path(script.name)
    return " ".join(["python", str(script), *(shlex.quote(portable(a)) for a in sys.argv[1:])])


def portable(value):
    """Paths of this machine written so they mean something elsewhere (no machine paths in committed
    files): the kit's own files relative to the kit, ../shared/... for the shared data beside it,
    <tmp>/... for scratch files; in strings, lists and dicts (a whole metrics.json)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        for prefix, label in ((str(ROOT) + "/", ""), (str(ROOT), "."), (str(ROOT.parent) + "/", "../"),
                              (tempfile.gettempdir() + "/", "<tmp>/")):
            value = value.replace(prefix, label)
    return value


def copy_portable(source: Path, dest: Path) -> None:
    """A run's metrics.json copied into benchmarks/results with its paths made portable."""
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    Path(dest).write_text(json.dumps(portable(data), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


class Results:
    """One benchmark's results file: benchmarks/results/<name>.json and <name>.md (or under `out`)."""

    def __init__(self, name: str, out: Path | None = None, keep: bool = False):
        """keep: figures of an earlier run in the same results file that this run does not measure
        again stay (a script run with --only); each figure names the run that measured it."""
        self.name, self.out = name, Path(out or RESULTS)
        start = load_average()
        self.data: dict = {
            "benchmark": name, "command": command_line(), "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {"system": platform.system(), "machine": platform.machine(),
                        "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                        "python": platform.python_version()},
            "load_average_start": start, "figures": {}, "measured_by": {}}
        earlier = self.out / f"{name}.json"
        if keep and earlier.is_file():
            old = json.loads(earlier.read_text(encoding="utf-8"))
            for key, value in old.get("figures", {}).items():
                self.data["figures"][key] = value
                by = old.get("measured_by", {}).get(key)
                # "this run" in the earlier file means that file's run, which is an earlier one here
                self.data["measured_by"][key] = by if isinstance(by, dict) else self._run(old)
        if start[0] > BUSY_LOAD:
            print(f"warning: load average {start[0]} at the start: the machine is not idle; "
                  "run benchmarks alone", file=sys.stderr)

    @staticmethod
    def _run(d: dict) -> dict:
        return {k: d.get(k) for k in ("command", "commit", "date", "load_average_start", "load_average_end")}

    def add(self, key: str, value) -> None:
        self.data["figures"][key] = value
        self.data["measured_by"][key] = "this run"

    def alone(self) -> bool:
        """True when the 1-minute load averages say nothing else was running: at the start no more than the
        cores (a benchmark that just ended still shows for a minute or two), and at the end no more than the
        benchmark's own threads (one per core) plus 0.5; a second busy process adds about 2 on these machines."""
        cores = self.data["machine"]["affinity"] or 1
        return (self.data["load_average_start"][0] <= cores
                and self.data.get("load_average_end", [0])[0] <= cores + 0.5)

    def header(self, title: str) -> list[str]:
        d = self.data
        idle = ("nothing else ran (load average at the start "
                f"{d['load_average_start'][0]}, at the end {d['load_average_end'][0]}, 1-minute)") if self.alone() \
            else (f"**the machine was busy** (load average at the start {d['load_average_start']}, at the end "
                  f"{d['load_average_end']}): figures are upper bounds")
        m = d["machine"]
        earlier = [f"- {key}: `{r['command']}` at commit {r['commit']}, {r['date']}, load average at the start "
                   f"{r['load_average_start']}, at the end {r['load_average_end']}"
                   for key, r in d["measured_by"].items() if r != "this run"]
        if earlier:
            earlier = ["Figures kept from an earlier run of the script:", *earlier, ""]
        return [f"# {title}", "",
                f"`{d['command']}` at commit {d['commit']}, {d['date']}; {m['cpu_count']} CPU cores "
                f"({m['affinity']} usable), {m['machine']}, Python {m['python']}; {idle}.",
                "Each time is the median of the timed rounds (variants alternated A B A B ... after a warm-up "
                "round), with min and max.", "", *earlier]

    @classmethod
    def rewrite(cls, name: str, markdown: Callable[["Results"], list[str]], out: Path | None = None) -> Path:
        """Write <name>.md again from <name>.json (after a change of the Markdown, no new measurement)."""
        res = cls.__new__(cls)
        res.name, res.out = name, Path(out or RESULTS)
        res.data = json.loads((res.out / f"{name}.json").read_text(encoding="utf-8"))
        md = res.out / f"{name}.md"
        md.write_text("\n".join(markdown(res)) + "\n", encoding="utf-8")
        return md

    def write(self, markdown: Callable[["Results"], list[str]]) -> tuple[Path, Path]:
        self.data["load_average_end"] = load_average()
        self.out.mkdir(parents=True, exist_ok=True)
        js, md = self.out / f"{self.name}.json", self.out / f"{self.name}.md"
        self.data = portable(json.loads(json.dumps(self.data, default=float)))
        js.write_text(json.dumps(self.data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        md.write_text("\n".join(markdown(self)) + "\n", encoding="utf-8")
        print(f"written {js} and {md.name}")
        return js, md


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
