# Reference solutions of the exercises (演習) of notebooks/01_container_build.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (KIT, containers, md, re, os, subprocess, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
# The base image's tag from section 3, and Keras 2 through tf-keras (plain `keras` is Keras 3, which breaks
# keras-bert); every version as in requirements.txt.
pinned = containers.read_pins(KIT / "requirements.txt")
answer_1 = f"""From: tensorflow/tensorflow:{pinned['tensorflow']}-gpu
    pip install tf-keras=={pinned['tf-keras']} keras-bert=={pinned['keras-bert']}"""

# %% 演習 2
# %environment runs top to bottom: HF_HOME keeps the job's value, HF_DATASETS_CACHE then defaults under it.
environment = containers.parse_def(KIT / "defs" / "keras-bert.def").sections["environment"]
home = os.path.expanduser("~")
job_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "HF_HOME": f"{home}/hf"}
answer_2 = subprocess.run(["bash", "-c", environment + '\necho "$HF_DATASETS_CACHE"'], env=job_env,
                          capture_output=True, text=True, check=True).stdout.strip()

# %% 演習 3
# Follow the metadata until no new name turns up; no Keras among them: keras-bert uses whichever Keras
# the environment gives it (tf-keras through TF_USE_LEGACY_KERAS=1 in the kit).
todo, seen = ["keras-bert"], set()
while todo:
    package = todo.pop()
    if package not in seen:
        seen.add(package)
        todo += [re.split(r"[<>=!~; \[]", r)[0] for r in md.requires(package) or [] if "extra ==" not in r]
answer_3 = sorted(seen)

# %% 演習 4
answer_4 = """
Bootstrap: docker
From: pytorch/pytorch:<transformers.def と同じタグ>      # ベースは変えない(CUDA / cuDNN の組み合わせを作者が確かめた版)

%post
    python3 -m pip install \\
        <transformers.def の %post の行をそのまま> \\
        peft==<試して決めた版>                          # 新しいものも == で固定し、requirements.txt にも書く

%environment: transformers.def と同じ(PYTHONNOUSERSITE=1、HF_HOME、...)。計算ノードがオフラインなら HF_HUB_OFFLINE=1。
%test: python3 -m coursekit gpu --frameworks torch に加えて、python3 -c "import peft; print(peft.__version__)"。

手順:
1. ログインノードで `pip install --dry-run --report plan.json peft==X` をイメージと同じ版の環境で実行し、torch や
   transformers を入れ替えようとしていないか確かめる(入れ替えるなら、peft の版を変える)。
2. サンドボックスで試す: apptainer build --fakeroot --sandbox peft/ peft.def → apptainer shell --fakeroot --writable peft/
3. うまくいった手順を .def に書き戻し、ベースを pull した .sif から Bootstrap: localimage で .sif を作る。
4. GPU ノードで apptainer test --nv peft.sif。小さなモデルで 1 ステップ学習して、GPU で動くことも確かめる。
"""
