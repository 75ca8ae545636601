"""Slurm: `python -m coursekit submit` (sbatch with the preflight students forget) and the lab's site
settings (sbatch/site.env).

    python -m coursekit submit sbatch/livedoor.sbatch --profile tiny -p epochs 3
    python -m coursekit submit sbatch/sweep.sbatch notebooks/02_livedoor_bert.ipynb -g learning_rate 1e-4,5e-4

submit: reads the site file ($COURSEKIT_SITE: partition, account, reservation, QOS, GPU type, shared folder),
shows what it will use and refuses a partition or GPU type that `sinfo` does not list; checks the job's
arguments with the runner's own parser and parameter resolution (what the job would refuse, submit refuses,
with the same message); creates the folders of the script's --output/--error files (a missing logs/ folder
makes Slurm drop the job's output without a word); checks that the container exists (CONTAINER, else the
script's image in the shared folder or defs/); sets --array for sweeps; runs sbatch and prints the job id
with the squeue / tail -f / scancel commands for it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import runner, sweep, workcopy
from .params import ParameterError
from .runs import RunFolderError, project_root

SBATCH_LINE = re.compile(r"^#SBATCH\s+(--?[\w-]+)(?:[=\s]+(\S+))?")
SCRIPT_IMAGE = re.compile(r'^IMAGE=([\w.-]+)\s*(?:#.*)?$', re.M)
SCRIPT_COMMAND = re.compile(r'\bCOMMAND=(\w+)\s')
SITE_VAR = "COURSEKIT_SITE"
SHARED_VAR = "COURSEKIT_SHARED"
GPU_TYPE_VAR = "COURSEKIT_GPU_TYPE"
DEFAULT_IMAGE = "transformers"
# what the site file may set, as (what, sbatch's own input variable)
SITE_SLURM = (("partition", "SBATCH_PARTITION"), ("account", "SBATCH_ACCOUNT"),
              ("reservation", "SBATCH_RESERVATION"), ("QOS", "SBATCH_QOS"), ("memory", "SBATCH_MEM_PER_NODE"))


class SubmitError(RuntimeError):
    """A preflight check failed; the message says what to do."""


def sbatch_directives(script: Path) -> dict[str, str]:
    """The #SBATCH options of a script, e.g. {"--output": "logs/%x-%j.log", "--job-name": ...}."""
    out: dict[str, str] = {}
    for line in Path(script).read_text(encoding="utf-8").splitlines():
        m = SBATCH_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2) or ""
    return out


def script_image(script: Path) -> str | None:
    """The image a script runs in, by name (its `IMAGE=transformers` line), or None."""
    m = SCRIPT_IMAGE.search(Path(script).read_text(encoding="utf-8"))
    return m.group(1) if m else None


def image_path(name: str, env: dict | None = None) -> str:
    """Where the image `name` is: $COURSEKIT_SHARED/images/NAME.sif when the lab prepared a shared folder,
    else defs/NAME.sif of the kit (built by the student). sbatch/run-notebook.sh decides the same way."""
    env = os.environ if env is None else env
    shared = env.get(SHARED_VAR)
    return f"{shared}/images/{name}.sif" if shared else f"defs/{name}.sif"


def default_container(script: Path, env: dict | None = None) -> str | None:
    """The image a script uses when CONTAINER is not set."""
    name = script_image(script)
    return image_path(name, env) if name else None


def script_notebook(script: Path) -> str | None:
    """The notebook a script's own commands name (notebooks/NN_name.ipynb), or None (notebook.sbatch and
    sweep.sbatch take it as their first argument)."""
    code = "\n".join(l for l in Path(script).read_text(encoding="utf-8").splitlines()
                     if not l.lstrip().startswith("#"))
    m = re.search(r"notebooks/[\w.-]+\.ipynb", code)
    return m.group(0) if m else None


