# Reference solutions of the exercises (演習) of notebooks/04_bert_pretraining.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (loss_after, mlm_probability, seq_len, ... are the notebook's), reads it and changes nothing
# but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
answer_1 = math.exp(loss_after)  # perplexity = e^(mean cross-entropy in nats)

# %% 演習 2
# 15% of the tokens are chosen; of those 80% become [MASK], 10% a random token, 10% stay unchanged.
# ([CLS] and [SEP] are never chosen, so seq_len - 2 is as right as seq_len within the tolerance.)
answer_2 = seq_len * mlm_probability * 0.8

# %% 演習 3
answer_3 = """
`▁` は SentencePiece の「単語の始まり」を表す記号で、コーパスでいちばん多いトークンです。学習の始めのモデルは、
文脈をまだ使えないので、どの位置でも「いちばん多いトークン」を予測すると損失が一番小さくなります
(ユニグラムの頻度を覚えた段階)。学習が進むと、まず助詞(「の」「は」「が」)のような頻度の高い語、次に
文脈に合う内容語(「首都」「スマートフォン」)が上位に来るようになります。
確かめ方: `steps` を増やして実行し、fill-mask の 1 位と検証損失を比べます。検証損失が ln V から
ユニグラムのエントロピーくらいまで下がったところで止まっていたら、まだ文脈を使えていません。
"""
