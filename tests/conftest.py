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


def printed_text(notebook: Path) -> str:
    """What the cells of an executed notebook printed (their outputs' `text`), in order."""
    import json

    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def committed_figures(results_file: str) -> dict:
    """The `figures` of a committed benchmark results file (a path under the kit, e.g. pretrain.LIFT_RESULTS)."""
    import json

    return json.loads((ROOT / results_file).read_text(encoding="utf-8"))["figures"]


def printed_lines(notebook: Path, start: str) -> list[str]:
    """The lines of an executed notebook's printed output that begin (after spaces) with `start`."""
    return [line.strip() for line in printed_text(notebook).splitlines() if line.strip().startswith(start)]


# Fixtures that stand for the machine's one test cluster and its CPU images (daemons, Unix accounts, image locks):
# every test that uses one, directly or through another fixture, runs on the same pytest-xdist worker, in file order
# (pyproject.toml: -n 2 --dist loadgroup), so the cluster starts once; the other tests run on the second worker.
CLUSTER_FIXTURES = {"workshop", "images"}


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook, which turns the mark into the "@cluster" id suffix
def pytest_collection_modifyitems(config, items):
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("cluster"))


def pytest_collection_finish(session):
    """Two workers must never start two test clusters: stop if xdist did not group them (a pytest/xdist pair
    where loadgroup is silently ignored, pytest-dev/pytest-xdist#1386)."""
    if getattr(session.config.option, "loadgroup", False):
        lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if lost:
            pytest.exit(f"pytest-xdist did not group the cluster tests ({lost[0]} ...): pin the pytest of "
                        "requirements.txt (pytest-dev/pytest-xdist#1386)", returncode=3)


@pytest.fixture(scope="session")
def workshop(tmp_path_factory):
    """The workshop's test cluster (tests/harness/slurmjobs.py WORKSHOP: two nodes, partition `workshop`, typed
    fake GPUs), started once for the whole test session and shared by every test that submits jobs. Yields the
    root environment to submit jobs in (SBATCH_PARTITION set, CONTAINER=none, this Python first on PATH)."""
    from .harness.slurmjobs import WORKSHOP, cluster

    with cluster("workshop", tmp_path_factory.mktemp("workshop-runs"), **WORKSHOP) as job_env:
        yield job_env


@pytest.fixture(scope="session")
def images():
    """name -> (runtime, CPU test image) for every defs/*.def (tests/harness/cpu_images.py: built once and
    cached on this machine); shared by every test that runs jobs in the images."""
    from .harness import cpu_images

    if not cpu_images.images_expected():
        pytest.skip("COURSEKIT_NO_IMAGES=1: this machine is not expected to build container images")
    try:
        runtime = cpu_images.runtime()
        built = {p.stem: cpu_images.cpu_image(p.stem, log=lambda m: print("\n" + m))
                 for p in sorted((ROOT / "defs").glob("*.def"))}
    except cpu_images.ImagesUnavailable as exc:
        pytest.fail(f"container images cannot be built here: {exc}\n(set COURSEKIT_NO_IMAGES=1 where images "
                    "are not expected)", pytrace=False)
    print(f"\n[images] build seconds (None: reused): {cpu_images.TIMES}")
    return {name: (runtime, image) for name, image in built.items()}