def job_command(script: Path, args: list[str]) -> tuple[str, list[str]]:
    """What the job will run: ("run" or "sweep", its argument list), as sbatch/run-notebook.sh builds it."""
    text = Path(script).read_text(encoding="utf-8")
    m = SCRIPT_COMMAND.search(text)
    command = m.group(1) if m else "run"
    own = script_notebook(script)
    return command, ([own, *args] if own else list(args))


def notebook_image(notebook: Path, root: Path) -> str:
    """The image name of the batch script made for this notebook (the sbatch/*.sbatch whose commands
    name it), else DEFAULT_IMAGE: what a sweep or the generic notebook script runs it in (as
    sbatch/run-notebook.sh decides for a script with an empty IMAGE)."""
    for script in sorted((root / "sbatch").glob("*.sbatch")):
        own = script_notebook(script)
        if own is not None and Path(own).name == Path(notebook).name and script_image(script):
            return script_image(script)
    return DEFAULT_IMAGE


def check_job_arguments(script: Path, args: list[str], kit: Path) -> tuple[Path | None, int]:
    """Check the job's command line as the job itself will (the runner's parser and parameter resolution,
    every combination of a sweep's grid), before sbatch. Returns (notebook, number of runs); raises
    SubmitError with the message the job would print."""
    command, argv = job_command(script, args)
    if command == "open":  # sbatch/jupyter.sbatch: the job gives its arguments to `coursekit open`
        try:
            workcopy.check_command_line(argv, cwd=kit)
        except (workcopy.OpenError, ParameterError) as exc:
            raise SubmitError(f"the job would stop with: coursekit open: error: {exc} / "
                              "ジョブがこのエラーで止まります") from None
        return None, 1
    try:
        lines = sweep.runner_command_lines(argv) if command == "sweep" else [argv]
        for line in lines:  # relations may break only in one combination
            runner.check_command_line(line, cwd=kit)
    except (runner.UsageError, ParameterError, RunFolderError, FileNotFoundError) as exc:
        raise SubmitError(f"the job would stop with: coursekit {command}: error: {exc} / "
                          "ジョブがこのエラーで止まります") from None
    notebook = next((a for a in lines[0] if a.endswith(".ipynb")), None) if lines and lines[0] else None
    return (kit / notebook if notebook else None), len(lines)


# ----------------------------------------------------------------------------- the site file
def read_site_file(path: str | Path) -> dict[str, str]:
    """The variables a site file exports, evaluated by bash as a student's shell would (`source FILE`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SubmitError(f"site file {path} ({SITE_VAR}) not found; ask the instructor for its path / "
                          f"サイト設定ファイル {path} がありません。講師にパスを確認してください")
    proc = subprocess.run(["bash", "-c", 'set -a; source "$1" >/dev/null || exit 3; env -0', "site", str(path)],
                          capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                               "HOME": os.environ.get("HOME", "/")})
    if proc.returncode != 0:
        raise SubmitError(f"site file {path} failed in bash: {proc.stderr.strip()[-500:]} / "
                          "サイト設定ファイルを bash で読めませんでした")
    values = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
    return {k: v for k, v in values.items() if k.startswith(("SBATCH_", "SLURM_", "SALLOC_", "COURSEKIT_"))}


def site_environment(env: dict | None = None) -> dict[str, str]:
    """The environment with the site file's values added ($COURSEKIT_SITE; values already exported win)."""
    env = dict(os.environ if env is None else env)
    if env.get(SITE_VAR):
        for name, value in read_site_file(env[SITE_VAR]).items():
            env.setdefault(name, value)
    return env


def sinfo(env: dict, fmt: str) -> list[str] | None:
    """`sinfo -h -o FMT` lines (None where sinfo is missing or fails)."""
    if not shutil.which("sinfo", path=env.get("PATH")):
        return None
    proc = subprocess.run(["sinfo", "-h", "-o", fmt], capture_output=True, text=True, env=env)
    return proc.stdout.split() if proc.returncode == 0 else None


