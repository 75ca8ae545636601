"""Notebook 00 executed through the runner on the tiny profile: the frameworks' own device calls,
a timed matmul in each framework, the harness's diagnosis, the exercises (left undone, and with the
reference solutions), and the run folder it leaves."""
from __future__ import annotations

import json

import nbformat
import pytest

from coursekit.harness.device import device_summary
from coursekit.harness.params import ParameterError
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS, coursekit_cli

pytestmark = pytest.mark.notebook
NOTEBOOK = NOTEBOOKS / "00_gpu_check.ipynb"
UNDONE = {"1": "todo", "2": "todo", "3": "todo", "4": "open"}
NO_GPU = "GPU が見えません: この計算機は CPU で計算します / No GPU is visible: this machine computes on the CPU"


def executed_errors(path) -> list:
    nb = nbformat.read(str(path), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


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
    assert data["figures"] == ["matmul.png"] and (folder / "matmul.png").stat().st_size > 5000
    m = data["metrics"]
    assert m["frameworks_present"] == ["torch", "tensorflow"] and m["frameworks_missing"] == []
    assert m["torch_version"].startswith("2.") and m["tensorflow_version"].startswith("2.")
    assert m["keras_version"].startswith("2."), "TF_USE_LEGACY_KERAS=1 set in the notebook before TensorFlow"
    assert m["tensorflow_cuda"] and m["tensorflow_cudnn"], "the build info names CUDA and cuDNN"
    assert m["gpu_count"] == device_summary()["gpu_count"]
    assert {t["framework"] for t in m["matmul"]} == {"torch", "tensorflow"}
    assert all(t["gflops"] > 0 and t["size"] == 256 and t["repeats"] == 3 for t in m["matmul"])
    assert m["matmul_gflops"]["torch/cpu"] > 0 and m["matmul_gflops"]["tensorflow/cpu"] > 0
    assert m["errors"] == 0 and m["findings"]
    if m["gpu_count"] == 0:
        assert m["gpu_speedup"] == {}
        assert [f["title"] for f in m["findings"]] == [NO_GPU]
    assert set(data["phases"]) == {"probe", "matmul", "diagnose"} and all(v >= 0 for v in data["phases"].values())
    assert data["runner"]["status"] == "completed" and data["runner"]["html"] == "00_gpu_check.html"
    assert executed_errors(folder / "00_gpu_check.ipynb") == []
    html = (folder / "00_gpu_check.html").read_text(encoding="utf-8")
    for call in ("torch.cuda.is_available() = ", "torch.backends.cudnn.version() = ",
                 "tf.test.is_built_with_cuda() = ", "tf.test.gpu_device_name() = "):
        assert call in html, call  # the frameworks' own answers are shown, not hidden in the kit
    assert "No GPU is visible" in html or m["gpu_count"] > 0
    assert m["exercises"] == UNDONE, "exercises left undone: reported, never an error"
    assert html.count("まだです") >= 3 and "演習のまとめ(4 問): まだ 3 / 自由課題 1" in html
    assert "torch.cuda.is_available()\n" not in html and "tensorflow-cpu" not in html.split("演習 4")[-1], \
        "no reference solution is shown to students"


def test_reference_solutions_are_right_on_this_machine(runs_dir):
    """-p solutions True: the reference answers go into the answer cells and every check says 正解です,
    whatever this machine has (the expected answers come from this run: GPU or not, measured speed)."""
    result = run_notebook(NOTEBOOK, "tiny", {"matmul_size": 64, "frameworks": "torch", "solutions": True},
                          runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    assert result.metrics["metrics"]["exercises"] == {"1": "correct", "2": "correct", "3": "correct", "4": "open"}
    html = result.html.read_text(encoding="utf-8")
    assert html.count("正解です(解答例)") == 3 and "演習のまとめ(4 問): 正解 3 / 自由課題 1" in html
    assert "tensorflow-cpu" in html, "the open-ended task's example answer is shown to teachers"


def test_an_image_without_tensorflow_is_reported_not_an_error(runs_dir, tmp_path, monkeypatch):
    """The transformers image holds PyTorch only: TensorFlow is reported missing, the rest runs."""
    shim = tmp_path / "no_tensorflow"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None  # as if not installed\n")
    monkeypatch.setenv("PYTHONPATH", str(shim))
    result = run_notebook(NOTEBOOK, "tiny", {"matmul_size": 64}, runs_dir=runs_dir, quiet=True)
    assert result.ok, result.error
    m = result.metrics["metrics"]
    assert m["frameworks_present"] == ["torch"] and m["frameworks_missing"] == ["tensorflow"]
    assert "tensorflow_version" not in m and m["keras_version"] is None
    assert [t["framework"] for t in m["matmul"]] == ["torch"] * len(m["matmul"]) and m["matmul"]
    assert m["errors"] == 0
    html = result.html.read_text(encoding="utf-8")
    assert "TensorFlow はこの環境にありません" in html and "この環境にないフレームワーク(確かめません): tensorflow" in html


def test_an_unknown_framework_name_is_refused_before_running(runs_dir):
    with pytest.raises(ParameterError, match="'jax' is not allowed"):
        run_notebook(NOTEBOOK, "tiny", {"frameworks": "torch,jax"}, runs_dir=runs_dir, quiet=True)
    assert not runs_dir.exists() or not any(runs_dir.rglob("*.ipynb")), "nothing ran"
