"""Lesson helpers: what the lesson notebooks repeat (corpora, models, evaluation, plots).

| module | does |
|---|---|
| livedoor | livedoor news corpus: download, verified loading, split, evaluation, plots (02) |
| baseline | TF-IDF + LinearSVC baseline (02) |
| kerasbert | Google-format BERT checkpoints, SentencePiece encoding for keras-bert (02, 04) |
| alt | ALT and other English-Japanese parallel corpora (03) |
| translation | tiny SentencePiece tokenizer, tokens per character, batched translation, BLEU tokenizer check (03) |
| corpora | pre-training corpora: Wikipedia dump, text folders, sentence splitting, shards (04) |
| pretrain | SentencePiece tokenizer for transformers, blocks, fixed validation masks, loss plots, export (04) |
| spm | training and loading SentencePiece models (02, 03, 04) |
| download | downloads all or nothing, mirrors, locked shared caches (02, 03, 04) |
| exercises | checks of the students' answers in the 演習 sections |
| dataparallel | the tiny data-parallel training script of notebook 06 |

They never import `coursekit.harness`.
"""
