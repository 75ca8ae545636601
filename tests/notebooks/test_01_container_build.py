"""Notebook 01 executed through the runner on the tiny profile (build=False): the kit's real .def files
are read and checked, the GPU check runs on this machine's Python with the image's %environment, and
the unpinned-keras example is caught."""
from __future__ import annotations

import nbformat
import pytest

from coursekit.harness import containers
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS, ROOT

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "01_container_build.ipynb"


def test_notebook_01_tiny_without_building(runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    data = result.metrics
    assert data["status"] == "completed" and data["profile"] == "tiny" and data["params"]["build"] is False
    m = data["metrics"]
    assert m["in_conda"] is False  # the kit's venv
    assert m["pinned_packages"] == len(containers.read_pins(ROOT / "requirements.txt"))
    assert m["installed_packages"] > m["pinned_packages"], "pip freeze lists far more than what is used"
    assert {"post", "environment", "test"} <= set(m["def_sections"]) and m["def_packages"] > 5
    assert m["def_problems"] == {p.name: 0 for p in sorted((ROOT / "defs").glob("*.def"))}
    runtime = containers.find_runtime()
    assert m["runtime"] == (runtime.rsplit("/", 1)[-1] if runtime else None) and m["built"] is False
    assert m["gpu_check_exit"] == 0 and m["gpu_check_in_image"] is False
    assert m["bad_def_problems"] >= 2 and m["versions"]["tf-keras"]
    assert set(data["phases"]) == {"gpu-check"}
    assert (result.run_dir / "packages.png").stat().st_size > 5000
    assert "keras" in (result.run_dir / "bad-example.def").read_text()
    html = result.html.read_text(encoding="utf-8")
    assert "build=False" in html and "%environment" in html and "Traceback" not in html
    assert "PYTHONNOUSERSITE: set" in html, "the fallback check runs with the image's %environment"
    assert "tf.keras is Keras 3" not in html and "TF_USE_LEGACY_KERAS is not set" not in html
    assert "`keras` in %post: Keras 3 breaks keras-bert" in html
    nb = nbformat.read(str(result.notebook), as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
