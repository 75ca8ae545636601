# Reference solutions of the exercises (演習) of notebooks/03_bart_translation.ipynb, for teachers and tests.
# Each `# %% 演習 N` section is what a student writes into the answer cell; it runs in the notebook's
# namespace (tokenizer, example, bleu, ... are the notebook's), reads it and changes nothing but answer_N.
# Run the notebook with `-p solutions True` to see every check say 正解です.
# ruff: noqa: F821

# %% 演習 1
answer_1 = len(tokenizer(example["ja"])["input_ids"])  # special tokens included, as the model sees it

# %% 演習 2
# BLEU = brevity penalty x geometric mean of the 1- to 4-gram precisions (both in percent here)
if all(bleu.precisions):
    answer_2 = bleu.bp * math.exp(sum(math.log(p) for p in bleu.precisions) / 4)
else:
    answer_2 = 0.0  # a precision of 0 makes the geometric mean 0

# %% 演習 3
answer_3 = """
予想: num_beams=1(貪欲法)は毎ステップ一番よいトークンだけを選び、num_beams=4 は候補を 4 本残して、最後に文全体の
確率が高いものを選びます。ビームを広げると BLEU は少し上がることが多いですが、上がり方は小さく、
翻訳の時間はほぼビームの幅に比例して増えます。ビームが広すぎると短い訳が選ばれやすくなり(brevity penalty が下がる)、
かえって BLEU が下がることもあります。
確かめ方: 同じ学習済みモデルで `-p num_beams 1` と `-p num_beams 4` を実行し(同じ checkpoint から再開すれば学習は
省けます)、ノートブック 05 で evaluate の時間と BLEU を比べます。200 文の BLEU は 1 点程度ぶれるので、
差が小さいときは結論を急がないこと。
"""
