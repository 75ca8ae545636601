"""SentencePiece: train a subword vocabulary on the spot (tiny profiles, pre-training) and load it.

Used by the livedoor BERT (02), the tiny BART (03) and BERT pre-training (04):

    model_path = train_sentencepiece(texts, out_dir / "spiece", vocab_size=8000)
    sp = load(model_path)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

# Special pieces in the order BERT-style models expect after <pad>/<unk>: ids 0..4 are fixed.
BERT_SPECIALS = ("[CLS]", "[SEP]", "[MASK]")


def train_sentencepiece(texts: Iterable[str], model_prefix: str | Path, vocab_size: int = 8000, *,
                        model_type: str = "unigram", character_coverage: float = 0.9995,
                        input_sentence_size: int = 1_000_000,
                        user_defined_symbols: Iterable[str] = BERT_SPECIALS,
                        seed_sentencepiece_size: int = 1_000_000, verbose: bool = False) -> Path:
    """Train a SentencePiece model on `texts` (one sentence or document per item); return the
    path of `<model_prefix>.model` (a `.vocab` file is written beside it).

    Ids: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>, then `user_defined_symbols` ([CLS], [SEP], [MASK]).
    `vocab_size` is a ceiling on a small corpus (hard_vocab_limit=False) instead of a hard error;
    an empty corpus raises ValueError before SentencePiece is called.
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
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
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
    return prefix.with_suffix(".model")


def load(model_path: str | Path):
    """A SentencePieceProcessor for a trained `.model` file (clear error when it is missing)."""
    import sentencepiece as spm

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    return spm.SentencePieceProcessor(model_file=str(path))
