"""The GPU check: is TensorFlow / PyTorch really on the GPU (inside the container)?

Three steps, each usable alone:
    facts = gather_facts()          # what this process sees: packages, frameworks, devices, env
    findings = diagnose(facts)      # the classic traps (TRAPS: one small function each), with fixes
    matmul_benchmark("torch", "cpu", 1024)   # a timed matrix multiply

`python -m coursekit gpu` prints the same report for a shell or a container's %test section.
"""
from __future__ import annotations

import ctypes
import importlib.metadata as md
import os
import platform
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

# Distributions that all install the `tensorflow` package folder. Two of them at once overwrite
# each other's files: the one installed last wins, often a CPU build shadowing the GPU one.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tensorflow-macos", "tf-nightly", "tf-nightly-cpu", "tf-nightly-gpu",
                    "intel-tensorflow")
# Modules whose copy in ~/.local would shadow the container's.
WATCHED_MODULES = ("torch", "tensorflow", "keras", "tf_keras", "keras_bert", "transformers",
                   "numpy", "datasets")
CONTAINER_ENV = ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER")
SLURM_GPU_ENV = ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS")


# ----------------------------------------------------------------------------- small probes
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def nvidia_smi(args: tuple[str, ...] = ()) -> str | None:
    """nvidia-smi's output, or None when it is absent or fails (no driver visible)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def libcuda_loadable() -> bool:
    """Can the NVIDIA driver library be loaded? (Inside a container only with --nv.)"""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def smi_gpu_names() -> list[str]:
    out = nvidia_smi(("--query-gpu=index,name", "--format=csv,noheader"))
    if not out:
        return []
    rows = [line.split(",", 1) for line in out.strip().splitlines() if "," in line]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        keep = {v.strip() for v in visible.split(",") if v.strip()}
        rows = [r for r in rows if r[0].strip() in keep]
    return [name.strip() for _, name in rows]


def device_summary() -> dict:
    """What this run computes on, cheaply: CPU model and count, GPU names (via a framework that is
    already imported, else nvidia-smi). Goes into every metrics.json."""
    gpus: list[str] = []
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if not gpus:
        gpus = smi_gpu_names()
    return {
        "kind": "gpu" if gpus else "cpu",
        "cpu": cpu_model(),
        "cpu_count": cpu_count(),
        "gpus": gpus,
        "gpu_count": len(gpus),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _user_site_modules() -> list[str]:
    """Watched modules that exist in the user site-packages (~/.local/lib/pythonX.Y/site-packages)."""
    user_site = Path(site.getusersitepackages())
    if not user_site.is_dir():
        return []
    return sorted(m for m in WATCHED_MODULES
                  if (user_site / m).is_dir() or (user_site / f"{m}.py").is_file())


# ----------------------------------------------------------------------------- frameworks
def torch_facts() -> dict:
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install raising anything
        return {"installed": False, "error": f"{type(exc).__name__}: {exc}"}
    info = {
        "installed": True,
        "version": torch.__version__,
        "built_with_cuda": torch.version.cuda is not None,
        "cuda_version": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn_version": None,
        "gpus": [],
    }
    if info["cuda_available"]:
        info["cudnn_version"] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                 "capability": f"{p.major}.{p.minor}"})
    return info


def tensorflow_facts() -> dict:
    try:
        import tensorflow as tf
    except Exception as exc:
        return {"installed": False, "error": f"{type(exc).__name__}: {exc}"}
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # do not grab all GPU memory: PyTorch may run in the same process
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised
    build = dict(tf.sysconfig.get_build_info())
    try:  # touching tf.keras loads it: Keras 2 (tf_keras) when TF_USE_LEGACY_KERAS=1, else Keras 3
        keras_module = tf.keras
        if keras_module.__name__.startswith("tf_keras"):
            import tf_keras

            keras_version = tf_keras.__version__
        else:
            keras_version = getattr(keras_module, "__version__", "unknown")
    except Exception as exc:
        keras_version = f"unavailable ({type(exc).__name__}: {exc})"
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:
            names.append(gpu.name)
    return {
        "installed": True,
        "version": tf.__version__,
        "built_with_cuda": tf.test.is_built_with_cuda(),
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
        "keras_version": keras_version,
        "gpus": names,
    }


def gather_facts(frameworks: tuple[str, ...] = ("torch", "tensorflow")) -> dict:
    """Everything the diagnosis needs, as plain data (tests build such dicts by hand)."""
    smi = nvidia_smi()
    facts = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": cpu_count(),
        "container": next((os.environ[k] for k in CONTAINER_ENV if os.environ.get(k)), None),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_gpus": next((os.environ[k] for k in SLURM_GPU_ENV if os.environ.get(k)), None),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "nvidia_smi": smi,
        "nvidia_smi_on_path": shutil.which("nvidia-smi") is not None,
        "dev_nvidia": sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*")),
        "libcuda": libcuda_loadable(),
        "pythonnousersite": bool(os.environ.get("PYTHONNOUSERSITE")),
        "user_site_enabled": bool(site.ENABLE_USER_SITE),
        "user_site": site.getusersitepackages(),
        "user_site_modules": _user_site_modules() if site.ENABLE_USER_SITE else [],
        "tf_distributions": {d: v for d in TF_DISTRIBUTIONS if (v := installed(d))},
        "tf_keras": installed("tf-keras"),
        "keras": installed("keras"),
        "keras_bert": installed("keras-bert"),
        "tf_use_legacy_keras": os.environ.get("TF_USE_LEGACY_KERAS"),
        "torch": torch_facts() if "torch" in frameworks else None,
        "tensorflow": tensorflow_facts() if "tensorflow" in frameworks else None,
    }
    return facts


# ----------------------------------------------------------------------------- diagnosis
# Each trap is one small function: facts -> findings (usually none or one). Titles are what a student
# reads in class: Japanese first, then English; details and fixes name the exact commands, in English,
# then in Japanese on a second line (`_bi`), as the kit's other long messages do.
FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow"}


def _finding(level: str, title: str, detail: str = "", fix: str = "") -> dict:
    return {"level": level, "title": title, "detail": detail, "fix": fix}


def _bi(english: str, japanese: str) -> str:
    """'English /' and the Japanese on the next line (format_report indents it)."""
    return f"{english} /\n{japanese}"


def gpu_hardware_expected(facts: dict) -> bool:
    """Signs that this node has (or this job was given) NVIDIA GPUs, whatever the software sees."""
    return bool(facts.get("nvidia_smi") or facts.get("dev_nvidia") or facts.get("slurm_gpus"))


def visible_gpu_count(facts: dict) -> int:
    counts = [len((facts.get(fw) or {}).get("gpus") or []) for fw in FRAMEWORK_NAMES]
    return max(counts)


def _frameworks_seeing_gpus(facts: dict) -> list[str]:
    return [fw for fw in FRAMEWORK_NAMES if (facts.get(fw) or {}).get("gpus")]


def trap_two_tensorflows(facts: dict) -> list[dict]:
    """Two TensorFlow distributions over one folder, or tensorflow-cpu on a GPU node."""
    dists = facts.get("tf_distributions") or {}
    if len(dists) > 1:
        listed = ", ".join(f"{k}=={v}" for k, v in dists.items())
        return [_finding(
            "error", "TensorFlow が二重にインストールされています / "
                     "Several TensorFlow distributions are installed side by side",
            _bi(f"{listed} all write the same `tensorflow` folder; whichever was installed last wins, "
                "often a CPU-only build over the GPU one.",
                f"{listed} はどれも同じ `tensorflow` フォルダに書き込みます。最後にインストールしたものが残るので、"
                "GPU 版の上に CPU 専用版が上書きされていることがよくあります。"),
            _bi("Uninstall all of them, then install exactly one: `pip uninstall -y "
                + " ".join(dists) + " && pip install tensorflow==<pinned version>` "
                "(use `tensorflow`, never `tensorflow-cpu`, with tf-keras).",
                "すべてアンインストールしてから、1 つだけインストールしてください(コマンドは上の行)。"
                "tf-keras と一緒に使うのは `tensorflow` で、`tensorflow-cpu` は使いません。"))]
    if "tensorflow-cpu" in dists and gpu_hardware_expected(facts):
        return [_finding(
            "error", "GPU ノードに tensorflow-cpu が入っています / tensorflow-cpu is installed on a GPU node",
            _bi("The CPU-only TensorFlow never uses the GPU.",
                "CPU 専用の TensorFlow は GPU を使いません。"),
            _bi("`pip uninstall -y tensorflow-cpu && pip install tensorflow==<pinned version>`.",
                "tensorflow-cpu をアンインストールして、固定したバージョンの tensorflow をインストールしてください"
                "(コマンドは上の行)。"))]
    return []


def trap_keras3_under_keras_bert(facts: dict) -> list[dict]:
    """keras-bert installed, but tf.keras is Keras 3: an error when tf-keras is missing or the switch
    did not take; a warning when only TF_USE_LEGACY_KERAS is unset in this process (a notebook that
    sets it above `import tensorflow`, as the kit's do, is fine)."""
    keras_version = str((facts.get("tensorflow") or {}).get("keras_version") or "")
    if not facts.get("keras_bert") or (not keras_version.startswith("3") and facts.get("tf_keras")):
        return []
    detail = _bi(f"tf.keras version: {keras_version or 'unknown'}; tf-keras installed: "
                 f"{facts.get('tf_keras') or 'no'}; TF_USE_LEGACY_KERAS={facts.get('tf_use_legacy_keras')}. "
                 "keras-bert then fails with 'Iterating over a symbolic KerasTensor is not supported'.",
                 f"tf.keras のバージョン: {keras_version or '不明'}、tf-keras: "
                 f"{facts.get('tf_keras') or 'インストールされていません'}、"
                 f"TF_USE_LEGACY_KERAS={facts.get('tf_use_legacy_keras')}。このままでは keras-bert が "
                 "'Iterating over a symbolic KerasTensor is not supported' というエラーで止まります。")
    fix_en = ("Set TF_USE_LEGACY_KERAS=1 before tf.keras is first used: `os.environ[\"TF_USE_LEGACY_KERAS\"] "
              "= \"1\"` above `import tensorflow` (the kit's notebooks do it in a visible cell; the kit's "
              "containers set it in %environment; in a shell: `export TF_USE_LEGACY_KERAS=1`).")
    fix_ja = ("tf.keras を初めて使う前に TF_USE_LEGACY_KERAS=1 を設定してください。`import tensorflow` より上で "
              "`os.environ[\"TF_USE_LEGACY_KERAS\"] = \"1\"` とします(教材のノートブックは見えるセルでこうしています。"
              "教材のコンテナは %environment で設定しています。シェルでは `export TF_USE_LEGACY_KERAS=1` です)。")
    if facts.get("tf_keras") and facts.get("tf_use_legacy_keras") != "1":
        return [_finding(
            "warning", "TF_USE_LEGACY_KERAS=1 が設定されていません(keras-bert には Keras 2 が必要) / "
                       "TF_USE_LEGACY_KERAS is not set: tf.keras is Keras 3 here, keras-bert needs Keras 2",
            detail, _bi(fix_en, fix_ja))]
    return [_finding(
        "error", "tf.keras が Keras 3 です(keras-bert には Keras 2 が必要) / "
                 "tf.keras is Keras 3, but keras-bert needs Keras 2",
        detail, _bi("Install tf-keras with the same version as TensorFlow (`pip install tf-keras==<TensorFlow's "
                    "version>`; never `pip install keras` unpinned). " + fix_en,
                    "TensorFlow と同じバージョンの tf-keras をインストールしてください(`pip install "
                    "tf-keras==<TensorFlow's version>`。バージョンを指定しない `pip install keras` は使いません)。"
                    + fix_ja))]


def trap_driver_not_visible(facts: dict) -> list[dict]:
    """GPU hardware, but libcuda.so.1 cannot be loaded: a container started without --nv, or no driver."""
    if not gpu_hardware_expected(facts) or facts.get("libcuda"):
        return []
    if facts.get("container"):
        return [_finding(
            "error", "コンテナから NVIDIA ドライバが見えません(--nv の付け忘れ) / "
                     "GPU node, but the container cannot see the NVIDIA driver",
            _bi(f"Inside {facts['container']}: Slurm GPUs={facts.get('slurm_gpus')}, "
                f"/dev/nvidia*={facts.get('dev_nvidia') or 'none'}, libcuda.so.1 not loadable.",
                f"{facts['container']} の中から NVIDIA ドライバのライブラリ libcuda.so.1 を読み込めません"
                "(上の行は Slurm の GPU と /dev/nvidia* の様子です)。"),
            _bi("Start the container with `--nv`: `singularity exec --nv image.sif ...` "
                "(the kit's sbatch scripts do).",
                "コンテナは `--nv` を付けて起動してください: `singularity exec --nv image.sif ...`"
                "(教材の sbatch スクリプトは付けています)。"))]
    return [_finding(
        "error", "GPU はありますが NVIDIA ドライバを読み込めません / "
                 "GPUs are present but the NVIDIA driver library is not loadable",
        _bi("libcuda.so.1 could not be loaded on the host.",
            "ホストで libcuda.so.1(NVIDIA ドライバのライブラリ)を読み込めませんでした。"),
        _bi("Ask the admins whether the driver is installed on this node, or load the CUDA module.",
            "このノードにドライバが入っているかを管理者に確かめるか、CUDA のモジュールを読み込んでください。"))]


def trap_cpu_only_builds(facts: dict) -> list[dict]:
    """A framework built without CUDA on a GPU node: it can never use the GPU."""
    if not gpu_hardware_expected(facts):
        return []
    out = []
    torch, tf = facts.get("torch") or {}, facts.get("tensorflow") or {}
    if torch.get("installed") and not torch.get("built_with_cuda"):
        out.append(_finding(
            "error", "PyTorch が CPU 専用ビルドです / PyTorch is a CPU-only build on a GPU node",
            _bi(f"torch {torch.get('version')} has no CUDA (torch.version.cuda is None).",
                f"torch {torch.get('version')} には CUDA が入っていないので、GPU を使えません"
                "(torch.version.cuda が None です)。"),
            _bi("Install the CUDA build of the pinned version (e.g. from the PyTorch wheel index for "
                "your CUDA version), or use the kit's transformers container built from defs/.",
                "固定したバージョンの CUDA 版をインストールするか(たとえば、使う CUDA のバージョンに合った "
                "PyTorch の wheel インデックスから)、defs/ から作った教材の transformers コンテナを使ってください。")))
    if tf.get("installed") and not tf.get("built_with_cuda"):
        out.append(_finding(
            "error", "TensorFlow が CUDA なしでビルドされています / TensorFlow is built without CUDA on a GPU node",
            _bi(f"tensorflow {tf.get('version')}: tf.test.is_built_with_cuda() is False.",
                f"tensorflow {tf.get('version')} は CUDA なしでビルドされているので、GPU を使えません"
                "(tf.test.is_built_with_cuda() が False です)。"),
            _bi("Use the keras-bert container (TensorFlow GPU base image) or install `tensorflow[and-cuda]`.",
                "keras-bert のコンテナ(TensorFlow の GPU 版のベースイメージ)を使うか、"
                "`tensorflow[and-cuda]` をインストールしてください。")))
    return out


def trap_cuda_build_sees_no_gpu(facts: dict) -> list[dict]:
    """A framework built with CUDA sees no GPU although one is present (another framework sees it,
    or the driver is loadable). The original workshop's trap: an unpinned install left a TensorFlow
    that could not use the GPU (a CPU build over the GPU one in the same `tensorflow/` folder, or a
    build for a CUDA the image lacks), and training ran on the CPU without a word."""
    seeing = _frameworks_seeing_gpus(facts)
    if not seeing and not (gpu_hardware_expected(facts) and facts.get("libcuda")):
        return []  # no GPU here, or the driver trap above already explains it
    out = []
    for fw, name in FRAMEWORK_NAMES.items():
        info = facts.get(fw) or {}
        if not (info.get("installed") and info.get("built_with_cuda")) or info.get("gpus"):
            continue
        others = ", ".join(f"{FRAMEWORK_NAMES[o]} sees {len(facts[o]['gpus'])}" for o in seeing)
        others_ja = "、".join(f"{FRAMEWORK_NAMES[o]} には {len(facts[o]['gpus'])} 枚見えています" for o in seeing)
        out.append(_finding(
            "error", f"{name} は CUDA 付きなのに GPU が見えていません / {name} is built with CUDA but sees no GPU",
            _bi(f"{fw} {info.get('version')} (built for CUDA {info.get('cuda_version') or '?'}) sees 0 GPUs; "
                f"{others or 'the NVIDIA driver is loadable'}. Likely cause: an unpinned `pip install` "
                "replaced the image's GPU build with another one in the same folder (`tensorflow-cpu` over "
                "`tensorflow`, or a build for a CUDA whose libraries the image lacks); or the container was started "
                "without `--nv`; or the driver is older than the CUDA this build needs (nvidia-smi header).",
                f"{fw} {info.get('version')}(CUDA {info.get('cuda_version') or '?'} 向けのビルド)には GPU が "
                f"1 枚も見えていません({others_ja or 'NVIDIA ドライバは読み込めます'})。考えられる原因は、"
                "バージョンを固定しない `pip install` がイメージの GPU 版を同じフォルダの別のビルドで置き換えたこと"
                "(`tensorflow` の上に `tensorflow-cpu`、またはイメージにない CUDA のライブラリ向けのビルド)、"
                "コンテナを `--nv` なしで起動したこと、ドライバがこのビルドの必要とする CUDA より古いこと"
                "(nvidia-smi の見出しで分かります)です。"),
            _bi(f"`pip list | grep -i -e {fw} -e nvidia` to see what was installed; reinstall the pinned "
                "version of the image (better: rebuild the kit's container from defs/, where every package "
                "is pinned with ==); start the container with `singularity exec --nv`.",
                f"`pip list | grep -i -e {fw} -e nvidia` で何がインストールされたかを確かめ、イメージの固定した"
                "バージョンをインストールし直してください(defs/ から教材のコンテナを作り直すほうが確実です。"
                "そこではすべてのパッケージが == で固定されています)。コンテナは `singularity exec --nv` "
                "で起動してください。")))
    return out


def trap_user_site(facts: dict) -> list[dict]:
    """Packages in ~/.local shadow the environment's (an error inside a container)."""
    leaked = facts.get("user_site_modules") or []
    if not (facts.get("user_site_enabled") and leaked):
        return []
    return [_finding(
        "error" if facts.get("container") else "warning",
        "~/.local のパッケージが優先されてしまいます / Packages in ~/.local can shadow the environment's own",
        _bi(f"{facts.get('user_site')} holds: {', '.join(leaked)}. Python searches it before the "
            "container's site-packages, so these versions win.",
            f"このフォルダに {', '.join(leaked)} があります。Python はコンテナの site-packages より先に"
            "ここを探すので、こちらのバージョンが使われてしまいます。"),
        _bi("Set PYTHONNOUSERSITE=1 (the kit's containers and sbatch scripts do), or remove them: "
            "`PYTHONNOUSERSITE= python3 -m pip uninstall PACKAGE` outside the container (pip removes the copy "
            "it finds first, the one in ~/.local).",
            "PYTHONNOUSERSITE=1 を設定するか(教材のコンテナと sbatch スクリプトは設定しています)、"
            "コンテナの外で上の行のコマンドを実行して削除してください(pip は最初に見つけた ~/.local の方を消します)。"))]


def trap_hidden_devices(facts: dict) -> list[dict]:
    """CUDA_VISIBLE_DEVICES set to a value that hides every GPU."""
    cvd = facts.get("cuda_visible_devices")
    if cvd is None or cvd.strip() not in ("", "-1", "NoDevFiles"):
        return []
    return [_finding(
        "warning", f"CUDA_VISIBLE_DEVICES={cvd!r} がすべての GPU を隠しています / "
                   f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU",
        _bi("Frameworks honour this variable and then see no GPU.",
            "フレームワークはこの変数に従うので、GPU が 1 枚も見えなくなります。"),
        _bi("Unset it, or request GPUs from Slurm (`#SBATCH --gpus-per-node=1`), which sets it for you.",
            "この変数を消すか(`unset CUDA_VISIBLE_DEVICES`)、Slurm に GPU を要求してください"
            "(`#SBATCH --gpus-per-node=1`)。そうすれば Slurm がこの変数を正しく設定します。"))]


def trap_job_without_gpu(facts: dict) -> list[dict]:
    """A Slurm job that requested no GPU."""
    if not facts.get("slurm_job_id") or facts.get("slurm_gpus") or gpu_hardware_expected(facts):
        return []
    return [_finding(
        "info", "この Slurm ジョブは GPU を要求していません / This Slurm job did not request a GPU",
        _bi(f"Job {facts['slurm_job_id']} has no GPUs allocated.",
            f"ジョブ {facts['slurm_job_id']} には GPU が割り当てられていません。"),
        _bi("Add `#SBATCH --gpus-per-node=1` (the GPU type comes from the site file: COURSEKIT_GPU_TYPE).",
            "`#SBATCH --gpus-per-node=1` を加えてください(GPU の種類はサイト設定の COURSEKIT_GPU_TYPE で決まります)。"))]


TRAPS = (trap_two_tensorflows, trap_keras3_under_keras_bert, trap_driver_not_visible,
         trap_cpu_only_builds, trap_cuda_build_sees_no_gpu, trap_user_site, trap_hidden_devices,
         trap_job_without_gpu)


def summary_finding(facts: dict, found: list[dict]) -> list[dict]:
    """The last word: GPUs visible and nothing wrong (ok), no GPU here (info), or a GPU nobody sees
    that no trap explained (error). Never ok while an error stands."""
    visible, hw = visible_gpu_count(facts), gpu_hardware_expected(facts)
    if any(f["level"] == "error" for f in found):
        return []
    if visible:
        return [_finding("ok", f"GPU が {visible} 枚見えています / {visible} GPU(s) visible to the frameworks")]
    if hw:
        return [_finding(
            "error", "GPU はありますが、どのフレームワークにも見えていません / "
                     "A GPU is present, but neither framework sees it",
            _bi(f"nvidia-smi: {'works' if facts.get('nvidia_smi') else 'fails or absent'}; "
                f"CUDA_VISIBLE_DEVICES={facts.get('cuda_visible_devices')!r}.",
                f"nvidia-smi は{'動きます' if facts.get('nvidia_smi') else '失敗するか、見つかりません'}。"
                f"CUDA_VISIBLE_DEVICES={facts.get('cuda_visible_devices')!r} です。"),
            _bi("Compare the CUDA version the framework was built with (listed above the findings) with the driver's "
                "(nvidia-smi header): the driver must be at least as new.",
                "フレームワークがビルドされた CUDA のバージョン(診断の上の一覧)と、ドライバの CUDA のバージョン"
                "(nvidia-smi の見出し)を比べてください。ドライバのほうが同じか新しくなければなりません。"))]
    return [_finding(
        "info", "GPU が見えません: この計算機は CPU で計算します / "
                "No GPU is visible: this machine computes on the CPU",
        _bi("Nothing is wrong with the software; there is simply no NVIDIA GPU here.",
            "ソフトウェアに問題はありません。この計算機に NVIDIA の GPU がないだけです。"),
        _bi("On the cluster, submit to a GPU partition (`sbatch sbatch/gpu_check.sbatch`).",
            "クラスタでは、GPU のあるパーティションにジョブを投入してください(`sbatch sbatch/gpu_check.sbatch`)。"))]


def diagnose(facts: dict) -> list[dict]:
    """The classic traps, most serious first. Levels: error, warning, info, ok."""
    found = [f for trap in TRAPS for f in trap(facts)]
    found += summary_finding(facts, found)
    order = {"error": 0, "warning": 1, "info": 2, "ok": 3}
    return sorted(found, key=lambda f: order[f["level"]])


# ----------------------------------------------------------------------------- timing
def matmul_benchmark(framework: str, device: str, size: int, repeats: int = 3) -> dict:
    """Time `repeats` multiplications of two size x size float32 matrices (after one warm-up)."""
    if size < 1 or repeats < 1:
        raise ValueError("size and repeats must be positive")
    if framework == "torch":
        import torch

        dev = torch.device(device)
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
        a = torch.randn(size, size, device=dev)
        b = torch.randn(size, size, device=dev)
        (a @ b).sum().item()
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            c = a @ b
        c.sum().item()  # waits for the work and checks it ran
        sync()
        seconds = time.perf_counter() - start
    elif framework == "tensorflow":
        import tensorflow as tf

        tf_device = "/GPU:0" if device.startswith("cuda") or device.upper().startswith("GPU") else "/CPU:0"
        with tf.device(tf_device):
            a = tf.random.normal((size, size))
            b = tf.random.normal((size, size))
            float(tf.reduce_sum(tf.matmul(a, b)))
            start = time.perf_counter()
            for _ in range(repeats):
                c = tf.matmul(a, b)
            float(tf.reduce_sum(c))
            seconds = time.perf_counter() - start
    else:
        raise ValueError(f"unknown framework {framework!r}: use 'torch' or 'tensorflow'")
    flops = 2.0 * size**3 * repeats
    return {"framework": framework, "device": device, "size": size, "repeats": repeats,
            "seconds": seconds, "gflops": flops / seconds / 1e9}


# ----------------------------------------------------------------------------- report
ICON = {"error": "[ERROR]", "warning": "[WARN] ", "info": "[info] ", "ok": "[ok]   "}


def format_report(facts: dict, findings: list[dict]) -> str:
    lines = [
        f"Python {facts['python']} ({facts['executable']})",
        f"CPU: {facts['cpu']} x {facts['cpu_count']}",
        f"Container: {facts['container'] or 'none'}   Slurm job: {facts['slurm_job_id'] or 'none'}"
        f"   Slurm GPUs: {facts['slurm_gpus'] or 'none'}",
        f"CUDA_VISIBLE_DEVICES: {facts['cuda_visible_devices']!r}   PYTHONNOUSERSITE: "
        f"{'set' if facts['pythonnousersite'] else 'unset'}",
        f"nvidia-smi: {'ok' if facts['nvidia_smi'] else ('fails' if facts['nvidia_smi_on_path'] else 'not found')}"
        f"   /dev/nvidia*: {len(facts['dev_nvidia'])}   libcuda.so.1: "
        f"{'loadable' if facts['libcuda'] else 'not loadable'}",
    ]
    for fw in ("torch", "tensorflow"):
        info = facts.get(fw)
        if info is None:
            continue
        if not info.get("installed"):
            lines.append(f"{fw}: not importable / import できません ({info.get('error')})")
            continue
        gpus = info.get("gpus") or []
        names = [g["name"] if isinstance(g, dict) else g for g in gpus]
        extra = f"   keras {info['keras_version']}" if fw == "tensorflow" else ""
        lines.append(
            f"{fw} {info['version']}: built with CUDA {info.get('cuda_version') or 'no'}, "
            f"cuDNN {info.get('cudnn_version') or '-'}, GPUs: {len(gpus)} {names if names else ''}{extra}")
    lines.append("")
    for f in findings:  # detail and fix: English, then the Japanese on an indented second line
        lines.append(f"{ICON[f['level']]} {f['title']}")
        if f["detail"]:
            lines.append("         " + f["detail"].replace("\n", "\n           "))
        if f["fix"]:
            lines.append("         fix: " + f["fix"].replace("\n", "\n           "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m coursekit gpu",
                                     description="Check what TensorFlow and PyTorch see (GPU, CUDA, traps).")
    parser.add_argument("--frameworks", default="torch,tensorflow",
                        help="comma-separated: torch, tensorflow (default: both)")
    parser.add_argument("--matmul", type=int, default=0, metavar="N",
                        help="also time an N x N matrix multiply on CPU and GPU")
    parser.add_argument("--require-gpu", action="store_true", help="exit 1 when no GPU is visible")
    parser.add_argument("--json", action="store_true", help="print facts and findings as JSON")
    args = parser.parse_args(argv)
    frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
    bad = [f for f in frameworks if f not in ("torch", "tensorflow")]
    if bad:
        parser.error(f"unknown framework(s): {', '.join(bad)} (use torch, tensorflow) / "
                     "使えるフレームワークは torch と tensorflow です")

    facts = gather_facts(frameworks)
    findings = diagnose(facts)
    timings = []
    if args.matmul:
        for fw in frameworks:
            if not (facts.get(fw) or {}).get("installed"):
                continue
            timings.append(matmul_benchmark(fw, "cpu", args.matmul))
            if (facts[fw].get("gpus") or []):
                timings.append(matmul_benchmark(fw, "cuda", args.matmul))
    if args.json:
        print(json.dumps({"facts": facts, "findings": findings, "matmul": timings},
                         indent=2, default=str))
    else:
        print(format_report(facts, findings))
        for t in timings:
            print(f"matmul {t['framework']:<10} {t['device']:<5} {t['size']}x{t['size']}: "
                  f"{t['seconds'] / t['repeats'] * 1000:.1f} ms each (1 回あたり), {t['gflops']:.1f} GFLOP/s")
    if any(f["level"] == "error" for f in findings):
        return 1
    if args.require_gpu and visible_gpu_count(facts) == 0:
        print("no GPU visible and --require-gpu was given / "
              "GPU が見えません(--require-gpu が指定されているので失敗にします)", file=sys.stderr)
        return 1
    return 0
