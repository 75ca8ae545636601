"""The notebook runner: execute a notebook headlessly with papermill into its own run folder.

    python -m coursekit run notebooks/00_gpu_check.ipynb --profile tiny -p matmul_size 256

writes runs/<stem>/<SLURM_JOB_ID or timestamp>/ with the executed notebook, an HTML export and the
notebook's metrics.json (plus a "runner" section: status, error, times, output files).
Parameters are resolved once, here (the cell's literals <- the profile file <- -p), and checked
before anything runs; see `params`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..contracts import MAIN_RUN_DIR_ENV, METRICS_FILE, RUN_DIR_ENV
from . import params as params_mod
from . import distributed, preemption, runs, threads, utilisation
from .params import ParameterError
from .record import new_record, read_metrics, read_warnings, write_json
from .runs import RunFolderError
from .timing import format_seconds, timestamp

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# how a run ended, for the student's closing line (metrics.json keeps the English status)
STATUS_JA = {"completed": "完了しました", "failed": "失敗しました", "killed": "強制終了されました",
             "preempted": "中断しました(再投入で続きから)"}


@dataclass
class RunResult:
    run_dir: Path
    notebook: Path
    html: Path | None
    metrics: dict
    ok: bool
    error: str | None = None


class JobKilled(Exception):
    """Raised in the runner when the job is sent SIGTERM (scancel, time limit)."""


def export_html(executed: Path) -> Path:
    """Export an executed notebook to HTML beside it (nbconvert)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _record_outcome(run_dir: Path, notebook: Path, profile: str | None, params: dict,
                    runner: dict, extra: dict | None = None) -> dict:
    """Merge the runner's outcome into metrics.json (creating it when the notebook never did)."""
    try:
        data = read_metrics(run_dir)
    except (OSError, ValueError):   # the notebook never started its record, or it is damaged
        data = new_record(notebook.stem, profile, params)
    data["status"] = runner["status"]
    data["runner"] = runner
    data.update(extra or {})
    warnings = read_warnings(run_dir)
    if warnings:
        data["warnings"] = warnings
    write_json(run_dir / METRICS_FILE, data)
    return data


def _exit_recording_kernel_manager(socket_dir: str, job: dict):
    """A kernel manager class that remembers how the kernel process ended (its exit code; negative:
    the signal that killed it), so a dead kernel can be told apart from an out-of-memory kill.
    It shuts the kernel down without interrupting it first, unless the job was signalled to stop
    (`job["signal"]`, set by _job_context on SIGTERM or Ctrl-C): jupyter_client sends SIGINT before every shutdown, and
    a kernel that has finished its last cell but is still answering a message then writes
    "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." into the log of a run that went well
    (seen after notebook 02's TensorFlow runs). A kernel busy in a cell still gets the interrupt.
    The kernel talks over Unix sockets in `socket_dir` (a private folder), not TCP ports on 127.0.0.1:
    jupyter_client picks a free port, releases it and the kernel binds it later, so kernels starting at
    once on one node (several students' jobs, a sweep's tasks) could take the same port and die with
    "Address already in use" (seen in the workshop test)."""
    from jupyter_client import AsyncKernelManager

    seen: dict[str, int] = {}

    class ExitRecordingKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(socket_dir, "kernel"))
            super().__init__(**kwargs)

        async def _async_is_alive(self) -> bool:
            if self.owns_kernel and self.has_kernel and self.provisioner is not None:
                code = await self.provisioner.poll()
                if code is not None and "exit" not in seen:
                    seen["exit"] = code
            return await super()._async_is_alive()

        is_alive = _async_is_alive

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down and "signal" not in job:
                return   # the notebook ended (completed or a failing cell): the kernel is idle
            await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

    return ExitRecordingKernelManager, seen


def dead_kernel_reason(exit_code: int | None) -> str:
    """'kernel died (killed by SIGKILL, exit -9: likely out of memory)' and the like."""
    if exit_code is None:
        return ("kernel died (exit status unknown; a SIGKILL from the out-of-memory killer looks like this) / "
                "カーネルが止まりました(終了の理由は不明。メモリ不足で強制終了されたときもこう見えます)")
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        oom = ": likely out of memory (the kernel's memory use hit the job's limit)" \
            if -exit_code == signal.SIGKILL else ""
        oom_ja = "。メモリ不足の可能性が高いです(ジョブのメモリの上限に達しました。--mem を増やすか、" \
            "batch_size などを小さくしてください)" if -exit_code == signal.SIGKILL else ""
        return f"kernel died (killed by {name}, exit {exit_code}){oom} / カーネルが {name} で止まりました{oom_ja}"
    return f"kernel died (exit {exit_code}) / カーネルが止まりました(終了コード {exit_code})"


