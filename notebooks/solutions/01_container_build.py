# Reference solutions of the exercises (演習) of notebooks/01_container_build.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (KIT, containers, md, re, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
packages = containers.parse_def(KIT / "defs" / "keras-bert.def").pip_packages()
answer_1 = next(p.split("==", 1)[1] for p in packages if p.startswith("tensorflow=="))

# %% 演習 2
answer_2 = "export HF_HUB_OFFLINE=1"

# %% 演習 3
answer_3 = [re.split(r"[<>=!~; \[]", r)[0] for r in md.requires("keras-bert")]

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
