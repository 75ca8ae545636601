# Reference solutions of the exercises (演習) of notebooks/05_results.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (infos, the list of report.RunInfo, is the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
# only that phase shrinks; the rest of the total (other phases, time outside any phase) stays
top = next(i for i in infos if i.status == "completed" and i.phases and i.total_s)
longest = max(top.phases.values())
answer_1 = top.total_s - longest + longest / 10

# %% 演習 2
answer_2 = 1 / 0.2  # Amdahl's law: with training at 0 s, the other 20% remains

# %% 演習 3
fastest = max((i for i in infos if i.speedup), key=lambda i: i.speedup)
if fastest.speedup <= 1.0:
    raise ValueError("比べられる実行の組がまだありません")
slowest = next(i for i in infos if i.speedup == 1.0 and (i.notebook, i.profile, i.params)
               == (fastest.notebook, fastest.profile, fastest.params))
answer_3 = max(set(slowest.phases) | set(fastest.phases),
               key=lambda p: abs(slowest.phases.get(p, 0.0) - fastest.phases.get(p, 0.0)))

# %% 演習 4
answer_4 = """
例: 学習率 1e-4 と 5e-4 で、5e-4 の方が正解率が 2 ポイント高かった。端の値がいちばん良いので、次は 1e-3 を試す。
偶然でないことの確かめ方:
- 同じ設定で seed を 3 つ変えて実行し、正解率のぶれ(最大と最小の差)が 2 ポイントより十分小さいか見る。
- テストデータの記事数 n から二つの標準誤差 se = √(p(1−p)/n) を計算し、差が偶然の幅 1.96√(se₁² + se₂²) より
  大きいか見る(ノートブック 02 の 11 節と演習 3)。
- 学習曲線で、検証損失が途中から上がっていない(過学習していない)ことも確かめる。上がっていれば、学習率より先に
  エポック数や早期終了を見直す。
"""
