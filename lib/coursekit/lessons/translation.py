"""English -> Japanese translation with BART (notebook 03): tokenizer, model, Trainer, BLEU.

    tokenizer = build_tiny_tokenizer(dsd["train"], run.file("tokenizer"), vocab_size=4000)  # tiny
    model = build_tiny_model(tokenizer, d_model=128, layers=2)
    # or: tokenizer, model = load_pretrained("facebook/bart-base")                          # full
    data = tokenize(dsd, tokenizer, max_length=128)
    trainer = make_trainer(model, tokenizer, data["train"], data["validation"], run.file("checkpoints"),
                           epochs=3, batch_size=32, learning_rate=5e-5)
    info = train(trainer)              # resumes from the newest checkpoint-N in the output folder
    history = loss_history(run.file("checkpoints"))
    hyps = translate(model, tokenizer, dsd["test"]["en"])
    scores = bleu(hyps, dsd["test"]["ja"])   # sacrebleu, ja-mecab (or char) tokenization

Checkpoints are written every epoch into the output folder; `train` continues from the newest one,
so a job that is killed (or preempted by Slurm) and requeued resumes instead of starting over.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

from . import spm

BLEU_TOKENIZERS = ("ja-mecab", "char")


# ---------------------------------------------------------------------------------- device
def precision() -> dict:
    """What the Trainer should use here: bf16 on GPUs that support it, fp16 on other GPUs,
    fp32 on the CPU."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "bf16": bf16, "fp16": not bf16}
    return {"device": "cpu", "name": "cpu", "bf16": False, "fp16": False}


# ------------------------------------------------------------------------- tokenizer + model
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
        print(f"reusing the tokenizer saved in {out_dir}")
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


def build_tiny_model(tokenizer, d_model: int = 128, layers: int = 2, heads: int = 4,
                     ffn_dim: int = 512, max_length: int = 128, seed: int = 0):
    """A randomly initialised BART with a few layers, sized to the tokenizer's vocabulary."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim, max_position_embeddings=max(max_length, 64) + 2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, bos_token_id=2,
        decoder_start_token_id=eos, forced_eos_token_id=eos, dropout=0.1, scale_embedding=True)
    return BartForConditionalGeneration(config)


def load_pretrained(name: str = "facebook/bart-base"):
    """(tokenizer, model) of a pre-trained seq2seq model from the hub (or a local folder)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(name), AutoModelForSeq2SeqLM.from_pretrained(name)


def tokens_per_char(tokenizer, texts: Iterable[str]) -> float:
    """How many tokens the tokenizer spends per character (bart-base: > 1 on Japanese)."""
    texts = list(texts)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return tokens / max(1, sum(len(t) for t in texts))


def tokenize(dsd, tokenizer, max_length: int = 128, src: str = "en", tgt: str = "ja"):
    """Token ids of source (input_ids) and target (labels), truncated to max_length, unpadded:
    the collator pads each batch to its own longest sequence."""
    def encode(batch):
        return tokenizer(batch[src], text_target=batch[tgt], truncation=True, max_length=max_length)

    columns = dsd[next(iter(dsd))].column_names
    return dsd.map(encode, batched=True, remove_columns=columns, desc="tokenize")


