"""The GPU check: its diagnosis on described situations, and the real check on this machine."""
import json

import pytest

from coursekit.harness import device as gpu
from ..conftest import coursekit_cli


def facts(**over):
    """A healthy CPU-only machine; each test changes what it needs."""
    base = {
        "container": None, "slurm_job_id": None, "slurm_gpus": None, "cuda_visible_devices": None,
        "nvidia_smi": None, "dev_nvidia": [], "libcuda": False, "user_site_enabled": True,
        "user_site": "/home/u/.local/lib/python3.11/site-packages", "user_site_modules": [],
        "tf_distributions": {"tensorflow": "2.21.0"}, "tf_keras": "2.21.0", "keras": "3.15.1",
        "keras_bert": "0.89.0", "tf_use_legacy_keras": "1",
        "torch": {"installed": True, "version": "2.13.0", "built_with_cuda": True, "gpus": []},
        "tensorflow": {"installed": True, "version": "2.21.0", "built_with_cuda": True,
                       "keras_version": "2.21.0", "gpus": []},
    }
    base.update(over)
    return base


def gpu_node(**over):
    """A Slurm job on a GPU node whose software sees the GPU."""
    ok = dict(container="/images/transformers.sif", slurm_job_id="12", slurm_gpus="1",
              cuda_visible_devices="0", nvidia_smi="| NVIDIA-SMI 550 |", dev_nvidia=["/dev/nvidia0"],
              libcuda=True)
    ok["torch"] = {"installed": True, "version": "2.13.0", "built_with_cuda": True,
                   "gpus": [{"name": "Tesla V100S", "memory_gib": 32.0, "capability": "7.0"}]}
    ok["tensorflow"] = {"installed": True, "version": "2.21.0", "built_with_cuda": True,
                        "keras_version": "2.21.0", "gpus": ["Tesla V100S"]}
    ok.update(over)
    return facts(**ok)


def titles(findings, level=None):
    return [f["title"] for f in findings if level is None or f["level"] == level]


def test_cpu_machine_says_plainly_that_no_gpu_is_visible():
    found = gpu.diagnose(facts())
    assert titles(found, "error") == [] and titles(found, "warning") == []
    assert titles(found) == ["No GPU is visible: this machine computes on the CPU"]


def test_healthy_gpu_node_is_ok():
    found = gpu.diagnose(gpu_node())
    assert titles(found, "error") == []
    assert "1 GPU(s) visible to the frameworks" in titles(found, "ok")


def test_two_tensorflow_distributions_are_an_error_with_the_uninstall_fix():
    found = gpu.diagnose(facts(tf_distributions={"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}))
    err = [f for f in found if f["level"] == "error"]
    assert err[0]["title"].startswith("Several TensorFlow distributions")
    assert "pip uninstall -y tensorflow tensorflow-cpu" in err[0]["fix"]


def test_keras3_under_keras_bert_is_an_error():
    tf = dict(facts()["tensorflow"], keras_version="3.15.1")
    found = gpu.diagnose(facts(tensorflow=tf, tf_use_legacy_keras=None))
    assert "tf.keras is Keras 3, but keras-bert needs Keras 2" in titles(found, "error")
    assert any("TF_USE_LEGACY_KERAS=1" in f["fix"] for f in found)
    # without tf-keras installed at all, the same error
    assert "tf.keras is Keras 3, but keras-bert needs Keras 2" in titles(gpu.diagnose(facts(tf_keras=None)), "error")


def test_container_without_nv_is_an_error_naming_the_flag():
    sees_nothing = dict(libcuda=False, nvidia_smi=None,
                        torch=dict(gpu_node()["torch"], gpus=[]),
                        tensorflow=dict(gpu_node()["tensorflow"], gpus=[]))
    found = gpu.diagnose(gpu_node(**sees_nothing))
    err = [f for f in found if f["level"] == "error"]
    assert err[0]["title"] == "GPU node, but the container cannot see the NVIDIA driver"
    assert "--nv" in err[0]["fix"]


def test_cpu_only_torch_on_a_gpu_node_is_an_error():
    torch = {"installed": True, "version": "2.13.0+cpu", "built_with_cuda": False, "gpus": []}
    found = gpu.diagnose(gpu_node(torch=torch))
    assert "PyTorch is a CPU-only build on a GPU node" in titles(found, "error")


def test_user_site_packages_leaking_into_a_container():
    found = gpu.diagnose(gpu_node(user_site_modules=["keras", "tensorflow"]))
    leak = [f for f in found if "~/.local" in f["title"]]
    assert leak and leak[0]["level"] == "error" and "PYTHONNOUSERSITE=1" in leak[0]["fix"]
    # outside a container it is a warning; with PYTHONNOUSERSITE set (site disabled) nothing
    assert [f["level"] for f in gpu.diagnose(facts(user_site_modules=["torch"])) if "~/.local" in f["title"]] == ["warning"]
    assert not [f for f in gpu.diagnose(facts(user_site_enabled=False, user_site_modules=["torch"]))
                if "~/.local" in f["title"]]


def test_hidden_devices_and_a_job_without_gpus():
    found = gpu.diagnose(facts(cuda_visible_devices="", slurm_job_id="5"))
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in titles(found, "warning")
    assert "This Slurm job did not request a GPU" in titles(found, "info")


def test_gathered_facts_on_this_machine_agree_with_the_device_summary():
    got = gpu.gather_facts(("torch",))
    assert got["torch"]["installed"] and got["tensorflow"] is None
    summary = gpu.device_summary()
    assert len(got["torch"]["gpus"]) == summary["gpu_count"] or got["nvidia_smi"] is not None
    if summary["gpu_count"] == 0:
        assert "No GPU is visible: this machine computes on the CPU" in titles(gpu.diagnose(got))


def test_matmul_benchmark_on_cpu():
    t = gpu.matmul_benchmark("torch", "cpu", 128, repeats=2)
    assert t["seconds"] > 0 and t["gflops"] > 0.01 and t["size"] == 128
    with pytest.raises(ValueError, match="unknown framework 'jax'"):
        gpu.matmul_benchmark("jax", "cpu", 8)


def test_cli_runs_cleanly_and_says_no_gpu():
    proc = coursekit_cli("gpu", "--frameworks", "torch,tensorflow", "--matmul", "128")
    assert proc.returncode == 0, proc.stderr
    assert "torch 2." in proc.stdout and "tensorflow 2." in proc.stdout
    if gpu.device_summary()["gpu_count"] == 0:
        assert "No GPU is visible" in proc.stdout
    assert "matmul torch      cpu" in proc.stdout


def test_cli_json_and_require_gpu():
    proc = coursekit_cli("gpu", "--frameworks", "torch", "--json")
    report = json.loads(proc.stdout)
    assert set(report) == {"facts", "findings", "matmul"}
    if gpu.device_summary()["gpu_count"] == 0:
        proc = coursekit_cli("gpu", "--frameworks", "torch", "--require-gpu")
        assert proc.returncode == 1 and "no GPU visible" in proc.stderr


def test_cli_refuses_an_unknown_framework():
    proc = coursekit_cli("gpu", "--frameworks", "jax")
    assert proc.returncode == 2 and "unknown framework(s): jax" in proc.stderr