def partitions(env: dict) -> list[str] | None:
    """The partitions sinfo lists (the default one without its '*')."""
    found = sinfo(env, "%R")
    return sorted({p.rstrip("*") for p in found}) if found is not None else None


def gpu_types(env: dict) -> list[str] | None:
    """The GPU types of the cluster's gres (gpu:tesla:2(S:0) -> tesla)."""
    found = sinfo(env, "%G")
    if found is None:
        return None
    types = set()
    for field in found:
        for gres in field.split(","):
            parts = gres.split("(")[0].split(":")
            if parts[0] == "gpu" and len(parts) == 3:
                types.add(parts[1])
    return sorted(types)


def partition_problem(env: dict, known: list[str] | None = None) -> str | None:
    """Why SBATCH_PARTITION cannot be used (the partition sinfo does not list), or None."""
    partition = env.get("SBATCH_PARTITION")
    known = known if known is not None else (partitions(env) if partition else None)
    if partition and known is not None and partition not in known:
        return (f"partition '{partition}' (SBATCH_PARTITION) does not exist; sinfo lists: {', '.join(known)} / "
                f"パーティション '{partition}' はありません。あるのは {', '.join(known)} です")
    return None


def gpu_type_problem(env: dict, types: list[str] | None = None) -> str | None:
    """Why the site's GPU type cannot be asked for (not among sinfo's gres types), or None."""
    gpu = env.get(GPU_TYPE_VAR)
    types = types if types is not None else (gpu_types(env) if gpu else None)
    if gpu and types is not None and gpu not in types:
        return (f"GPU type '{gpu}' ({GPU_TYPE_VAR}) is not on this cluster; sinfo lists: "
                f"{', '.join(types) or 'no typed GPUs'} / GPU の種類 '{gpu}' はありません。"
                f"あるのは {', '.join(types) or '(種類なし)'} です")
    return None


def check_site(env: dict) -> list[str]:
    """Refuse a partition or GPU type the cluster does not have; returns the lines that say what is used."""
    lines = []
    problem = partition_problem(env) or gpu_type_problem(env)
    if problem:
        raise SubmitError(problem)
    gpu = env.get(GPU_TYPE_VAR)
    used = [f"{what} {env[var]}" for what, var in SITE_SLURM if env.get(var)]
    if gpu:
        used.append(f"GPU type {gpu}")
    if env.get(SHARED_VAR):
        used.append(f"shared folder {env[SHARED_VAR]}")
    source = f" (from {env[SITE_VAR]})" if env.get(SITE_VAR) else " (no site file: COURSEKIT_SITE is not set)"
    lines.append("site: " + (", ".join(used) or "Slurm's defaults") + source +
                 " / サイト設定: " + (", ".join(used) or "Slurm の既定値"))
    return lines


def typed_gpu_option(directives: dict[str, str], options: list[str], gpu_type: str | None) -> list[str]:
    """`--gpus-per-node=TYPE:N` for a script that asks for N GPUs per node, when the site names a GPU type
    and the student gave no GPU option of their own."""
    count = directives.get("--gpus-per-node")
    if not gpu_type or not count or ":" in count or any(o.startswith(("--gpus", "--gres", "-G")) for o in options):
        return []
    return [f"--gpus-per-node={gpu_type}:{count}"]


SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_seconds(text: str) -> int | None:
    """A Slurm time limit in seconds: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS";
    None for UNLIMITED/INFINITE or a value this does not read (sbatch itself will judge it)."""
    m = SLURM_TIME.match(text.strip())
    if not m:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:   # D-HH[:MM[:SS]]
        return ((days * 24 + a) * 60 + (b or 0)) * 60 + (c or 0)
    if c is not None:      # HH:MM:SS
        return (a * 60 + b) * 60 + c
    return a * 60 + (b or 0)   # MM or MM:SS


def _option(options: list[str], directives: dict[str, str], long: str, short: str = "") -> str | None:
    """The value of an sbatch option: the last one given on the command line, else the script's #SBATCH."""
    value = None
    for o in options:
        if o.startswith(long + "="):
            value = o[len(long) + 1:]
        elif short and o.startswith(short) and len(o) > len(short):
            value = o[len(short):].lstrip("=")
    if value is not None:
        return value
    return directives.get(long, directives.get(short) if short else None)