def _mark_dead_cell(out_nb: Path, reason: str) -> None:
    """In the executed notebook, show the error on the cell that was running when the kernel died, and
    mark the notebook as failed (as papermill does for a failing cell), so its HTML says so."""
    import nbformat

    try:
        nb = nbformat.read(str(out_nb), as_version=4)
    except Exception:
        return
    started = [c for c in nb.cells if c.cell_type == "code"   # papermill marks even the killed cell
               and c.metadata.get("papermill", {}).get("start_time")]  # "completed"; later ones never started
    cell = started[-1] if started else None
    if cell is not None:
        cell.outputs.append(nbformat.v4.new_output(
            "error", ename="DeadKernelError", evalue=reason,
            traceback=[f"DeadKernelError: {reason}", "The notebook stopped here; later cells did not run. / "
                       "ノートブックはここで止まり、これより後のセルは実行されていません。"]))
        cell.metadata["papermill"]["status"] = "failed"
    nb.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(nb, str(out_nb))


def _run_folder(notebook: Path, root: Path | None, name: str | None) -> tuple[Path, int]:
    """A new run folder, or the earlier attempt's folder when Slurm requeued this job."""
    attempt = runs.restart_count() + 1
    run_dir = None if name else runs.resume_run_dir(notebook.stem, root)
    if run_dir is not None:  # a requeued job: continue where its checkpoints are
        _archive_attempt(run_dir, notebook, attempt - 1)
        return run_dir, attempt
    return runs.new_run_dir(notebook.stem, root, name), attempt


@contextmanager
def _job_context(run_dir: Path, say) -> Iterator[dict]:
    """While the notebook runs: SIGTERM ends it as "killed"; Slurm's warning signal (USR1, passed
    on by sbatch/run-notebook.sh) asks it to checkpoint and stop; the kernel inherits
    COURSEKIT_RUN_DIR (where `record.open_run` and `preemption` look). Yields the job's state:
    {"signal": N} once SIGTERM (or Ctrl-C) arrived."""
    job: dict = {}

    def on_term(signum, frame):
        job["signal"] = signum
        raise JobKilled(f"received signal {signum} (job cancelled or out of time) / "
                        f"シグナル {signum} を受けました(ジョブの取り消し scancel か、時間切れ)")

    def on_warning(signum, frame):
        say(f"\ncoursekit run: warning signal {signum}: asking the notebook to checkpoint and stop / "
            "終了予告のシグナルを受けました。チェックポイントを保存して止めます")
        preemption.request_stop(run_dir, f"signal {signum}")

    def on_interrupt(signum, frame):   # Ctrl-C on the login node: as Python's own handler, noted
        job["signal"] = signum
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, on_term) if main else None
    old_usr1 = signal.signal(signal.SIGUSR1, on_warning) if main else None
    ctrl_c = main and signal.getsignal(signal.SIGINT) is signal.default_int_handler   # not when ignored
    old_int = signal.signal(signal.SIGINT, on_interrupt) if ctrl_c else None
    with kernel_env({RUN_DIR_ENV: str(run_dir)}):
        try:
            yield job
        finally:
            if main:
                signal.signal(signal.SIGTERM, old_term)
                signal.signal(signal.SIGUSR1, old_usr1)
            if ctrl_c:
                signal.signal(signal.SIGINT, old_int)


