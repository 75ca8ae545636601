"""SentencePiece: train a subword vocabulary on the spot (tiny profiles, pre-training) and load it.

Used by the livedoor BERT (02), the tiny BART (03) and BERT pre-training (04):

    model_path = train_sentencepiece(texts, out_dir / "spiece", vocab_size=8000)
    sp = load(model_path)
"""
from __future__ import annotations

import os
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

# Special pieces in the order BERT-style models expect after <pad>/<unk>: ids 0..4 are fixed.
BERT_SPECIALS = ("[CLS]", "[SEP]", "[MASK]")
MAX_SENTENCE_BYTES = 4192   # SentencePiece's max_sentence_length: longer lines are skipped by the trainer


def required_pieces(lines: list[str], character_coverage: float, specials: int) -> tuple[int, int]:
    """(pieces the vocabulary must hold at least, of which characters) for SentencePiece on `lines`: the
    most frequent characters that cover `character_coverage` of the text (after NFKC; a space and each
    line's start are "▁"), as its trainer counts them, plus <pad> <unk> <s> </s> and `specials`."""
    counts: Counter = Counter()
    for line in lines:
        if len(line.encode("utf-8")) <= MAX_SENTENCE_BYTES:
            text = " ".join(unicodedata.normalize("NFKC", line).split())
            counts.update("▁" + text.replace(" ", "▁"))
    for char in [c for c in counts if unicodedata.category(c) in ("Cc", "Cf")]:
        del counts[char]   # control characters: removed by SentencePiece's normalizer
    total, covered, chars = sum(counts.values()), 0, 0
    for _, n in counts.most_common():
        if covered >= character_coverage * total:
            break
        covered, chars = covered + n, chars + 1
    return chars + 4 + specials, chars


def train_sentencepiece(texts: Iterable[str], model_prefix: str | Path, vocab_size: int = 8000, *,
                        model_type: str = "unigram", character_coverage: float = 0.9995,
                        input_sentence_size: int = 1_000_000,
                        user_defined_symbols: Iterable[str] = BERT_SPECIALS,
                        seed_sentencepiece_size: int = 1_000_000, verbose: bool = False) -> Path:
    """Train a SentencePiece model on `texts` (one sentence or document per item); return the
    path of `<model_prefix>.model` (a `.vocab` file is written beside it).

    Ids: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>, then `user_defined_symbols` ([CLS], [SEP], [MASK]).
    `vocab_size` is a ceiling on a small corpus (hard_vocab_limit=False) instead of a hard error; an
    empty corpus, or a vocab_size below what the corpus's characters need (SentencePiece's "Vocabulary
    size is smaller than required_chars"), raises ValueError naming vocab_size before SentencePiece is
    called. The model is written under a temporary name and renamed into place when complete, so an
    interrupted training never leaves a `.model` that looks finished.
    """
    import sentencepiece as spm

    lines = [t.replace("\n", " ").strip() for t in texts]
    lines = [t for t in lines if t]
    if not lines:
        raise ValueError("cannot train SentencePiece on an empty corpus (no non-empty text given)")
    specials = list(user_defined_symbols)
    if vocab_size < len(specials) + 5:
        raise ValueError(f"vocab_size={vocab_size} is too small: it must exceed the "
                         f"{len(specials) + 4} special pieces")
    needed, chars = required_pieces(lines[:input_sentence_size], character_coverage, len(specials))
    if vocab_size < needed:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the {chars} distinct characters (covering "
                         f"{character_coverage:g} of the text) + {needed - chars} special pieces this corpus needs: "
                         f"use vocab_size {needed} or more, or a lower character_coverage / vocab_size={vocab_size} "
                         f"では足りません。このコーパスには文字だけで {chars} 種類あり、特殊トークンと合わせて "
                         f"{needed} 以上が必要です")
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    partial = prefix.with_name(f".{prefix.name}.partial{os.getpid()}")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(partial),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size,
        hard_vocab_limit=False,  # a small corpus cannot fill a large vocabulary: shrink, not fail
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
        user_defined_symbols=specials,
        num_threads=2,
        minloglevel=0 if verbose else 2,
    )
    os.replace(partial.with_name(partial.name + ".vocab"), prefix.with_name(prefix.name + ".vocab"))
    os.replace(partial.with_name(partial.name + ".model"), prefix.with_name(prefix.name + ".model"))
    return prefix.with_name(prefix.name + ".model")


def load(model_path: str | Path):
    """A SentencePieceProcessor for a trained `.model` file (clear error when it is missing)."""
    import sentencepiece as spm

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"{path} is not a readable SentencePiece model ({exc}): cut off by an interrupted "
                         "training or copy? Train or copy it again / SentencePiece のモデル "
                         f"{path} が読めません(途中で切れていませんか)") from None