def check_warning_time(directives: dict[str, str], options: list[str]) -> None:
    """Refuse a time limit that is not longer than the warning signal's lead (#SBATCH --signal=B:USR1@300):
    Slurm would send the checkpoint-and-stop warning as soon as the job starts."""
    signal, limit = _option(options, directives, "--signal"), _option(options, directives, "--time", "-t")
    if not signal or not limit:
        return
    _, at, after = signal.rpartition("@")
    lead = int(after) if at and after.isdigit() else 60   # sbatch's default lead is 60 s
    seconds = slurm_seconds(limit)
    if seconds is not None and seconds <= lead:
        raise SubmitError(
            f"--time={limit} ({seconds} s) is not longer than the warning signal's {lead} s (--signal={signal}): "
            f"Slurm would ask the job to checkpoint and stop as soon as it starts. Give a longer --time "
            f"(more than {lead // 60} min) or an earlier warning, e.g. --sbatch=--signal=B:USR1@60 / "
            f"時間の上限 {limit} が、終了予告のシグナルの {lead} 秒より短いので、ジョブは始まってすぐに"
            f"止めるよう言われます。--time を {lead // 60} 分より長くするか、--sbatch=--signal=B:USR1@60 のように"
            "予告を短くしてください")


# ----------------------------------------------------------------------------- submit
def _log_folders(directives: dict[str, str], workdir: Path) -> list[Path]:
    folders = []
    for key in ("--output", "-o", "--error", "-e"):
        if directives.get(key):
            folders.append((workdir / directives[key]).parent)
    return folders


def _find_image(script: Path, notebook: Path | None, container: str | None, env: dict, kit: Path) -> str:
    """The image the job will run in (which must exist): --container, $CONTAINER, the notebook's own
    script's image (sweeps, notebook.sbatch), the script's image; in the shared folder or defs/."""
    own = default_container(script, env)
    if own is None:  # sweep.sbatch, notebook.sbatch: the image of the notebook's own script
        own = image_path(notebook_image(notebook, kit) if notebook is not None else DEFAULT_IMAGE, env)
    image = container or env.get("CONTAINER") or own
    if image != "none":
        path = Path(image) if Path(image).is_absolute() else kit / image
        if not path.exists():
            hint = (f"the instructor's shared folder {env[SHARED_VAR]} lacks it (python -m coursekit prepare)"
                    if env.get(SHARED_VAR) else
                    f"build it first: python -m coursekit build-container defs/{path.name.removesuffix('.sif')}.def")
            raise SubmitError(
                f"container {path} not found: {hint} -- or run on the host's Python with --container none "
                f"(CONTAINER=none) / イメージ {path.name} がありません。共有フォルダを確かめるか build-container "
                "で作るか、--container none でホストの Python で動かしてください")
    return image


