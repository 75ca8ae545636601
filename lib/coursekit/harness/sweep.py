"""`python -m coursekit sweep NOTEBOOK -g NAME V1,V2 ...`: one task of a job-array parameter sweep.

sbatch/sweep.sbatch runs it in every task of the array; task i runs combination i of the grid
through the notebook runner, in its own run folder. `submit` reads a sweep's command line with the
same `parse` and checks every combination with the runner's own parser (`runner_command_lines`).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

from . import runner
from .runner import CommandParser, UsageError


def parse_grid(args: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Split `-g NAME V1,V2` pairs from the other arguments: ([(name, [v1, v2])...], rest)."""
    grid, rest, i = [], [], 0
    while i < len(args):
        if args[i] in ("-g", "--grid"):
            if i + 2 >= len(args):
                raise UsageError(f"{args[i]} needs NAME and a comma-separated list of values / "
                                 f"{args[i]} の後に 名前 と カンマ区切りの値 を書きます(例: -g seed 0,1,2)")
            name, values = args[i + 1], [v for v in args[i + 2].split(",") if v != ""]
            if not values:
                raise UsageError(f"-g {name}: no values given / {name} の値がありません")
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


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m coursekit sweep", allow_abbrev=False,
        description="Run one combination of a parameter grid (-g NAME V1,V2 ...), chosen by "
                    "$SLURM_ARRAY_TASK_ID or --task; fixed parameters as -p NAME VALUE.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--task", type=int, help="combination index (default: $SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--list", action="store_true", help="print the combinations and exit")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[list[tuple[str, str]]], list[str]]:
    """(the sweep's own options, every combination of the grid, the runner arguments for all tasks)."""
    args, rest = build_parser().parse_known_args(argv)
    grid, rest = parse_grid(rest)
    if not grid:
        raise UsageError("no grid: give at least one -g NAME V1,V2,... / -g 名前 値1,値2 を 1 つ以上書いてください")
    return args, combinations(grid), rest


def runner_command_lines(argv: list[str]) -> list[list[str]]:
    """The runner's command line of every task of the sweep `argv` (task i: element i)."""
    args, combos, rest = parse(argv)
    return [[str(args.notebook), *rest, *[a for k, v in combo for a in ("-p", k, v)]] for combo in combos]


def main(argv: list[str] | None = None) -> int:
    """Run the combination of this array task ($SLURM_ARRAY_TASK_ID) through the notebook runner."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, combos, _ = parse(argv)
        if args.list:
            for i, combo in enumerate(combos):
                print(i, " ".join(f"{k}={v}" for k, v in combo))
            return 0
        task = args.task if args.task is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None:
            raise UsageError("no task index: run as a job array (sbatch --array=0-N) or give --task I / "
                             "タスク番号がありません。ジョブ配列として流すか --task 番号 を付けてください")
        task = int(task)
        if not 0 <= task < len(combos):
            raise UsageError(f"task {task} is outside the grid's {len(combos)} combinations (0-{len(combos) - 1}) / "
                             f"タスク {task} は {len(combos)} 通りの組み合わせ(0〜{len(combos) - 1})の外です")
    except UsageError as exc:
        print(f"coursekit sweep: error: {exc}", file=sys.stderr)
        return 2
    print(f"sweep task {task}/{len(combos)} / スイープのタスク {task}: "
          + " ".join(f"{k}={v}" for k, v in combos[task]), flush=True)
    return runner.main(runner_command_lines(argv)[task])
