"""The GPU check: its diagnosis on described situations, and the real check on this machine."""
import json

import pytest

from coursekit.harness import device as gpu
from ..conftest import coursekit_cli


def facts(**over):
    """A healthy CPU-only machine; each test changes what it needs."""
    base = {
        "python": "3.11.2", "executable": "/usr/bin/python3", "cpu": "Some CPU", "cpu_count": 2,
        "pythonnousersite": False, "nvidia_smi_on_path": False,
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


NO_GPU = "GPU が見えません: この計算機は CPU で計算します / No GPU is visible: this machine computes on the CPU"
KERAS3 = "tf.keras が Keras 3 です(keras-bert には Keras 2 が必要) / tf.keras is Keras 3, but keras-bert needs Keras 2"


def titles(findings, level=None):
    return [f["title"] for f in findings if level is None or f["level"] == level]


def test_cpu_machine_says_plainly_that_no_gpu_is_visible():
    found = gpu.diagnose(facts())
    assert titles(found, "error") == [] and titles(found, "warning") == []
    assert titles(found) == [NO_GPU]


def test_healthy_gpu_node_is_ok():
    found = gpu.diagnose(gpu_node())
    assert titles(found, "error") == []
    assert titles(found, "ok") == ["GPU が 1 枚見えています / 1 GPU(s) visible to the frameworks"]


def test_two_tensorflow_distributions_are_an_error_with_the_uninstall_fix():
    found = gpu.diagnose(facts(tf_distributions={"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}))
    err = [f for f in found if f["level"] == "error"]
    assert err[0]["title"] == ("TensorFlow が二重にインストールされています / "
                              "Several TensorFlow distributions are installed side by side")
    assert "pip uninstall -y tensorflow tensorflow-cpu" in err[0]["fix"]


def test_keras3_under_keras_bert_is_an_error():
    tf = dict(facts()["tensorflow"], keras_version="3.15.1")
    # tf-keras installed, TF_USE_LEGACY_KERAS=1 set, yet tf.keras is Keras 3 (set too late): error
    found = gpu.diagnose(facts(tensorflow=tf))
    assert titles(found, "error") == [KERAS3]
    assert "TF_USE_LEGACY_KERAS" in found[0]["fix"] and "import tensorflow" in found[0]["fix"]
    # without tf-keras installed at all, the same error, naming the package
    found = gpu.diagnose(facts(tf_keras=None))
    assert titles(found, "error") == [KERAS3] and "pip install tf-keras==" in found[0]["fix"]
    # only the variable missing in this process (a shell): a warning, the notebooks set it themselves
    found = gpu.diagnose(facts(tensorflow=tf, tf_use_legacy_keras=None))
    assert titles(found, "error") == []
    assert titles(found, "warning") == ["TF_USE_LEGACY_KERAS=1 が設定されていません(keras-bert には Keras 2 が必要) / "
                                        "TF_USE_LEGACY_KERAS is not set: tf.keras is Keras 3 here, keras-bert needs Keras 2"]
    assert "export TF_USE_LEGACY_KERAS=1" in found[0]["fix"]


def test_container_without_nv_is_an_error_naming_the_flag():
    sees_nothing = dict(libcuda=False, nvidia_smi=None,
                        torch=dict(gpu_node()["torch"], gpus=[]),
                        tensorflow=dict(gpu_node()["tensorflow"], gpus=[]))
    found = gpu.diagnose(gpu_node(**sees_nothing))
    err = [f for f in found if f["level"] == "error"]
    assert titles(err) == ["コンテナから NVIDIA ドライバが見えません(--nv の付け忘れ) / "
                           "GPU node, but the container cannot see the NVIDIA driver"]
    assert "--nv" in err[0]["fix"]


def test_cpu_only_torch_on_a_gpu_node_is_an_error():
    torch = {"installed": True, "version": "2.13.0+cpu", "built_with_cuda": False, "gpus": []}
    found = gpu.diagnose(gpu_node(torch=torch))
    assert titles(found, "error") == ["PyTorch が CPU 専用ビルドです / PyTorch is a CPU-only build on a GPU node"]


def test_cuda_build_that_sees_no_gpu_while_another_framework_does_is_an_error():
    """The original workshop's trap: torch sees the GPU, TensorFlow (its wheel replaced by an unpinned
    pip install) does not. Not ok, and the fix names the pinned reinstall and --nv."""
    tf_blind = dict(gpu_node()["tensorflow"], gpus=[], cuda_version="12.5.1")
    found = gpu.diagnose(gpu_node(tensorflow=tf_blind))
    err = [f for f in found if f["level"] == "error"]
    assert titles(err) == ["TensorFlow は CUDA 付きなのに GPU が見えていません / "
                           "TensorFlow is built with CUDA but sees no GPU"]
    assert "PyTorch sees 1" in err[0]["detail"] and "`tensorflow-cpu` over" in err[0]["detail"]
    assert "--nv" in err[0]["fix"] and "pinned" in err[0]["fix"]
    # and in Japanese, on the second line, with the same commands
    detail_ja, fix_ja = err[0]["detail"].split(" /\n")[1], err[0]["fix"].split(" /\n")[1]
    assert "PyTorch には 1 枚見えています" in detail_ja and "`tensorflow` の上に `tensorflow-cpu`" in detail_ja
    assert "`singularity exec --nv`" in fix_ja and "固定" in fix_ja
    assert titles(found, "ok") == []
    # the other way round, and both blind while the driver loads: one error per framework
    torch_blind = dict(gpu_node()["torch"], gpus=[])
    assert len(titles(gpu.diagnose(gpu_node(torch=torch_blind)), "error")) == 1
    both = titles(gpu.diagnose(gpu_node(torch=torch_blind, tensorflow=tf_blind)), "error")
    assert [t.split(" / ")[1] for t in both] == ["PyTorch is built with CUDA but sees no GPU",
                                                 "TensorFlow is built with CUDA but sees no GPU"]
    # a framework not installed in this image (one framework per image) is no finding at all
    only_torch = gpu.diagnose(gpu_node(tensorflow={"installed": False, "error": "ModuleNotFoundError"}))
    assert titles(only_torch, "error") == [] and titles(only_torch, "ok")


def test_gpu_present_that_no_framework_sees_without_other_cause_is_an_error():
    found = gpu.diagnose(gpu_node(torch=None, tensorflow=None))
    assert titles(found) == ["GPU はありますが、どのフレームワークにも見えていません / "
                             "A GPU is present, but neither framework sees it"]


def test_host_without_a_loadable_driver_is_an_error():
    found = gpu.diagnose(gpu_node(container=None, libcuda=False,
                                  torch=dict(gpu_node()["torch"], gpus=[]),
                                  tensorflow=dict(gpu_node()["tensorflow"], gpus=[])))
    assert [t.split(" / ")[1] for t in titles(found, "error")] == [
        "GPUs are present but the NVIDIA driver library is not loadable"]


def test_tensorflow_cpu_or_without_cuda_on_a_gpu_node():
    found = gpu.diagnose(gpu_node(tf_distributions={"tensorflow-cpu": "2.21.0"},
                                  tensorflow=dict(gpu_node()["tensorflow"], built_with_cuda=False, gpus=[])))
    assert [t.split(" / ")[1] for t in titles(found, "error")] == [
        "tensorflow-cpu is installed on a GPU node", "TensorFlow is built without CUDA on a GPU node"]
    no_cuda = found[1]
    assert no_cuda["detail"] == ("tensorflow 2.21.0: tf.test.is_built_with_cuda() is False. /\n"
                                 "tensorflow 2.21.0 は CUDA なしでビルドされているので、GPU を使えません"
                                 "(tf.test.is_built_with_cuda() が False です)。")
    assert "`tensorflow[and-cuda]` をインストールしてください" in no_cuda["fix"].split(" /\n")[1]
    assert "CPU 専用の TensorFlow は GPU を使いません" in found[0]["detail"]


def test_every_trap_is_a_small_function_and_titles_are_japanese_first():
    """Titles: Japanese / English. Details and fixes: English, then ' /' and the Japanese on a second line."""
    import inspect

    assert all(len(inspect.getsource(t).splitlines()) <= 60 for t in gpu.TRAPS)
    assert len(inspect.getsource(gpu.diagnose).splitlines()) <= 20
    situations = [facts(), gpu_node(), facts(cuda_visible_devices="", slurm_job_id="5"),
                  gpu_node(tensorflow=dict(gpu_node()["tensorflow"], gpus=[]), user_site_modules=["keras"]),
                  facts(tf_distributions={"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}, tf_keras=None),
                  gpu_node(container=None, libcuda=False, torch=None,
                           tensorflow=dict(gpu_node()["tensorflow"], built_with_cuda=False, gpus=[])),
                  gpu_node(libcuda=False, torch={"installed": True, "version": "2.13.0+cpu",
                                                 "built_with_cuda": False, "gpus": []}),
                  gpu_node(torch=None, tensorflow=None)]
    checked = 0
    for found in map(gpu.diagnose, situations):
        for f in found:
            japanese, english = f["title"].split(" / ", 1)
            assert any(ord(ch) > 0x3000 for ch in japanese) and english.isascii(), f["title"]
            for text in (f["detail"], f["fix"]):
                if text:
                    english, japanese = text.split(" /\n")
                    assert english.isascii() and any(ord(ch) > 0x3000 for ch in japanese), text
                    assert japanese.endswith("。"), text  # a sentence, です/ます
                    checked += 1
    assert checked >= 20


def test_cli_exits_1_on_an_error_finding(monkeypatch, capsys):
    blind = gpu_node(tensorflow=dict(gpu_node()["tensorflow"], gpus=[]))
    monkeypatch.setattr(gpu, "gather_facts", lambda frameworks: blind)
    assert gpu.main(["--frameworks", "tensorflow"]) == 1
    out = capsys.readouterr().out
    assert "[ERROR] TensorFlow は CUDA 付きなのに GPU が見えていません" in out
    # the detail and the fix: English, then the Japanese indented on the next line
    assert "\n         fix: `pip list | grep -i -e tensorflow -e nvidia` to see" in out
    assert "\n           `pip list | grep -i -e tensorflow -e nvidia` で何がインストールされたかを確かめ" in out
    monkeypatch.setattr(gpu, "gather_facts", lambda frameworks: gpu_node())
    assert gpu.main([]) == 0


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
    assert titles(found, "warning") == ["CUDA_VISIBLE_DEVICES='' がすべての GPU を隠しています / "
                                       "CUDA_VISIBLE_DEVICES='' hides every GPU"]
    assert "この Slurm ジョブは GPU を要求していません / This Slurm job did not request a GPU" in titles(found, "info")


def test_gathered_facts_on_this_machine_agree_with_the_device_summary():
    got = gpu.gather_facts(("torch",))
    assert got["torch"]["installed"] and got["tensorflow"] is None
    summary = gpu.device_summary()
    assert len(got["torch"]["gpus"]) == summary["gpu_count"] or got["nvidia_smi"] is not None
    if summary["gpu_count"] == 0:
        assert NO_GPU in titles(gpu.diagnose(got))


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
        assert "この計算機に NVIDIA の GPU がないだけです" in proc.stdout
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
