import json

import numpy as np
import pytest

from coursekit.harness import record as metrics, runs
from coursekit.harness.timing import format_seconds


def test_run_name_follows_slurm_ids_and_falls_back_to_a_timestamp():
    assert runs.run_name({"SLURM_JOB_ID": "42"}) == "42"
    assert runs.run_name({"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40",
                          "SLURM_ARRAY_TASK_ID": "2"}) == "40_2"
    stamp = runs.run_name({})
    assert len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit()


def test_run_folders_are_never_reused(tmp_path):
    first = runs.new_run_dir("nb", tmp_path, "7")
    second = runs.new_run_dir("nb", tmp_path, "7")
    third = runs.new_run_dir("nb", tmp_path, "7")
    assert [p.name for p in (first, second, third)] == ["7", "7-2", "7-3"]
    assert all(p.is_dir() and p.parent == tmp_path / "nb" for p in (first, second, third))


def test_runs_root_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUNS", str(tmp_path / "elsewhere"))
    assert runs.runs_root() == tmp_path / "elsewhere"


def test_open_run_continues_the_runners_record_with_phases_metrics_and_status(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    metrics.write_json(folder / "metrics.json", metrics.new_record("00_gpu_check", "tiny", {"matmul_size": 32}))
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(folder))
    run = metrics.open_run("00_gpu_check")
    assert run.dir == folder
    first = metrics.read_metrics(run.dir)
    assert first["status"] == "running" and first["params"]["matmul_size"] == 32
    assert first["device"]["cpu_count"] >= 1 and first["device"]["kind"] in ("cpu", "gpu")

    with run.phase("work"):
        sum(range(10000))
    with run.phase("work"):  # a repeated phase adds up
        pass
    run.log(accuracy=np.float32(0.75), curve=np.arange(3), nan=float("nan"))
    data = metrics.read_metrics(run.dir)
    assert data["phases"]["work"] >= 0
    assert data["metrics"] == {"accuracy": 0.75, "curve": [0, 1, 2], "nan": None}
    assert data["status"] == "running"  # a killed job keeps this, with what it had measured

    final = run.finish()
    on_disk = metrics.read_metrics(run.dir)
    assert final["status"] == on_disk["status"] == "completed"
    assert on_disk["elapsed_s"] >= on_disk["phases"]["work"]
    assert not list(run.dir.glob(".*tmp*")), "atomic writes leave no temporary files"


def test_save_figure_writes_a_png_and_lists_it(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    run = metrics.open_run("00_gpu_check")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    path = run.save_figure(fig, "curve")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "metrics.json").read_text())["figures"] == ["curve.png"]


def test_open_run_in_jupyterlab_makes_its_own_folder_and_records_the_cells_values(runs_dir, monkeypatch):
    import __main__

    monkeypatch.setattr(__main__, "matmul_size", 64, raising=False)
    monkeypatch.setattr(__main__, "profile", "full", raising=False)
    run = metrics.open_run("00_gpu_check")
    assert run.dir.parent == runs_dir / "00_gpu_check"
    data = metrics.read_metrics(run.dir)
    assert data["profile"] == "full" and data["params"]["matmul_size"] == 64


def test_plot_phases_saves_the_chart(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    run = metrics.open_run("demo")
    with run.phase("load"):
        pass
    with run.phase("train"):
        sum(range(100000))
    fig = run.plot_phases()
    assert (tmp_path / "phases.png").stat().st_size > 1000 and "phases.png" in run.data["figures"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["load", "train"]


def test_a_report_notebook_keeps_its_own_runs_out_of_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    run = metrics.open_run("05_results", in_report=False)
    assert metrics.read_metrics(run.dir)["in_report"] is False


@pytest.mark.parametrize("seconds,text", [(3.14159, "3.1 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_log_curve_keeps_points_for_later_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))
    run = metrics.open_run("00_gpu_check")
    run.log_curve("loss", [{"step": 1, "loss": np.float64(2.5)}, {"step": 2, "loss": 2.0}])
    assert metrics.read_metrics(tmp_path)["curves"]["loss"] == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]


def test_run_folders_never_leave_the_runs_folder(tmp_path):
    from coursekit.harness import runs

    root = tmp_path / "runs"
    for bad in ("../x", "/abs", "..", ".", "a/b", "a\\b", "~x"):
        with pytest.raises(runs.RunFolderError, match="not a plain folder name"):
            runs.new_run_dir("nb", root, bad)
        with pytest.raises(runs.RunFolderError):
            runs.new_run_dir(bad, root, "ok")
    assert runs.new_run_dir("nb", root, "ok") == root / "nb" / "ok"
    (tmp_path / "file").write_text("")
    with pytest.raises(runs.RunFolderError, match="is a file"):
        runs.new_run_dir("nb", tmp_path / "file", "x")
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
