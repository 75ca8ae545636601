"""Notebook 01 executed through the runner on the tiny profile (build=False): the kit's real .def files
are read and checked, a `Bootstrap: localimage` variant is written, the GPU check runs on this machine's
Python with the image's %environment, the version trap is shown from the packages' real metadata and pip's
own dry-run report, an unpinned .def is caught, and the exercises report undone / right."""
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
    assert m["unpinned_def_problems"] >= 3 and m["versions"]["tf-keras"]
    assert set(m["def_environment"]) >= {"PYTHONNOUSERSITE", "TF_USE_LEGACY_KERAS", "HF_HOME"}
    declared = m["declared_requirements"]  # the mechanism, from the installed packages' metadata
    assert not any(r.startswith("tensorflow") for r in declared["keras"]), "Keras 3 does not depend on TensorFlow"
    assert any(r.startswith("keras>=3") for r in declared["tensorflow"]), "TensorFlow 2.21 brings Keras 3"
    assert any(r.startswith("tensorflow") for r in declared["tf-keras"]), "tf-keras ties TensorFlow's version"
    plans = m["pip_dry_run"]  # None where the package index cannot be reached
    if plans["keras"] is not None:
        assert plans["keras"]["keras"].startswith("3.") and not any(n.startswith("tensorflow") for n in plans["keras"])
    if plans.get("tensorflow-cpu") is not None:
        assert "tensorflow-cpu" in plans["tensorflow-cpu"], "pip plans a second TensorFlow without a warning"
    local = (result.run_dir / "keras-bert-local.def").read_text()
    assert local.startswith("Bootstrap: localimage\nFrom: defs/tensorflow-base.sif\n")
    assert containers.check_def(result.run_dir / "keras-bert-local.def", ROOT / "requirements.txt") == []
    assert m["exercises"] == {"1": "todo", "2": "todo", "3": "todo", "4": "open"}
    assert set(data["phases"]) == {"gpu-check"}
    assert (result.run_dir / "packages.png").stat().st_size > 5000
    assert "pip install keras keras-bert" in (result.run_dir / "unpinned-example.def").read_text()
    html = result.html.read_text(encoding="utf-8")
    assert "build=False" in html and "%environment" in html and "Traceback" not in html
    assert "PYTHONNOUSERSITE: set" in html, "the fallback check runs with the image's %environment"
    assert "tf.keras is Keras 3" not in html and "TF_USE_LEGACY_KERAS is not set" not in html
    assert "`keras` in %post: Keras 3 breaks keras-bert" in html
    assert "apptainer build --fakeroot defs/keras-bert.sif defs/keras-bert.def" in html
    prose = "\n".join(c.source for c in nbformat.read(str(NOTEBOOK), as_version=4).cells if c.cell_type == "markdown")
    for command in ("apptainer build --fakeroot --sandbox defs/keras-bert/ defs/keras-bert.def",
                    "apptainer shell --fakeroot --writable defs/keras-bert/", "Bootstrap: localimage",
                    "apptainer pull defs/tensorflow-base.sif docker://tensorflow/tensorflow:2.21.0-gpu",
                    "python -m coursekit build-container defs/keras-bert.def --base defs/tensorflow-base.sif"):
        assert command in prose, command
    assert "まだです" in html and "解答例:" not in html
    nb = nbformat.read(str(result.notebook), as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_notebook_01_reference_solutions_are_right(runs_dir):
    result = run_notebook(NOTEBOOK, "tiny", {"solutions": True}, runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "correct", "4": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 3 and "解答例:" in html and "Traceback" not in html
