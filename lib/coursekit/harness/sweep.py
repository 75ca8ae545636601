"""`python -m coursekit sweep NOTEBOOK -g NAME V1,V2 ...`: one task of a job-array parameter sweep.

sbatch/sweep.sbatch runs it in every task of the array; task i runs combination i of the grid
through the notebook runner, in its own run folder.
"""
from __future__ import annotations

import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the combination of this array task ($SLURM_ARRAY_TASK_ID) through the notebook runner."""
    import argparse

    from . import slurm

    parser = argparse.ArgumentParser(
        prog="python -m coursekit sweep", allow_abbrev=False,
        description="Run one combination of a parameter grid (-g NAME V1,V2 ...), chosen by "
                    "$SLURM_ARRAY_TASK_ID or --task; fixed parameters as -p NAME VALUE.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--task", type=int, help="combination index (default: $SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--list", action="store_true", help="print the combinations and exit")
    args, rest = parser.parse_known_args(argv)
    try:
        grid, rest = slurm.parse_grid(rest)
    except slurm.SubmitError as exc:
        parser.error(str(exc))
    if not grid:
        parser.error("no grid: give at least one -g NAME V1,V2,... / -g 名前 値1,値2 を 1 つ以上書いてください")
    combos = slurm.combinations(grid)
    if args.list:
        for i, combo in enumerate(combos):
            print(i, " ".join(f"{k}={v}" for k, v in combo))
        return 0
    task = args.task if args.task is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
    if task is None:
        parser.error("no task index: run as a job array (sbatch --array=0-N) or give --task I / "
                     "タスク番号がありません。ジョブ配列として流すか --task 番号 を付けてください")
    task = int(task)
    if not 0 <= task < len(combos):
        parser.error(f"task {task} is outside the grid's {len(combos)} combinations (0-{len(combos) - 1}) / "
                     f"タスク {task} は {len(combos)} 通りの組み合わせ(0〜{len(combos) - 1})の外です")
    params = [a for k, v in combos[task] for a in ("-p", k, v)]
    print(f"sweep task {task}/{len(combos)} / スイープのタスク {task}: "
          + " ".join(f"{k}={v}" for k, v in combos[task]), flush=True)
    from . import runner

    return runner.main([str(args.notebook), *rest, *params])
