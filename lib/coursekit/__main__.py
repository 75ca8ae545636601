"""Command line of the kit: `python -m coursekit COMMAND ...` (also installed as `coursekit`)."""
from __future__ import annotations

import importlib
import sys

# command -> (module with a main(argv) function, one-line help)
COMMANDS = {
    "run": ("coursekit.harness.runner", "execute a notebook with papermill into its own run folder"),
    "open": ("coursekit.harness.workcopy", "copy notebooks with a profile's values injected, to open in JupyterLab"),
    "gpu": ("coursekit.harness.device", "what TensorFlow / PyTorch see: GPUs, CUDA, the classic traps"),
    "report": ("coursekit.harness.report", "compare every run: devices, phases, accuracy, BLEU (CSV + Markdown)"),
    "slides": ("coursekit.harness.slides", "render the Marp decks with numbers from real runs; export HTML/PDF"),
    "submit": ("coursekit.harness.slurm", "sbatch a script from sbatch/ with preflight checks (logs/, container)"),
    "sweep": ("coursekit.harness.sweep", "run one task of a job-array parameter sweep (sbatch/sweep.sbatch)"),
    "build-container": ("coursekit.harness.containers", "check a defs/*.def file and build it (apptainer/singularity)"),
    "prepare": ("coursekit.prepare", "stage corpora, models and images once in the shared folder (instructor)"),
    "doctor": ("coursekit.harness.doctor", "check Python, the kit, site settings, images, the shared folder (one line each)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return ("usage: python -m coursekit COMMAND [ARGS...]\n\ncommands:\n" + rows +
            "\n\n`python -m coursekit COMMAND --help` for a command's options.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"coursekit: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
