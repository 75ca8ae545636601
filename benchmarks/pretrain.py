"""Speed figures of notebook 04's steps on this machine (run by hand, prints a table).

    .venv/bin/python benchmarks/pretrain.py [--livedoor /path/to/livedoor/text] [--steps 50]

Without --livedoor it uses generated text. Figures: SentencePiece training, fast vs slow tokenizer
throughput, block encoding, masked-LM training steps per second and tokens per second at the tiny
profile's model size, validation speed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_bert_pretraining.ipynb"
sys.path.insert(0, str(ROOT))  # tests.corpora: the generated text

import coursekit  # noqa: E402,F401
from coursekit.harness import params  # noqa: E402
from coursekit.lessons import corpora, pretrain  # noqa: E402


def timed(label, fn, rows):
    t0 = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - t0))
    return out


def new_model(tokenizer, cfg: dict):
    """The notebook's model: BertConfig + BertForMaskedLM at the profile's size."""
    from transformers import BertConfig, BertForMaskedLM, set_seed

    set_seed(cfg["seed"])
    return BertForMaskedLM(BertConfig(
        vocab_size=len(tokenizer), hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_heads"], intermediate_size=cfg["intermediate_size"],
        max_position_embeddings=cfg["max_positions"], type_vocab_size=2, hidden_act="gelu_new",
        pad_token_id=tokenizer.pad_token_id))


def new_trainer(model, tokenizer, train, valid, out: Path, cfg: dict, max_steps: int):
    """The notebook's Trainer settings (no evaluation or checkpoint inside the timed steps)."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=cfg["batch_size"],
        per_device_eval_batch_size=cfg["batch_size"], gradient_accumulation_steps=1,
        learning_rate=cfg["learning_rate"], lr_scheduler_type="linear", warmup_steps=5, weight_decay=0.01,
        max_grad_norm=1.0, eval_strategy="no", save_strategy="no", logging_steps=10, seed=cfg["seed"],
        report_to="none")
    collator = pretrain.FixedMaskCollator(
        DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg["mlm_probability"]))
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid, data_collator=collator,
                   processing_class=tokenizer)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--livedoor", default="", help="livedoor text/ folder (default: generated text)")
    ap.add_argument("--documents", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    cfg = params.resolve(NOTEBOOK, "tiny")
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.livedoor:
            docs = corpora.read_source(args.livedoor, work)
            vocab = cfg["vocab_size"]
        else:
            from tests.corpora import sample_documents

            docs = sample_documents(args.documents)
            vocab = 150
        layout = timed("corpus layout", lambda: corpora.write_layout(
            docs, work / "c", valid_fraction=0.01, test_fraction=0.01, max_documents=args.documents), rows)
        train_docs = corpora.read_layout(layout.files["train"])
        valid_docs = corpora.read_layout(layout.files["valid"])
        sentences = [s for d in train_docs for s in d]
        tok = timed(f"SentencePiece training ({len(sentences)} sentences, vocab {vocab})",
                    lambda: pretrain.train_tokenizer(sentences, work / "tok", vocab,
                                                     character_coverage=cfg["character_coverage"]), rows)
        slow = pretrain.load_tokenizer(work / "tok", slow=True)
        sample = sentences[:5000]
        timed(f"fast tokenizer, {len(sample)} sentences", lambda: [tok(s) for s in sample], rows)
        timed(f"slow tokenizer, {len(sample)} sentences", lambda: [slow(s) for s in sample], rows)
        seq_len, batch = cfg["seq_len"], cfg["batch_size"]
        train = timed(f"encode blocks (seq {seq_len})",
                      lambda: pretrain.encode_documents(tok, train_docs, seq_len), rows)
        valid = pretrain.fixed_masks(pretrain.encode_documents(tok, valid_docs, seq_len), tok,
                                     cfg["mlm_probability"], seed=cfg["seed"])
        trainer = new_trainer(new_model(tok, cfg), tok, train, valid, work / "mlm", cfg, args.steps)
        timed(f"validation loss ({len(valid)} blocks)", trainer.evaluate, rows)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        rows.append((f"MLM training, {args.steps} steps of {batch} x {seq_len}", seconds))
    width = max(len(label) for label, _ in rows)
    print(f"\n{'step':<{width}}  seconds")
    for label, secs in rows:
        print(f"{label:<{width}}  {secs:8.2f}")
    print(f"\nMLM: {args.steps / seconds:.2f} steps/s, {args.steps * batch * seq_len / seconds:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
