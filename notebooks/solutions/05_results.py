# Reference solutions of the exercises (演習) of notebooks/05_results.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (infos, the list of report.RunInfo, is the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
done = [i for i in infos if i.status == "completed" and i.total_s]
fastest = min(done, key=lambda i: i.total_s)
answer_1 = f"{fastest.notebook}/{fastest.run}"

# %% 演習 2
groups = {}  # same notebook, profile and parameters: only the device (or the machine's load) differs
for i in infos:
    if i.status == "completed" and i.total_s:
        key = (i.notebook, i.profile, repr(sorted(i.params.items())))
        groups.setdefault(key, []).append(i.total_s)
answer_2 = max(max(times) / min(times) for times in groups.values())

# %% 演習 3
answer_3 = 1 / (0.2 + 0.8 / 10)  # Amdahl's law: the part that does not get faster limits the whole

# %% 演習 4
answer_4 = """
例: 学習率 1e-4 と 5e-4 で、5e-4 の方が正解率が 2 ポイント高かった。端の値がいちばん良いので、次は 1e-3 を試す。
偶然でないことの確かめ方:
- 同じ設定で seed を 3 つ変えて実行し、正解率のぶれ(最大と最小の差)が 2 ポイントより十分小さいか見る。
- テストデータの記事数 n から標準誤差 √(p(1−p)/n) を計算し、差がその 2 倍より大きいか見る(ノートブック 02 の演習 3)。
- 学習曲線で、検証損失が途中から上がっていない(過学習していない)ことも確かめる。上がっていれば、学習率より先に
  エポック数や early stopping を見直す。
"""
