# Reference solutions of the exercises (演習) of notebooks/06_multi_gpu.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (dataparallel, bert_base, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
answer_1 = 16 * (2 * 4) * 2  # per-process batch x processes (nodes x tasks per node) x accumulation

# %% 演習 2
answer_2 = 0.1 * 8192 / 256  # the linear scaling rule: k times the batch, k times the learning rate

# %% 演習 3
# a quarter of the compute per step, the same 440 MB of gradients to all-reduce: communication weighs more
smaller_batch = {**bert_base, "compute_s": bert_base["compute_s"] / 4}
answer_3 = dataparallel.expected_speedup(4, bandwidth_bytes_s=12e9, **smaller_batch)

# %% 演習 4
answer_4 = """
例: 安いものから順に確かめます。
1. ログに `[job] data parallel: 2 processes` と `global batch ... x 2 process(es)` があるか(1 つしか起動していなければ 1 枚の学習)。
2. `coursekit report` の util: 2 枚とも忙しいか。低ければ GPU がデータを待っている(トークン化を先に済ませる、
   DataLoader の num_workers、CPU の数 --cpus-per-task)。
3. 1 枚あたりのバッチ: 小さすぎると計算が短く、毎ステップの all-reduce の通信が目立つ。バッチを大きくするか、
   勾配の累積で通信の回数を減らす。
4. つなぎ方: `nvidia-smi topo -m` で NVLink か PCIe か。ノードをまたぐなら InfiniBand か。
5. 全体の時間のうち学習の部分(phases)は? 学習以外(読み込み、評価、保存)が長ければ、GPU を増やしても速くならない(アムダールの法則)。
"""
