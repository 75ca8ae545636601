"""Slurm: `python -m coursekit submit` (sbatch with the preflight students forget) and
`python -m coursekit sweep` (one job-array task of sbatch/sweep.sbatch; in sweep.py).

    python -m coursekit submit sbatch/livedoor.sbatch --profile tiny -p epochs 3
    python -m coursekit submit sbatch/sweep.sbatch notebooks/02_livedoor_bert.ipynb -g learning_rate 1e-4,5e-4

submit: creates the folders of the script's --output/--error files (a missing logs/ folder makes Slurm
drop the job's output without a word), checks that the container exists (CONTAINER, else the
script's default), sets --array for sweeps, runs sbatch and prints the job id with the squeue /
tail -f / scancel commands for it. Everything after the script goes to the script unchanged, but
it is checked first as the runner would check it (parameter names, types, every value of a sweep's
grid): a typo fails here, not after the job waited in the queue.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import params
from .runs import project_root

SBATCH_LINE = re.compile(r"^#SBATCH\s+(--?[\w-]+)(?:[=\s]+(\S+))?")
DEFAULT_CONTAINER = re.compile(r'\$\{CONTAINER:=([^}]+)\}')


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


def default_container(script: Path) -> str | None:
    """The image a script uses when CONTAINER is not set (its `: "${CONTAINER:=...}"` line)."""
    m = DEFAULT_CONTAINER.search(Path(script).read_text(encoding="utf-8"))
    return m.group(1) if m else None


def script_notebook(script: Path, args: list[str], root: Path) -> Path | None:
    """The notebook a job runs: the first NOTEBOOK.ipynb argument (notebook.sbatch, sweep.sbatch),
    else the one the script's own commands name."""
    for arg in args:
        if arg.endswith(".ipynb"):
            path = Path(arg)
            return path if path.is_absolute() else root / path
    code = "\n".join(l for l in Path(script).read_text(encoding="utf-8").splitlines()
                     if not l.lstrip().startswith("#"))
    m = re.search(r"notebooks/[\w.-]+\.ipynb", code)
    return root / m.group(0) if m else None


def notebook_container(notebook: Path, root: Path) -> str | None:
    """The image of the batch script made for this notebook (the sbatch/*.sbatch whose commands
    name it): what a sweep or the generic notebook script should run it in."""
    for script in sorted((root / "sbatch").glob("*.sbatch")):
        found = script_notebook(script, [], root)
        if found is not None and found.name == notebook.name:
            return default_container(script)
    return None


def check_job_parameters(notebook: Path, args: list[str], grid: list[tuple[str, list[str]]]) -> int:
    """Check what the runner will be given, before sbatch: --profile, -p NAME VALUE and every
    combination of the grid. Returns the number of runs; raises SubmitError naming the problem."""
    profile, pairs, i = None, [], 0
    while i < len(args):
        if args[i] == "--profile" and i + 1 < len(args):
            profile, i = args[i + 1], i + 2
        elif args[i] in ("-p", "--parameter") and i + 2 < len(args):
            pairs.append((args[i + 1], args[i + 2]))
            i += 3
        else:
            i += 1
    try:
        params.resolve(notebook, profile, pairs)
        for combo in (combinations(grid) if grid else []):  # relations may break only in a combination
            params.resolve(notebook, profile, [*pairs, *combo])
    except params.ParameterError as exc:
        raise SubmitError(f"{notebook.name}: {exc}") from None
    return len(combinations(grid)) if grid else 1