def submit(script: str | Path, script_args: list[str], *, container: str | None = None,
           sbatch_options: list[str] = (), workdir: str | Path | None = None,
           dry_run: bool = False, out=sys.stdout) -> str | None:
    """Preflight, then sbatch. Returns the job id (None for a dry run)."""
    workdir = Path(workdir or Path.cwd()).resolve()
    # the kit the job runs: the checkout the student submits from, else the one this library is in
    kit = project_root(workdir) or project_root(Path.cwd()) or project_root(Path(__file__).parent) or workdir
    script = Path(script)
    if not script.is_absolute():
        script = next((p for p in (Path.cwd() / script, kit / script) if p.exists()), kit / script)
    if not script.is_file():
        raise SubmitError(f"batch script not found: {script} (the kit's scripts are in {kit / 'sbatch'}) / "
                          "バッチスクリプトが見つかりません(教材のスクリプトは sbatch/ にあります)")
    script = script.resolve()
    env = site_environment()
    for line in check_site(env):
        print(line, file=out)
    directives = sbatch_directives(script)
    notebook, n_runs = check_job_arguments(script, list(script_args), kit)
    image = _find_image(script, notebook, container, env, kit)

    for folder in _log_folders(directives, workdir):
        if not folder.is_dir():
            folder.mkdir(parents=True)
            print(f"created {folder}/ (without it Slurm silently drops the job's output) / "
                  f"{folder.name}/ を作りました(ないと Slurm はジョブの出力を黙って捨てます)", file=out)

    options = list(sbatch_options)
    check_warning_time(directives, options)
    options += typed_gpu_option(directives, options, env.get(GPU_TYPE_VAR))
    if job_command(script, [])[0] == "sweep":
        if not any(o.startswith(("--array", "-a")) for o in options):
            options.append(f"--array=0-{n_runs - 1}")
        print(f"sweep: {n_runs} combinations -> a job array / "
              f"スイープ: {n_runs} 通りの組み合わせを 1 つのジョブ配列({n_runs} タスク)で流します", file=out)

    sbatch = shutil.which("sbatch", path=env.get("PATH"))
    command = [sbatch or "sbatch", "--parsable", *options, str(script), *script_args]
    env.update({"CONTAINER": image, "KIT_DIR": str(kit)})
    if dry_run:
        print("would run: CONTAINER=" + image + " " + " ".join(command), file=out)
        if not sbatch:
            print("note: sbatch is not installed here: submit on the cluster's login node (or load the slurm "
                  "module) / 注意: ここには sbatch がありません。クラスタのログインノードで投入してください", file=out)
        return None
    if not sbatch:
        raise SubmitError("sbatch not found: run this on the cluster's login node (or load the slurm module) / "
                          "sbatch が見つかりません。クラスタのログインノードで実行してください"
                          "(または slurm のモジュールを読み込んでください)")
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SubmitError(f"sbatch failed ({proc.returncode}) / sbatch がジョブを受け付けませんでした: "
                          f"{proc.stderr.strip() or proc.stdout.strip()}")
    job_id = proc.stdout.strip().split(";")[0]
    name = directives.get("--job-name", script.stem)
    log = directives.get("--output", "slurm-%j.out").replace("%x", name)
    log = log.replace("%A", job_id).replace("%a", "0").replace("%j", job_id)
    print(f"submitted job {job_id} ({name}, container {image}) / ジョブ {job_id} を投入しました", file=out)
    print(f"  squeue -j {job_id}            # is it waiting or running? / 待ち中か実行中か", file=out)
    print(f"  tail -f {workdir / log}     # follow its output / 出力を追う", file=out)
    print(f"  scancel {job_id}              # cancel it / 取り消す", file=out)
    return job_id


def submit_main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit submit", allow_abbrev=False,
        description="Submit a batch script from sbatch/ with preflight checks (site settings, the job's "
                    "arguments, logs folder, container). Arguments after the script go to it: --profile tiny "
                    "-p NAME VALUE ...; sbatch/sweep.sbatch also takes -g NAME V1,V2 (one array task per "
                    "combination).")
    parser.add_argument("script", type=Path)
    parser.add_argument("--container", help="image to run in; 'none': the host's Python "
                                            "(default: $CONTAINER, else the script's own)")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="extra sbatch option, e.g. --sbatch=--time=00:30:00 (repeatable)")
    parser.add_argument("--workdir", type=Path, help="folder to submit from (logs/ goes there; default: here)")
    parser.add_argument("--dry-run", action="store_true", help="check and print the sbatch command only")
    args, script_args = parser.parse_known_args(argv)
    try:
        job = submit(args.script, script_args, container=args.container, sbatch_options=args.sbatch,
                     workdir=args.workdir, dry_run=args.dry_run)
    except SubmitError as exc:
        print(f"coursekit submit: error: {exc}", file=sys.stderr)
        return 2
    if job:
        print(job)
    return 0


main = submit_main