# ----------------------------------------------------------------------------------- training
def make_trainer(model, tokenizer, train_data, eval_data, output_dir: str | Path, *, epochs: int = 3,
                 batch_size: int = 32, learning_rate: float = 5e-5, max_steps: int = -1,
                 logging_steps: int | None = None, seed: int = 0, max_length: int = 128,
                 pad_to_max: bool = False, save_total_limit: int = 2, callbacks: Iterable = (),
                 **overrides):
    """A Seq2SeqTrainer that evaluates and checkpoints every epoch into output_dir.

    Batches are padded dynamically (to their longest sequence) by DataCollatorForSeq2Seq;
    pad_to_max=True pads every batch to max_length instead (for the speed comparison).
    overrides: any other Seq2SeqTrainingArguments (e.g. save_strategy="no")."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    prec = precision()
    steps_per_epoch = max(1, -(-len(train_data) // batch_size))
    total = max_steps if max_steps > 0 else steps_per_epoch * epochs
    settings = dict(
        output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate, warmup_steps=min(500, total // 10), weight_decay=0.01,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=save_total_limit,
        logging_strategy="steps", logging_steps=logging_steps or max(1, total // 40),
        predict_with_generate=True, generation_max_length=max_length,
        bf16=prec["bf16"], fp16=prec["fp16"], use_cpu=prec["device"] == "cpu",
        seed=seed, data_seed=seed, report_to="none", dataloader_num_workers=0,
        disable_tqdm=False)
    args = Seq2SeqTrainingArguments(**{**settings, **overrides})
    collator = DataCollatorForSeq2Seq(
        tokenizer, model=model, padding="max_length" if pad_to_max else "longest",
        max_length=max_length if pad_to_max else None)
    return Seq2SeqTrainer(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                          data_collator=collator, processing_class=tokenizer, callbacks=list(callbacks))


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint-N folder in output_dir, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir)
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def train(trainer, resume: bool = True) -> dict:
    """Train, continuing from the newest checkpoint in the trainer's output folder when there is
    one; save the final state (trainer_state.json) there. Returns what happened."""
    checkpoint = last_checkpoint(trainer.args.output_dir) if resume else None
    start_step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    if checkpoint:
        print(f"resuming from {checkpoint} (step {start_step})")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_state()
    return {"resumed_from_step": start_step, "global_step": trainer.state.global_step,
            "epochs": trainer.state.epoch, "train_loss": result.training_loss,
            "train_seconds": result.metrics.get("train_runtime")}


def loss_history(output_dir: str | Path) -> list[dict]:
    """Training and validation losses from the Trainer's trainer_state.json (the output folder's,
    else the newest checkpoint's): [{"step", "epoch", "loss" or "eval_loss"}, ...]."""
    folder = Path(output_dir)
    state_file = folder / "trainer_state.json"
    if not state_file.is_file():
        checkpoint = last_checkpoint(folder)
        if not checkpoint:
            raise FileNotFoundError(f"no trainer_state.json in {folder} or its checkpoints")
        state_file = Path(checkpoint) / "trainer_state.json"
    history = json.loads(state_file.read_text(encoding="utf-8"))["log_history"]
    return [{k: h[k] for k in ("step", "epoch", "loss", "eval_loss") if k in h}
            for h in history if "loss" in h or "eval_loss" in h]


# --------------------------------------------------------------------------------- evaluation
def translate(model, tokenizer, texts: Iterable[str], batch_size: int = 32, max_length: int = 128,
              num_beams: int = 4) -> list[str]:
    """Translate texts (longest first, to pad little); returns outputs in the input order."""
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: list[str] = [""] * len(texts)
    model.eval()
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc="translate"):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                          max_length=max_length).to(device)
        with torch.no_grad():
            ids = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_length)
        for i, text in zip(idx, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            out[i] = text.strip()
    return out


def bleu_tokenizer(preferred: str = "ja-mecab") -> str:
    """preferred if it works here; ja-mecab needs mecab-python3 + ipadic, else 'char'."""
    if preferred not in BLEU_TOKENIZERS:
        raise ValueError(f"BLEU tokenizer must be one of {BLEU_TOKENIZERS}, got {preferred!r} "
                         "(sacrebleu's default 13a does not split Japanese into words)")
    if preferred == "ja-mecab":
        try:
            import sacrebleu

            sacrebleu.BLEU(tokenize="ja-mecab").corpus_score(["テスト"], [["テスト"]])
        except Exception as exc:  # ImportError, or MeCab without a dictionary
            print(f"ja-mecab unavailable ({type(exc).__name__}: {exc}); using char tokenization")
            return "char"
    return preferred


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "ja-mecab") -> dict:
    """Corpus BLEU (and chrF) of Japanese outputs with sacrebleu; says which tokenizer it used."""
    import sacrebleu

    hypotheses, references = [str(h) for h in hypotheses], [str(r) for r in references]
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} outputs but {len(references)} references")
    if not references:
        raise ValueError("no test sentences to score")
    tok = bleu_tokenizer(tokenize)
    metric = sacrebleu.BLEU(tokenize=tok)
    score = metric.corpus_score(hypotheses, [references])
    chrf = sacrebleu.CHRF().corpus_score(hypotheses, [references])
    return {"bleu": round(score.score, 2), "bleu_tokenizer": tok, "bleu_signature": str(metric.get_signature()),
            "bleu_precisions": [round(p, 1) for p in score.precisions], "brevity_penalty": round(score.bp, 3),
            "chrf": round(chrf.score, 2), "sentences": len(references)}
