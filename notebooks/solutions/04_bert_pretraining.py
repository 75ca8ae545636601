# Reference solutions of the exercises (演習) of notebooks/04_bert_pretraining.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (counts, loss_after, mlm_probability, seq_len, ... are the notebook's), reads it and changes
# nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
import numpy as np

# the share p_i of each token in the training blocks; H = -sum p_i ln p_i (nats): the loss of the best
# guess that ignores the context
answer_1 = float(-sum(share * np.log(share) for share in counts[counts > 0] / counts.sum()))

# %% 演習 2
# 15% of the tokens are chosen; of those 80% become [MASK], 10% a random token, 10% stay unchanged.
# ([CLS] and [SEP] are never chosen, so seq_len - 2 is as right as seq_len within the tolerance.)
answer_2 = seq_len * mlm_probability * 0.8

# %% 演習 3
answer_3 = """
予想(steps を半分にしたとき): (a) 検証損失は高くなる。(b) top-5 正解率は下がる。特に損失が演習 1 の H の近くで止まるなら、
モデルはまだ頻出トークンを答えているだけで、ユニグラムの当て方との差は小さくなる。(c) 穴埋めで上位 5 つに正解が入る文は減る。
(d) 02 の正解率は、ベンチマークの曲線のその長さの点くらいになるはず。ただし短い事前学習が長いものより悪いとは限らない
(曲線が単調とは限らない)ので、曲線を見てから予想を直すのもよい。
確かめ方: `-p steps` を半分にして 04 を実行し、表示されたコマンドで 02 を実行する。metrics.json の valid_loss_after、
masked_accuracy、fill_mask_top5_hits、02 の accuracy を元の実行と並べる。02 の差が 02 の表示する 95% 区間の幅より
小さければ、1 回ずつの比較では差があるとは言えないので、seed を変えて 3 回ずつ実行し、中央値で比べる。
"""