@contextmanager
def kernel_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel started inside (the run folder, the job's thread
    counts, the ranks of a data-parallel run); restore them afterwards."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute(notebook: Path, out_nb: Path, values: dict, kernel: str, quiet: bool,
             say, job: dict) -> tuple[str, str | None]:
    """Run the notebook with papermill; return (status, error) without raising for a failing cell."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    socket_dir = tempfile.mkdtemp(prefix="coursekit-kernel-")   # 0700: this user's kernel only
    manager_class, kernel_exit = _exit_recording_kernel_manager(socket_dir, job)
    try:
        papermill.execute_notebook(
            str(notebook), str(out_nb), parameters=values, kernel_name=kernel,
            progress_bar=not quiet and ({} if sys.stderr.isatty() else {"ascii": True, "ncols": 80}),
            stdout_file=None if quiet else sys.stdout, stderr_file=None if quiet else sys.stderr,
            kernel_manager_class=manager_class,
        )
    except DeadKernelError:
        reason = dead_kernel_reason(kernel_exit.get("exit"))
        say(f"\nFAILED / 失敗: {reason}")
        if out_nb.exists():
            _mark_dead_cell(out_nb, reason)
        return "failed", reason
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        if exc.ename == preemption.Preempted.__name__:
            say(f"\nPREEMPTED: checkpoint saved ({exc.evalue}); the job can be requeued / "
                "中断: チェックポイントを保存しました。ジョブを再投入すると続きから再開します")
            return "preempted", error
        trace = ANSI.sub("", "\n".join(exc.traceback or []))
        say(f"\nFAILED in {error} / セル {exc.exec_count} でエラーになりました\n{trace}")
        return "failed", error
    except (JobKilled, KeyboardInterrupt) as exc:
        error = str(exc) or "interrupted / 中断されました"
        say(f"\nKILLED / 強制終了: {error}")
        return "killed", error
    except Exception as exc:  # the kernel could not start, a timeout, ...: still an outcome on record
        error = f"{type(exc).__name__}: {exc}"
        say(f"\nFAILED / 失敗: {error}")
        return "failed", error
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    return "completed", None


def _export(out_nb: Path, html: bool, say) -> Path | None:
    if not (html and out_nb.exists()):
        return None
    try:
        return export_html(out_nb)
    except Exception as exc:  # an export problem must not hide the run's own outcome
        say(f"warning: HTML export failed / HTML に書き出せませんでした: {type(exc).__name__}: {exc}")
        return None


def _sayer(quiet: bool):
    """The runner's job-log lines go to stderr (stdout is the notebook's own output), or nowhere."""
    return (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))


def run_notebook(notebook: str | Path, profile: str | None = None,
                 parameters: list[tuple[str, str]] | dict[str, Any] | None = None, *,
                 runs_dir: str | Path | None = None, name: str | None = None,
                 kernel: str = "python3", html: bool = True, quiet: bool = False) -> RunResult:
    """Execute `notebook` with papermill into a new run folder; never raises for a failing cell
    (the result says ok=False and carries the error), raises ParameterError for bad parameters."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook} / ノートブックが見つかりません")
    values = params_mod.resolve(notebook, profile, parameters)
    if name is not None:
        runs.check_name(name)
    root = Path(runs_dir).expanduser().resolve() if runs_dir else None
    launch = distributed.plan()   # one of several processes started by srun (or torchrun)?
    if launch and launch["rank"] > 0:
        return _run_other_rank(notebook, values, root, launch, kernel, quiet)
    run_dir, attempt = _run_folder(notebook, root, name)
    dist_env: dict[str, str] = {}
    if launch:  # rank 0: the run; tell the other ranks where it is, give the kernel torch's variables
        pointer = distributed.announce_run_dir(run_dir.parent, distributed.launch_key(launch), run_dir)
        dist_env = {**launch["env"], MAIN_RUN_DIR_ENV: str(run_dir)}
    out_nb = run_dir / notebook.name
    write_json(run_dir / METRICS_FILE, new_record(notebook.stem, values["profile"], values))

    say = _sayer(quiet)
    say(f"coursekit run: {notebook} (profile {values['profile']}) -> {run_dir}")
    started, t0 = timestamp(), time.perf_counter()
    if launch:
        say(f"coursekit run: rank 0 of {launch['world_size']} ({launch['source']}); rendezvous "
            f"{launch['master_addr']}:{launch['master_port']}; the other ranks run in scratch folders")
    thread_info = threads.plan()   # OMP/MKL/TF threads = the job's CPUs
    say(f"coursekit run: {threads.log_line(thread_info)}")
    with _job_context(run_dir, say) as job, kernel_env({**threads.kernel_values(thread_info), **dist_env}), \
            utilisation.Sampler() as sampler:  # GPU/CPU use sampled
        status, error = _execute(notebook, out_nb, values, kernel, quiet, say, job)
    duration = time.perf_counter() - t0
    if launch:
        pointer.unlink(missing_ok=True)
    html_path = _export(out_nb, html, say)
    runner = {
        "status": status, "error": error, "started": started, "finished": timestamp(),
        "duration_s": round(duration, 3), "source": str(notebook.resolve()),
        "output_notebook": out_nb.name, "html": html_path.name if html_path else None,
        "kernel": kernel, "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "attempt": attempt, "threads": thread_info,
        "processes": launch["world_size"] if launch else 1,
        "distributed": {k: launch[k] for k in ("world_size", "local_world_size", "master_addr",
                                                "master_port", "source")} if launch else None,
    }
    data = _record_outcome(run_dir, notebook, values["profile"], values, runner,
                           {"utilisation": sampler.summary()})
    warned = len(data.get("warnings") or [])
    say(f"coursekit run: {status} in {format_seconds(duration)}"
        + (f"; {warned} data warning(s), see \"warnings\" in {METRICS_FILE}" if warned else "")
        + f"; results in {run_dir} / {STATUS_JA.get(status, status)}({format_seconds(duration)})"
        + (f"。データの警告 {warned} 件" if warned else "") + f"。結果: {run_dir}")
    return RunResult(run_dir, out_nb, html_path, data, status == "completed", error)


