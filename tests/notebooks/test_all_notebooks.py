"""Every committed notebook is clean; notebook 00 runs through the runner on the tiny profile."""
import json

import nbformat
import papermill
import pytest

from coursekit.harness import params
from coursekit.harness.device import device_summary

from ..conftest import NOTEBOOKS, coursekit_cli

ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in ALL][:1] == ["00_gpu_check.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs_with_parameters_cell_and_kernelspec(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs are committed"
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], "exactly one parameters cell, the first code cell"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert 'profile = "full"' in code[0].source


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parameters_cell_shows_every_value_with_a_comment(path):
    table = params.declared(path)  # fails on anything but `name = literal` lines
    assert table["profile"].default == "full" and list(table)[0] == "profile"
    assert set(papermill.inspect_notebook(str(path))) == set(table), "papermill reads the same names"
    missing = [name for name, p in table.items() if not p.help]
    assert not missing, f"parameters without a comment: {missing}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_profile_file_resolves_against_the_cell(path):
    names = params.profiles(path)
    assert "tiny" in names, "every notebook has a tiny profile for a CPU run"
    for profile in names:
        values = params.resolve(path, profile)  # unknown names or wrong types raise, naming the file
        assert values["profile"] == profile


@pytest.mark.notebook
def test_gpu_check_runs_on_the_tiny_profile(runs_dir):
    proc = coursekit_cli("run", "notebooks/00_gpu_check.ipynb", "--profile", "tiny",
                         "-p", "matmul_size", "256", "--name", "t1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = runs_dir / "00_gpu_check" / "t1"
    assert proc.stdout.strip().splitlines()[-1] == str(folder), "the last line names the run folder"
    for name in ("00_gpu_check.ipynb", "00_gpu_check.html", "metrics.json", "matmul.png"):
        assert (folder / name).is_file(), name
    data = json.loads((folder / "metrics.json").read_text())
    assert data["status"] == "completed" and data["profile"] == "tiny"
    assert data["params"]["matmul_size"] == 256 and data["params"]["matmul_repeats"] == 3
    m = data["metrics"]
    assert m["torch_version"].startswith("2.") and m["tensorflow_version"].startswith("2.")
    assert m["keras_version"].startswith("2."), "keras-bert needs Keras 2 under the kit"
    assert m["gpu_count"] == device_summary()["gpu_count"]
    assert {t["framework"] for t in m["matmul"]} == {"torch", "tensorflow"}
    assert all(t["gflops"] > 0.1 and t["size"] == 256 for t in m["matmul"])
    assert m["errors"] == 0
    if m["gpu_count"] == 0:
        assert m["gpu_speedup"] == {}
        assert m["findings"][0]["title"] == "No GPU is visible: this machine computes on the CPU"
    assert set(data["phases"]) == {"probe", "matmul"} and all(v >= 0 for v in data["phases"].values())
    assert data["runner"]["status"] == "completed" and data["runner"]["html"] == "00_gpu_check.html"
    executed = nbformat.read(str(folder / "00_gpu_check.ipynb"), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert "No GPU" in (folder / "00_gpu_check.html").read_text() or m["gpu_count"] > 0
