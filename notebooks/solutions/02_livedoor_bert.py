# Reference solutions of the exercises (演習) of notebooks/02_livedoor_bert.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (bert_result, label_names, global_batch, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
# an epoch is ceil(training articles / global batch) updates; the global batch doubles with batch_size
answer_1 = math.ceil(len(train_y) / (2 * global_batch))

# %% 演習 2
cm = np.array(bert_result["confusion"])
off = cm - np.diag(np.diag(cm))          # only the mistakes
i, j = np.unravel_index(off.argmax(), off.shape)
answer_2 = (label_names[i], label_names[j])

# %% 演習 3
# 1.96 * sqrt((p1 (1 - p1) + p2 (1 - p2)) / n) = |p1 - p2|, solved for n: the margin shrinks as 1 / sqrt(n)
p_bert, p_same = bert_result["accuracy"], same_text_result["accuracy"]
gap = abs(p_bert - p_same)
answer_3 = 1.96**2 * (p_bert * (1 - p_bert) + p_same * (1 - p_same)) / gap**2 if gap > 0 else math.inf

# %% 演習 4
answer_4 = """
予想: seq_len を半分(例: 128 → 64)にすると、attention の計算は系列の長さの 2 乗で増えるので、1 ステップは
半分より速くなります(全体では、長さに比例する部分もあるので 2〜4 倍の間)。一方で、BERT が見る本文も半分に
なるので、記事の後ろにしかない手がかりを失い、正解率は少し下がるはずです。
確かめ方: `-p seq_len 64` で実行し、ノートブック 05 で fine-tune の時間と正解率を並べます。正解率の差が
11 節の偶然の幅(演習 3)より小さければ、「違いがある」とは言えません(seed を変えて何回か実行します)。
11 節の「BERT と同じ文字列」のベースラインも、seq_len に合わせて短い文字列で学習し直されるので、
BERT とベースラインの差がどう変わるかも、同じ表で比べられます。
"""