def _run_other_rank(notebook: Path, values: dict, root: Path | None, launch: dict, kernel: str,
                    quiet: bool) -> RunResult:
    """Rank > 0 of a data-parallel launch: execute the same notebook into a scratch folder (nothing in
    the runs folder: rank 0 records the run); the kernel learns rank 0's run folder, where the shared
    checkpoints are, from COURSEKIT_MAIN_RUN_DIR."""
    say = _sayer(quiet)
    key = distributed.launch_key(launch)
    parent = (root or runs.runs_root()) / runs.check_name(notebook.stem, "notebook name")
    parent.mkdir(parents=True, exist_ok=True)
    main_dir = distributed.wait_for_run_dir(parent, key, time.time())
    scratch = distributed.rank_dir(notebook.stem, key, launch["rank"])
    for leftover in (scratch / METRICS_FILE, scratch / preemption.PREEMPT_FILE):
        leftover.unlink(missing_ok=True)
    write_json(scratch / METRICS_FILE, new_record(notebook.stem, values["profile"], values))
    say(f"coursekit run: rank {launch['rank']} of {launch['world_size']}: {notebook} in scratch folder "
        f"{scratch} (rank 0 records the run in {main_dir})")
    out_nb = scratch / notebook.name
    t0 = time.perf_counter()
    env = {**threads.kernel_values(threads.plan()), **launch["env"], MAIN_RUN_DIR_ENV: str(main_dir)}
    with _job_context(scratch, say) as job, kernel_env(env):
        status, error = _execute(notebook, out_nb, values, kernel, quiet, say, job)
    took = format_seconds(time.perf_counter() - t0)
    say(f"coursekit run: rank {launch['rank']}: {status} in {took} / {STATUS_JA.get(status, status)}({took})")
    if status == "completed":  # rank 0's run folder has the record; a failed rank's notebook stays to be read
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            scratch.parent.rmdir()  # the launch's folder, once every rank on this node has removed its own
        say(f"coursekit run: rank {launch['rank']}: scratch folder removed / 作業用フォルダを削除しました")
    data = {"status": status, "rank": launch["rank"], "error": error}
    return RunResult(scratch, out_nb, None, data, status == "completed", error)


def _archive_attempt(run_dir: Path, notebook: Path, attempt: int) -> None:
    """Keep an earlier attempt's notebook, HTML and metrics as <name>.attempt<N><suffix>."""
    for path in (run_dir / notebook.name, run_dir / notebook.with_suffix(".html").name,
                 run_dir / METRICS_FILE):
        if path.exists():
            path.rename(path.with_name(f"{path.stem}.attempt{attempt}{path.suffix}"))
    preemption.clear_stop(run_dir)


class UsageError(ValueError):
    """A command line the runner refuses (argparse's message), raised instead of exiting."""


class CommandParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting (the kit's commands share it)."""

    def error(self, message):  # argparse would print and exit; `submit` needs the message itself
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line (`python -m coursekit run`); `submit` checks a job's arguments with it."""
    parser = CommandParser(
        prog="python -m coursekit run", allow_abbrev=False,
        description="Execute a notebook with papermill into runs/<notebook>/<job id or time>/.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", default=None,
                        help="full: the values in the notebook's parameters cell (the cluster run); "
                             "tiny: <notebook>.tiny.yaml beside it, a CPU run in minutes (default: full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="set a notebook parameter (repeatable)")
    parser.add_argument("--runs-dir", type=Path, help="where run folders go (default: $COURSEKIT_RUNS or ./runs)")
    parser.add_argument("--name", help="run folder name (default: $SLURM_JOB_ID or a timestamp)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")
    return parser


def check_command_line(argv: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """What the runner would do with `argv` up to the start of the run: parse it, find the notebook (relative
    to `cwd`), resolve and check the parameters. Returns the values; raises UsageError, FileNotFoundError,
    ParameterError or RunFolderError with the message the runner would print."""
    args = build_parser().parse_args(argv)
    notebook = args.notebook if args.notebook.is_absolute() or cwd is None else Path(cwd) / args.notebook
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {args.notebook} / ノートブックが見つかりません")
    if args.name is not None:
        runs.check_name(args.name)
    return params_mod.resolve(notebook, args.profile, args.parameter)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result = run_notebook(args.notebook, args.profile, args.parameter, runs_dir=args.runs_dir,
                              name=args.name, kernel=args.kernel, html=not args.no_html)
    except (UsageError, ParameterError, RunFolderError, FileNotFoundError) as exc:
        print(f"coursekit run: error: {exc}", file=sys.stderr)
        return 2
    print(result.run_dir)
    if result.metrics.get("status") == "preempted":
        # ranks > 0 end with 0: rank 0's 75 (srun passes on the highest status) asks for the requeue
        return 0 if result.metrics.get("rank") else preemption.EX_PREEMPTED
    return 0 if result.ok else 1
