"""The names the two layers and the notebooks share, declared once.

The harness runs a notebook in a run folder and tells the kernel where it is; the lesson code leaves its
data warnings there; the run record and the report read them back. Both layers import these names from
here (like `jpfont`, this module belongs to neither), so a file or variable cannot be renamed on one
side only.
"""
from __future__ import annotations

# ----------------------------------------------------------------------------- files in a run folder
METRICS_FILE = "metrics.json"    # the run record (harness/record.py); `coursekit report` reads only this
WARNINGS_FILE = "warnings.json"  # data warnings the lesson code writes during a run (lessons/download.py);
#                                  the runner copies them into metrics.json as "warnings"

# ----------------------------------------------------------------------------- the kernel's environment
RUN_DIR_ENV = "COURSEKIT_RUN_DIR"            # the run folder of the notebook being executed (set by the runner)
MAIN_RUN_DIR_ENV = "COURSEKIT_MAIN_RUN_DIR"  # rank 0's run folder, on every rank of a data-parallel run

# ----------------------------------------------------------------------------- metrics the report shows
# The lesson metrics `coursekit report` puts in its Markdown table when a run has them (every scalar
# metric goes to the CSV), best first: the first one present is also what notebook 05 plots by default.
# Each is a keyword of a notebook's `run.log(...)`; tests/test_layers.py fails when no notebook logs one.
HEADLINE_METRICS = (
    "accuracy", "baseline_accuracy", "macro_f1",   # 02: BERT and the TF-IDF baseline on livedoor
    "bleu", "chrf",                                # 03: translation
    "eval_loss",                                   # 03: the validation loss
    "valid_loss_before", "valid_loss_after",       # 04: before and after pre-training
    "gpu_speedup",                                 # 00: GPU against CPU, per framework
)
