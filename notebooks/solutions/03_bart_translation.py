# Reference solutions of the exercises (演習) of notebooks/03_bart_translation.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (collator, data, bleu, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
# dynamic padding: 4 rows, as many columns as the longest of the 4 targets (not max_length)
answer_1 = tuple(collator([data["train"][i] for i in range(4)])["labels"].shape)

# %% 演習 2
# BLEU = BP x (p1 p2 p3 p4)^(1/4): doubling one precision multiplies the product by 2 and BLEU by 2^(1/4)
answer_2 = bleu.score * 2 ** (1 / 4)

# %% 演習 3
answer_3 = """
予想: num_beams=1(貪欲法)は毎ステップ一番よいトークンだけを選び、num_beams=4 は候補を 4 本残して、最後に文全体の
確率が高いものを選びます。ビームを広げると BLEU は少し上がることが多いですが、上がり方は小さく、
翻訳の時間はほぼビームの幅に比例して増えます。ビームが広すぎると短い訳が選ばれやすくなり(brevity penalty が下がる)、
かえって BLEU が下がることもあります。
確かめ方: 同じ学習済みモデルで `-p num_beams 1` と `-p num_beams 4` を実行し(同じ checkpoint から再開すれば学習は
省けます)、ノートブック 05 で evaluate の時間と BLEU を比べます。テストは 500 文(tiny)や 1,018 文(ALT)なので、
BLEU の小さな差は文の選び方の偶然かもしれません。差が小さいときは、sacrebleu の対応のあるブートストラップ
(`sacrebleu 参照訳 -i 出力1 出力2 --paired-bs`)で確かめてから結論を出します。
"""
