"""Plumbing of notebook 03 (English -> Japanese translation with BART).

The notebook itself shows the transformers code it teaches (tokenizer and `Dataset.map`, BartConfig,
DataCollatorForSeq2Seq, Seq2SeqTrainingArguments, Seq2SeqTrainer, trainer_state.json, generate,
sacrebleu). What is left here is repeated or beside the point of the lesson:

    tokenizer = build_tiny_tokenizer(corpus["train"], "checkpoints/tokenizer", vocab_size=4000)
    tokens_per_char(tokenizer, corpus["train"]["ja"][:500])   # how long the targets get
    outputs = translate(model, tokenizer, corpus["test"]["en"], num_beams=4)   # batched generate
    require_bleu_tokenizer("ja-mecab")   # before training: fails now, not after hours of it
    model_path = locate_model("facebook/bart-base")   # the shared folder's staged copy, read offline
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

from . import spm

# sacrebleu tokenizers that split Japanese (its default 13a does not: a whole sentence is one word)
BLEU_TOKENIZERS = ("ja-mecab", "char")


# ---------------------------------------------------------------------------- pre-trained
def locate_model(name: str) -> str:
    """What `from_pretrained` should load for `name`: a hub id (facebook/bart-base) staged in the
    prepared shared folder ($COURSEKIT_SHARED/models/hub, a Hugging Face hub cache that
    `python -m coursekit prepare` fills) is that snapshot's local folder, read without the network;
    a folder, an empty name or a hub id without a shared folder come back unchanged (the hub, through
    the user's own cache). With a shared folder set, a hub id missing there on a node that cannot reach
    the hub (or with HF_HUB_OFFLINE=1 / COURSEKIT_OFFLINE=1) raises download.NotStagedError now, naming
    the model and the prepare command, instead of failing later inside from_pretrained."""
    from . import download

    if not name or Path(name).expanduser().exists():
        return name
    hub = download.staged(download.HUB_CACHE)
    if hub is not None:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(name, "config.json", cache_dir=str(hub))
        if isinstance(config, str):
            return str(Path(config).parent)
    download.refuse_offline(os.environ.get("HF_ENDPOINT") or "https://huggingface.co",
                            f"{download.HUB_CACHE}/models--{name.replace('/', '--')}", f"the model {name}")
    return name


# ------------------------------------------------------------------------------- tokenizer
def build_tiny_tokenizer(train, out_dir: str | Path, vocab_size: int = 4000, src: str = "en",
                         tgt: str = "ja", max_sentences: int = 200_000, reuse: bool = True):
    """Train one SentencePiece vocabulary on both languages of the training split and wrap it as a
    transformers tokenizer (saved in out_dir, reloadable with AutoTokenizer.from_pretrained).
    reuse: a tokenizer already saved in out_dir is loaded instead, so a resumed job keeps the
    vocabulary its checkpoints were trained with.

    Ids: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>; every encoded sentence ends with </s>."""
    from transformers import AutoTokenizer, T5Tokenizer

    out_dir = Path(out_dir)
    if reuse and (out_dir / "tokenizer_config.json").is_file():
        print(f"reusing the tokenizer saved in {out_dir} / 前回保存したトークナイザを使います")
        return AutoTokenizer.from_pretrained(str(out_dir))
    n = min(len(train), max_sentences // 2)
    texts = list(train[src][:n]) + list(train[tgt][:n])
    model_file = spm.train_sentencepiece(texts, out_dir / "sp" / "spiece", vocab_size=vocab_size,
                                         user_defined_symbols=())
    # T5Tokenizer(vocab_file=...) silently ignores the file (transformers 5): load from a folder.
    shutil.copy(model_file, out_dir / "spiece.model")
    tokenizer = T5Tokenizer.from_pretrained(str(out_dir), extra_ids=0, legacy=False)
    if tokenizer.convert_tokens_to_ids("</s>") != 3 or len(tokenizer) < 10:
        raise RuntimeError(f"the SentencePiece model in {out_dir} was not loaded (vocabulary {len(tokenizer)})")
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def tokens_per_char(tokenizer, texts: Iterable[str]) -> float:
    """How many tokens the tokenizer spends per character (bart-base: > 1 on Japanese)."""
    texts = list(texts)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return tokens / max(1, sum(len(t) for t in texts))


# ------------------------------------------------------------------------------ translation
def translate(model, tokenizer, texts: Iterable[str], batch_size: int = 32, max_length: int = 128,
              num_beams: int = 4, progress: Callable[[Iterable, int, str], Iterable] | None = None) -> list[str]:
    """model.generate over many sentences: batches of similar length (longest first, so little
    padding), a progress bar, outputs returned in the input order.

    `progress(iterable, total, what)` wraps the loop over the batches, e.g. the harness's
    `progress.progress`, which prints a line to the job's log now and then."""
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: list[str] = [""] * len(texts)
    model.eval()
    device = next(model.parameters()).device
    starts = tqdm(range(0, len(order), batch_size), desc="translate")
    if progress is not None:
        starts = progress(starts, len(starts), "translate")
    for start in starts:
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                          max_length=max_length).to(device)
        with torch.no_grad():
            ids = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_length)
        for i, text in zip(idx, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            out[i] = text.strip()
    return out


# ------------------------------------------------------------------------------------- BLEU
def ja_mecab_problem() -> str | None:
    """None when sacrebleu's ja-mecab tokenizer works here, else why not (mecab-python3 or ipadic
    missing, or MeCab without a dictionary)."""
    try:
        import sacrebleu

        sacrebleu.BLEU(tokenize="ja-mecab").corpus_score(["テスト です"], [["テスト です"]])
    except Exception as exc:  # ImportError, RuntimeError from MeCab, ...
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def require_bleu_tokenizer(name: str) -> str:
    """Check that sacrebleu can score Japanese with `name` here; return it, or raise with the fix.

    There is no silent fallback: BLEU of ja-mecab (words) and of char (characters) differ by a lot,
    so a run that quietly switched would be compared with the others as if it were the same measure.
    Call this before training, so a missing package costs seconds, not a training run."""
    if name not in BLEU_TOKENIZERS:
        raise ValueError(f"bleu_tokenize must be one of {BLEU_TOKENIZERS}, got {name!r} "
                         "(sacrebleu's default 13a does not split Japanese into words)")
    if name == "ja-mecab":
        problem = ja_mecab_problem()
        if problem:
            raise RuntimeError(
                f"BLEU の ja-mecab トークナイザが使えません({problem})。"
                "mecab-python3 と ipadic をインストールする(requirements.txt の版)か、"
                "文字単位の BLEU で良ければ -p bleu_tokenize char で実行してください。\n"
                f"sacrebleu's ja-mecab tokenizer is unavailable ({problem}). Install mecab-python3 and "
                "ipadic (the versions in requirements.txt), or run with -p bleu_tokenize char for a "
                "character-level BLEU (not comparable with ja-mecab BLEU).")
    return name