def parse_grid(args: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Split `-g NAME V1,V2` pairs from the other arguments: ([(name, [v1, v2])...], rest)."""
    grid, rest, i = [], [], 0
    while i < len(args):
        if args[i] in ("-g", "--grid"):
            if i + 2 >= len(args):
                raise SubmitError(f"{args[i]} needs NAME and a comma-separated list of values / "
                                  f"{args[i]} の後に 名前 と カンマ区切りの値 を書きます(例: -g seed 0,1,2)")
            name, values = args[i + 1], [v for v in args[i + 2].split(",") if v != ""]
            if not values:
                raise SubmitError(f"-g {name}: no values given / {name} の値がありません")
            grid.append((name, values))
            i += 3
        else:
            rest.append(args[i])
            i += 1
    return grid, rest


def combinations(grid: list[tuple[str, list[str]]]) -> list[list[tuple[str, str]]]:
    """Every combination of the grid, in a fixed order (task i of the array runs combination i)."""
    names = [name for name, _ in grid]
    return [list(zip(names, values)) for values in itertools.product(*[v for _, v in grid])]


def _log_folders(directives: dict[str, str], workdir: Path) -> list[Path]:
    folders = []
    for key in ("--output", "-o", "--error", "-e"):
        if directives.get(key):
            folders.append((workdir / directives[key]).parent)
    return folders


def _preflight(script: Path, rest: list[str], grid, container: str | None, root: Path) -> str:
    """Check the notebook's parameters and find the image (which must exist); returns the image."""
    notebook = script_notebook(script, rest, root)
    if notebook is not None:
        if not notebook.is_file():
            raise SubmitError(f"notebook not found: {notebook} / ノートブックが見つかりません")
        check_job_parameters(notebook, rest, grid)
    own = notebook_container(notebook, root) if notebook is not None else None
    image = container or os.environ.get("CONTAINER") or own or default_container(script) or "none"
    if image != "none":
        path = Path(image) if Path(image).is_absolute() else root / image
        if not path.exists():
            raise SubmitError(
                f"container {path} not found. Build it first: python -m coursekit build-container "
                f"defs/{path.name.removesuffix('.sif')}.def -- or run on the host's Python with "
                f"--container none (CONTAINER=none) / イメージ {path.name} がありません。先に "
                f"build-container で作るか、--container none でホストの Python で動かしてください")
    return image


def submit(script: str | Path, script_args: list[str], *, container: str | None = None,
           sbatch_options: list[str] = (), workdir: str | Path | None = None,
           dry_run: bool = False, out=sys.stdout) -> str | None:
    """Preflight, then sbatch. Returns the job id (None for a dry run)."""
    root = project_root(Path(__file__).parent) or Path.cwd()
    script = Path(script)
    if not script.is_absolute() and not script.exists():
        script = root / script
    if not script.is_file():
        raise SubmitError(f"batch script not found: {script} (the kit's scripts are in {root / 'sbatch'}) / "
                          "バッチスクリプトが見つかりません(教材のスクリプトは sbatch/ にあります)")
    script = script.resolve()
    workdir = Path(workdir or Path.cwd()).resolve()
    directives = sbatch_directives(script)

    grid, rest = parse_grid(list(script_args))
    image = _preflight(script, rest, grid, container, root)

    for folder in _log_folders(directives, workdir):
        if not folder.is_dir():
            folder.mkdir(parents=True)
            print(f"created {folder}/ (without it Slurm silently drops the job's output) / "
                  f"{folder.name}/ を作りました(ないと Slurm はジョブの出力を黙って捨てます)", file=out)

    options = list(sbatch_options)
    if grid:
        n = len(combinations(grid))
        if not any(o.startswith(("--array", "-a")) for o in options):
            options.append(f"--array=0-{n - 1}")
        print(f"sweep: {n} combinations of {', '.join(name for name, _ in grid)} -> a job array / "
              f"スイープ: {n} 通りの組み合わせを 1 つのジョブ配列({n} タスク)で流します", file=out)
    args = [*rest]
    for name, values in grid:
        args += ["-g", name, ",".join(values)]

    sbatch = shutil.which("sbatch")
    command = [sbatch or "sbatch", "--parsable", *options, str(script), *args]
    env = {**os.environ, "CONTAINER": image, "KIT_DIR": str(root)}
    if dry_run:
        print("would run: CONTAINER=" + image + " " + " ".join(command), file=out)
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
        description="Submit a batch script from sbatch/ with preflight checks (logs folder, container). "
                    "Arguments after the script go to it: --profile tiny -p NAME VALUE ...; "
                    "sbatch/sweep.sbatch also takes -g NAME V1,V2 (one array task per combination).")
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
