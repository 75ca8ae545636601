"""`coursekit report` and notebook 05 on run folders made by real tiny executions, plus damaged ones."""
import csv
import json
import shutil

import pytest

from coursekit.harness import report
from coursekit.harness.runner import run_notebook

from ..conftest import ROOT, coursekit_cli

WORK = ROOT / "tests" / "notebooks" / "timed_work.ipynb"


@pytest.fixture(scope="module")
def runs_tree(tmp_path_factory):
    """Real runs of a small timed notebook (two alike, one with another size, one failing), a run
    cut short (metrics.json truncated) and one killed mid-run (status still "running")."""
    root = tmp_path_factory.mktemp("report") / "runs"
    for name, params in (("a", {"size": 64}), ("b", {"size": 64}), ("c", {"size": 128})):
        assert run_notebook(WORK, None, params, runs_dir=root, name=name, quiet=True).ok
    failed = run_notebook(WORK, None, {"size": 64, "fail": True}, runs_dir=root, name="fail", quiet=True)
    assert not failed.ok
    no_gpu = True  # the failing run is always there
    nb_dir = root / "timed_work"
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
    varying = {"size": 64, "fail": False}
    assert infos["cut"].differing == varying and infos["cut"].profile == "full"
    assert infos["killed"].status == "incomplete" and "never finished" in infos["killed"].error
    if no_gpu:
        assert infos["fail"].status == "failed" and "fail=True" in infos["fail"].error
    # parameters that differ, and speed-ups only among runs with equal parameters
    assert infos["c"].differing["size"] == 128 and infos["a"].differing["size"] == 64
    assert infos["c"].speedup == 1.0
    assert sorted([infos["a"].speedup, infos["b"].speedup])[0] == 1.0
    assert max(infos["a"].speedup, infos["b"].speedup) >= 1.0
    assert infos["a"].device.startswith(("CPU: ", "1 x ", "2 x "))
    assert set(infos["a"].phases) == {"prepare", "compute"}


def test_cli_writes_csv_and_markdown(runs_tree, tmp_path):
    root, no_gpu = runs_tree
    proc = coursekit_cli("report", str(root), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Runs that did not complete:" in proc.stdout and "timed_work/cut: incomplete" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    by_run = {r["run"]: r for r in rows}
    assert by_run["a"]["status"] == "completed" and float(by_run["a"]["phase:compute"]) > 0
    assert float(by_run["a"]["total_s"]) > 0
    # the failing run set require_gpu=True, so that parameter differs too
    assert by_run["c"]["differing_params"] == "fail=False size=128"
    assert float(by_run["a"]["throughput.python/cpu"]) > 0
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("| notebook | run | profile | status | warnings | device | params | prepare | compute | total |")
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


def test_a_run_whose_data_differs_from_the_release_never_looks_normal(runs_tree, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(runs_tree[0] / "timed_work" / "a", root / "timed_work" / "warned")
    shutil.copytree(runs_tree[0] / "timed_work" / "b", root / "timed_work" / "clean")
    shutil.copytree(runs_tree[0] / "timed_work" / "a", root / "timed_work" / "killed_warned")
    entry = {"source": "livedoor /data/text", "message": "the corpus differs from the release: 7 missing "
             "categor(ies)", "counts": {"missing categories": 7}}
    path = root / "timed_work" / "warned" / "metrics.json"
    data = json.loads(path.read_text())
    data["warnings"] = [entry]  # what the runner copies from the run folder's warnings.json
    path.write_text(json.dumps(data))
    (root / "timed_work" / "killed_warned" / "metrics.json").unlink()  # killed before the runner copied it
    (root / "timed_work" / "killed_warned" / "warnings.json").write_text(json.dumps([entry]))
    infos = {i.run: i for i in report.find_runs(root)}
    assert infos["warned"].warnings == [entry] and infos["killed_warned"].warnings == [entry]
    assert infos["clean"].warnings == []
    text = report.markdown(list(infos.values()))
    row = next(line for line in text.splitlines() if line.startswith("| timed_work | warned |"))
    assert "| completed | ⚠ 1 |" in row
    assert "- timed_work/warned: ⚠ livedoor /data/text: the corpus differs from the release" in text
    columns, rows = report.table(list(infos.values()))
    assert columns.index("warnings") == columns.index("status") + 1
    by_run = {r["run"]: r for r in rows}
    assert by_run["warned"]["warnings"] == 1 and by_run["clean"]["warnings"] == 0
    assert "7 missing" in by_run["warned"]["warning_messages"]
