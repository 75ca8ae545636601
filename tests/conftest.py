"""Shared fixtures: the checkout's paths and a way to run the kit's command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """A private runs/ folder, also exported as $COURSEKIT_RUNS for subprocesses."""
    path = tmp_path / "runs"
    monkeypatch.setenv("COURSEKIT_RUNS", str(path))
    monkeypatch.delenv("COURSEKIT_RUN_DIR", raising=False)
    return path


def coursekit_cli(*args: str, cwd: Path = ROOT, env: dict | None = None,
                  timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m coursekit ARGS` with this interpreter; capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "coursekit", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """Write a small notebook: a tagged parameters cell, then the given code cells."""
    import nbformat as nbf

    nb = nbf.v4.new_notebook(cells=[
        nbf.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *[nbf.v4.new_code_cell(src) for src in cells],
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, str(path))
    return path
