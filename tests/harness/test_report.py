"""`coursekit report` and notebook 05 on run folders made by real tiny executions, plus damaged ones."""
import csv
import json
import shutil

import pytest

from coursekit.harness import report
from coursekit.harness.device import device_summary
from coursekit.harness.runner import run_notebook

from ..conftest import NOTEBOOKS, coursekit_cli

GPU_CHECK = NOTEBOOKS / "00_gpu_check.ipynb"


@pytest.fixture(scope="module")
def runs_tree(tmp_path_factory):
    """Real tiny runs of notebook 00 (two alike, one with another matmul size, one failing),
    a run cut short (metrics.json truncated) and one killed mid-run (status still "running")."""
    root = tmp_path_factory.mktemp("report") / "runs"
    for name, params in (("a", {"matmul_size": 64}), ("b", {"matmul_size": 64}), ("c", {"matmul_size": 128})):
        assert run_notebook(GPU_CHECK, "tiny", params, runs_dir=root, name=name, quiet=True).ok
    no_gpu = device_summary()["gpu_count"] == 0
    if no_gpu:  # require_gpu on a machine without one: the notebook really fails
        failed = run_notebook(GPU_CHECK, "tiny", {"matmul_size": 64, "require_gpu": True},
                              runs_dir=root, name="fail", quiet=True)
        assert not failed.ok
    nb_dir = root / "00_gpu_check"
    shutil.copytree(nb_dir / "a", nb_dir / "cut")
    text = (nb_dir / "cut" / "metrics.json").read_text()
    (nb_dir / "cut" / "metrics.json").write_text(text[: len(text) // 2])
    shutil.copytree(nb_dir / "a", nb_dir / "killed")
    data = json.loads((nb_dir / "killed" / "metrics.json").read_text())
    data["status"] = "running"
    del data["runner"]
    (nb_dir / "killed" / "metrics.json").write_text(json.dumps(data))
    return root, no_gpu


def test_find_runs_reads_every_folder_and_never_crashes(runs_tree):
    root, no_gpu = runs_tree
    infos = {i.run: i for i in report.find_runs(root)}
    assert set(infos) == {"a", "b", "c", "cut", "killed"} | ({"fail"} if no_gpu else set())
    assert infos["a"].status == infos["b"].status == infos["c"].status == "completed"
    assert infos["cut"].status == "incomplete" and "metrics.json unreadable" in infos["cut"].error
    # a damaged run still shows what the runner injected, from the executed notebook
    assert infos["cut"].differing == {"matmul_size": 64} and infos["cut"].profile == "tiny"
    assert infos["killed"].status == "incomplete" and "never finished" in infos["killed"].error
    if no_gpu:
        assert infos["fail"].status == "failed" and "require_gpu=True" in infos["fail"].error
    # parameters that differ, and speed-ups only among runs with equal parameters
    assert infos["c"].differing["matmul_size"] == 128 and infos["a"].differing["matmul_size"] == 64
    assert infos["c"].speedup == 1.0
    assert sorted([infos["a"].speedup, infos["b"].speedup])[0] == 1.0
    assert max(infos["a"].speedup, infos["b"].speedup) >= 1.0
    assert infos["a"].device.startswith(("CPU: ", "1 x ", "2 x "))
    assert set(infos["a"].phases) == {"probe", "matmul"}


def test_cli_writes_csv_and_markdown(runs_tree, tmp_path):
    root, no_gpu = runs_tree
    proc = coursekit_cli("report", str(root), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Runs that did not complete:" in proc.stdout and "00_gpu_check/cut: incomplete" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    by_run = {r["run"]: r for r in rows}
    assert by_run["a"]["status"] == "completed" and float(by_run["a"]["phase:probe"]) > 0
    assert float(by_run["a"]["total_s"]) > 0
    # the failing run set require_gpu=True, so that parameter differs too
    assert by_run["c"]["differing_params"] == "matmul_size=128" + (" require_gpu=False" if no_gpu else "")
    assert float(by_run["a"]["matmul_gflops.torch/cpu"]) > 0
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("| notebook | run | profile | status | device | params | probe | matmul | total |")
    if no_gpu:
        assert "| failed |" in md


def test_cli_errors(tmp_path):
    proc = coursekit_cli("report", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "runs folder not found" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = coursekit_cli("report", str(tmp_path / "empty"))
    assert proc.returncode == 1 and "no run folders" in proc.stderr


def test_pick_metric_prefers_headline_then_what_varies(runs_tree):
    infos = report.find_runs(runs_tree[0])
    assert report.pick_metric(infos) in {m for i in infos for m in i.metrics}
    infos[0].metrics["accuracy"] = 0.9
    assert report.pick_metric(infos) == "accuracy"


@pytest.mark.notebook
def test_notebook_05_draws_the_comparison(runs_tree, runs_dir):
    root, _ = runs_tree
    result = run_notebook(NOTEBOOKS / "05_results.ipynb", "tiny", {"runs_dir": str(root)},
                          runs_dir=runs_dir, name="r", quiet=True)
    assert result.ok, result.error
    data = result.metrics
    assert data["metrics"]["runs"] == len(report.find_runs(root))
    assert data["metrics"]["completed"] == 3
    assert any("cut: incomplete" in s for s in data["metrics"]["not_completed"])
    assert data["metrics"]["param"] == "matmul_size"
    for name in ("phases.png", "sweep.png", "report.csv", "report.md"):
        assert (result.run_dir / name).stat().st_size > 500, name
    assert "phases.png" in data["figures"] and "sweep.png" in data["figures"]


def test_markdown_has_one_table_per_notebook_with_its_own_columns(tmp_path):
    a = report.RunInfo(tmp_path / "02_x" / "1", "02_x", "1", "completed", profile="tiny",
                       phases={"fine-tune": 3.0}, metrics={"accuracy": 0.8}, total_s=4.0)
    b = report.RunInfo(tmp_path / "04_y" / "1", "04_y", "1", "completed", profile="tiny",
                       phases={"pretrain": 5.0}, metrics={"valid_loss_after": 6.7}, total_s=6.0)
    text = report.markdown([a, b])
    headers = [line for line in text.splitlines() if line.startswith("| notebook |")]
    assert len(headers) == 2
    assert "fine-tune" in headers[0] and "accuracy" in headers[0] and "pretrain" not in headers[0]
    assert "pretrain" in headers[1] and "valid_loss_after" in headers[1] and "accuracy" not in headers[1]
