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

import coursekit  # noqa: F401
from coursekit.lessons import corpora
from coursekit.lessons import pretrain
from coursekit.harness import params as profiles
def timed(label, fn, rows):
    t0 = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - t0))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--livedoor", default="", help="livedoor text/ folder (default: generated text)")
    ap.add_argument("--documents", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    cfg = profiles.resolve("04_bert_pretraining", "tiny")
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.livedoor:
            docs = corpora.read_source(args.livedoor, work)
            vocab = cfg.vocab_size
        else:
            docs = corpora.sample_documents(args.documents)
            vocab = 150
        layout = timed("corpus layout", lambda: corpora.write_layout(
            docs, work / "c", valid_fraction=0.01, test_fraction=0.01, max_documents=args.documents), rows)
        train_docs = corpora.read_layout(layout.files["train"])
        valid_docs = corpora.read_layout(layout.files["valid"])
        sentences = [s for d in train_docs for s in d]
        tok = timed(f"SentencePiece training ({len(sentences)} sentences, vocab {vocab})",
                    lambda: pretrain.train_tokenizer(sentences, work / "tok", vocab,
                                                     character_coverage=cfg.character_coverage), rows)
        slow = pretrain.load_tokenizer(work / "tok", slow=True)
        sample = sentences[:5000]
        timed(f"fast tokenizer, {len(sample)} sentences", lambda: [tok(s) for s in sample], rows)
        timed(f"slow tokenizer, {len(sample)} sentences", lambda: [slow(s) for s in sample], rows)
        train = timed("encode blocks (seq %d)" % cfg.seq_len,
                      lambda: pretrain.encode_documents(tok, train_docs, cfg.seq_len), rows)
        valid = pretrain.fixed_masks(pretrain.encode_documents(tok, valid_docs, cfg.seq_len), tok)
        model = pretrain.new_model(tok, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                                   num_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                                   max_positions=cfg.max_positions)
        timed(f"validation loss ({len(valid)} blocks)",
              lambda: pretrain.evaluate_loss(model, tok, valid, cfg.batch_size), rows)
        t0 = time.perf_counter()
        pretrain.train_mlm(model, tok, train, valid, work / "mlm", max_steps=args.steps,
                           batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                           warmup_steps=5, eval_every=10 ** 9, save_every=10 ** 9)
        seconds = time.perf_counter() - t0
        rows.append((f"MLM training, {args.steps} steps of {cfg.batch_size} x {cfg.seq_len}", seconds))
    width = max(len(label) for label, _ in rows)
    print(f"\n{'step':<{width}}  seconds")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:8.2f}")
    print(f"\nMLM: {args.steps / seconds:.2f} steps/s, "
          f"{args.steps * cfg.batch_size * cfg.seq_len / seconds:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
