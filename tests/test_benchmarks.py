"""benchmarks/gpu.py: the GPU script runs end to end on a CPU with --cpu-smoke (tiny shapes, seconds),
writes its JSON + Markdown where told (never into benchmarks/results), and knows the devices' peaks."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


def load_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peaks_by_device_name():
    gpu = load_gpu()
    assert gpu.peak_flops("NVIDIA H200") == 989e12 and gpu.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu.peak_flops("NVIDIA H100 PCIe") == 756e12 and gpu.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu.peak_flops("Tesla V100-SXM2-32GB") == 125e12
    assert gpu.peak_flops("Some Future GPU") is None and gpu.peak_flops(None) is None
    assert gpu.slug("NVIDIA H200") == "h200" and gpu.slug("NVIDIA A100-SXM4-80GB") == "a100-sxm4-80gb"


def test_flops_count_six_params_tokens():
    pytest.importorskip("transformers")
    gpu = load_gpu()
    model = gpu.build("mlm", "eager", smoke=True)
    params = sum(p.numel() for p in model.parameters())
    dense, attn = gpu.flops_per_step(model, "mlm", 2, 16, 0)
    assert dense == 6 * params * 2 * 16 and attn == 12 * 2 * 32 * 16 * 2 * 16
    bart = gpu.build("seq2seq", "sdpa", smoke=True)
    dense, _ = gpu.flops_per_step(bart, "seq2seq", 2, 16, 16)
    assert 0 < dense < 6 * sum(p.numel() for p in bart.parameters()) * 2 * 32, "each part counts its own tokens"


def test_cpu_smoke_runs_every_workload_and_mode(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu-cpu-smoke.json").read_text())
    rows = result["results"]
    assert [(r["workload"], r["precision"], r["attention"]) for r in rows[:4]] == [
        ("bert-mlm-128", "fp32", "eager"), ("bert-mlm-128", "fp32", "sdpa"),
        ("bert-mlm-128", "bf16", "eager"), ("bert-mlm-128", "bf16", "sdpa")]
    assert {r["workload"] for r in rows} == {"bert-mlm-128", "bert-mlm-512", "bert-cls-512", "bart-base"}
    assert len(rows) == 16 and not [r for r in rows if "error" in r]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["steps_timed"] == 2 and r["model_flops_per_step"] > 0
        assert r["mfu"] is None and r["peak_memory_gib"] is None  # no GPU, no known peak
    assert result["cpu_smoke"] is True and "6 x parameters x tokens" in result["flops_formula"]
    assert result["command"].endswith("--cpu-smoke --out " + str(tmp_path)) and result["versions"]["torch"]
    md = (tmp_path / "gpu-cpu-smoke.md").read_text()
    assert "| bart-base | bf16 | sdpa |" in md and "CPU smoke run" in md


def test_cpu_smoke_without_out_writes_to_a_temp_folder():
    before = sorted((ROOT / "benchmarks" / "results").iterdir())
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--only", "bert-cls-512", "--steps", "1",
                           "--warmup", "0"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = Path(proc.stdout.strip().splitlines()[-1].split()[1])
    assert written.is_file() and str(written).startswith(tempfile.gettempdir())
    assert sorted((ROOT / "benchmarks" / "results").iterdir()) == before
    assert len(json.loads(written.read_text())["results"]) == 4
    shutil.rmtree(written.parent)


def test_without_a_gpu_the_full_run_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "none"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2 and "--cpu-smoke" in proc.stderr


def load_measure():
    spec = importlib.util.spec_from_file_location("bench_measure", ROOT / "benchmarks" / "measure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_kept_from_an_earlier_run_name_that_run(tmp_path):
    """`--only` runs keep the other figures; each kept figure names the run that measured it, also after
    a second `--only` run (the first file says "this run" for its own figures)."""
    measure = load_measure()
    first = measure.Results("demo", tmp_path)
    first.add("a", {"s": 1.0})
    first.add("b", {"s": 2.0})
    first.data["load_average_end"] = [0.5, 0.5, 0.5]
    (tmp_path / "demo.json").write_text(json.dumps(first.data))
    second = measure.Results("demo", tmp_path, keep=True)
    second.add("b", {"s": 3.0})
    assert second.data["figures"] == {"a": {"s": 1.0}, "b": {"s": 3.0}}
    assert second.data["measured_by"]["b"] == "this run"
    assert second.data["measured_by"]["a"]["date"] == first.data["date"]
    second.data["load_average_end"] = [0.5, 0.5, 0.5]
    (tmp_path / "demo.json").write_text(json.dumps(second.data))
    third = measure.Results("demo", tmp_path, keep=True)
    assert third.data["measured_by"]["a"]["date"] == first.data["date"]
    assert third.data["measured_by"]["b"]["commit"] == second.data["commit"]
    third.data["load_average_end"] = [0.5, 0.5, 0.5]
    assert "Figures kept from an earlier run" in "\n".join(third.header("demo"))


def load_livedoor():
    spec = importlib.util.spec_from_file_location("bench_livedoor", ROOT / "benchmarks" / "livedoor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.notebook
def test_the_livedoor_benchmark_times_notebook_02s_own_cells(tmp_path):
    """benchmarks/livedoor.py runs notebook 02's own cells (by cell id) on a generated corpus: its model, its
    warm-up schedule, its compile and fit cells; kerasbert.build_classifier (notebook 04's loading check) builds
    the same model as notebook 02's model cell."""
    from coursekit.lessons import kerasbert  # first: it asks for Keras 2 (TF_USE_LEGACY_KERAS) before keras-bert loads

    from .corpora import write_sample_corpus

    pytest.importorskip("keras_bert")

    bench = load_livedoor()
    text = write_sample_corpus(tmp_path / "text", per_category=12)
    ns = bench.tiny_setup(text, tmp_path, epochs=1, seq_len=32)
    model = bench.new_model(ns)
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "WarmupLinearDecay", "the notebook's own schedule class"
    assert schedule["config"]["total_steps"] == -(-len(ns["train_y"]) // ns["global_batch"])
    assert model.loss == "sparse_categorical_crossentropy" and model.output_shape == (None, 9)
    same = kerasbert.build_classifier(ns["files"]["config"], ns["files"]["checkpoint"], 9, seq_len=32)
    assert same.get_config()["layers"] == model.get_config()["layers"], "build_classifier drifted from notebook 02"

    figures = bench.fine_tune(ns, rounds=1)
    assert set(figures["train_s"]) == {"kit", "plain", "kit_autotune"} and figures["ratio_kit_over_plain"] > 0
    assert figures["rows"] == len(ns["train_y"]) and figures["seq_len"] == 32
    assert ns["history"].history["loss"], "the notebook's fit cell ran"
