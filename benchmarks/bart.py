"""Notebook 03 speed figures on small_parallel_enja (run by hand; prints and writes results).

1. Training tokens/s of the tiny BART with dynamic padding (each batch padded to its longest
   sentence, DataCollatorForSeq2Seq's default) against padding every batch to max_length, same
   data, same steps, same run.
2. The tiny BART's test BLEU after a fixed CPU training budget.

    .venv/bin/python benchmarks/bart.py [--data DIR] [--steps 80] [--budget 300] [--test 500]

Writes benchmarks/results/bart.json and bart.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from coursekit.lessons import alt, translation

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "small_parallel_enja"


def tiny_bart(tok, max_length: int, d_model: int = 128, layers: int = 2, seed: int = 0):
    """The tiny BART of notebook 03's tiny profile (the same BartConfig as its model cell)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    eos = tok.eos_token_id
    config = BartConfig(vocab_size=len(tok), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=4 * d_model,
                        decoder_ffn_dim=4 * d_model, max_position_embeddings=max_length + 2,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.convert_tokens_to_ids("<s>"),
                        eos_token_id=eos, decoder_start_token_id=eos, forced_eos_token_id=eos,
                        dropout=0.1, scale_embedding=True)
    torch.manual_seed(seed)
    return BartForConditionalGeneration(config)


def make_trainer(model, tok, train, out: Path, *, epochs: int, learning_rate: float, max_length: int,
                 pad_to_max: bool = False, callbacks=(), warmup_steps: float = 0.1, batch_size: int = 32):
    """A Seq2SeqTrainer as in notebook 03, without evaluation or checkpoints (timing only).
    pad_to_max pads every batch to max_length instead of to its longest sentence."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    args = Seq2SeqTrainingArguments(output_dir=str(out), num_train_epochs=epochs,
                                    per_device_train_batch_size=batch_size, learning_rate=learning_rate,
                                    warmup_steps=warmup_steps, weight_decay=0.01, eval_strategy="no",
                                    save_strategy="no", logging_steps=10, seed=0, report_to="none",
                                    disable_tqdm=True)
    collator = DataCollatorForSeq2Seq(tok, model=model, padding="max_length" if pad_to_max else "longest",
                                      max_length=max_length if pad_to_max else None)
    return Seq2SeqTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                          processing_class=tok, callbacks=list(callbacks))


def time_padding(data, tok, steps: int, batch_size: int, max_length: int, pad_to_max: bool, out: Path) -> dict:
    train = data["train"].select(range(steps * batch_size))
    model = tiny_bart(tok, max_length)
    trainer = make_trainer(model, tok, train, out, epochs=1, learning_rate=1e-3, max_length=max_length,
                           pad_to_max=pad_to_max, batch_size=batch_size)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    real = sum(len(x) for x in train["input_ids"]) + sum(len(x) for x in train["labels"])
    return {"padding": "max_length" if pad_to_max else "dynamic", "steps": steps, "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2), "real_tokens": real, "real_tokens_per_s": round(real / seconds, 1),
            "real_tokens_per_cpu_s": round(real / cpu, 1)}


def bleu_after_budget(corpus, data, tok, budget: float, max_length: int, out: Path) -> dict:
    import sacrebleu
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.c0 = time.process_time()

        def on_step_end(self, args, state, control, **kw):
            if time.process_time() - self.c0 > budget:  # CPU seconds: fair on a busy machine
                control.should_training_stop = True

    model = tiny_bart(tok, max_length)
    trainer = make_trainer(model, tok, data["train"], out, epochs=20, learning_rate=1e-3, max_length=max_length,
                           callbacks=[Budget()], warmup_steps=100)  # a short budget: warm up fast
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    hyps = translation.translate(model, tok, corpus["test"]["en"], num_beams=2, max_length=max_length)
    refs = list(corpus["test"]["ja"])
    tokenize = translation.require_bleu_tokenizer("ja-mecab")
    metric = sacrebleu.BLEU(tokenize=tokenize)
    scores = {"bleu": round(metric.corpus_score(hyps, [refs]).score, 2), "bleu_tokenizer": tokenize,
              "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2), "sentences": len(refs),
              "bleu_signature": str(metric.get_signature())}
    return {"budget_cpu_s": budget, "train_seconds": round(train_s, 1), "train_cpu_seconds": round(train_cpu, 1),
            "steps": trainer.state.global_step, "warmup_steps": trainer.args.warmup_steps,
            "epochs": round(trainer.state.epoch, 2), "translate_seconds": round(time.perf_counter() - t0, 1),
            **{k: scores[k] for k in ("bleu", "bleu_tokenizer", "chrf", "sentences", "bleu_signature")},
            "examples": [{"en": e, "ref": r, "out": h} for e, r, h in
                         list(zip(corpus["test"]["en"], corpus["test"]["ja"], hyps))[:5]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=80, help="training steps per padding variant")
    parser.add_argument("--budget", type=float, default=300,
                        help="CPU seconds (all threads, time.process_time) of training for the BLEU figure")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--test", type=int, default=500, help="test sentences translated for BLEU")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not (args.data / "train.en").is_file():
        print(f"small_parallel_enja not found at {args.data} (train.en/train.ja...); pass --data DIR", file=sys.stderr)
        return 2
    corpus, _ = alt.load_parallel(args.data)
    corpus["test"] = corpus["test"].select(range(min(args.test, len(corpus["test"]))))
    work = Path(tempfile.mkdtemp(prefix="bart-bench-"))
    tok = translation.build_tiny_tokenizer(corpus["train"], work / "tok", vocab_size=4000)
    translation.require_bleu_tokenizer("ja-mecab")  # before minutes of timing, not after
    data = corpus.map(lambda b: tok(b["en"], text_target=b["ja"], max_length=args.max_length, truncation=True),
                      batched=True, remove_columns=["en", "ja"])

    speed = [time_padding(data, tok, args.steps, 32, args.max_length, pad, work / f"pad-{pad}")
             for pad in (False, True)]
    for row in speed:
        print(f"{row['padding']:<10} {row['steps']} steps in {row['seconds']:6.1f} s ({row['cpu_seconds']:.1f} CPU s): "
              f"{row['real_tokens_per_s']:8.1f} real tokens/s, {row['real_tokens_per_cpu_s']:8.1f} per CPU s")
    ratio = speed[0]["real_tokens_per_s"] / speed[1]["real_tokens_per_s"]
    ratio_cpu = speed[0]["real_tokens_per_cpu_s"] / speed[1]["real_tokens_per_cpu_s"]
    print(f"dynamic padding is {ratio:.2f}x (wall) / {ratio_cpu:.2f}x (CPU time) the throughput of padding to "
          f"{args.max_length}")

    quality = bleu_after_budget(corpus, data, tok, args.budget, args.max_length, work / "budget")
    print(f"BLEU after {quality['train_cpu_seconds']} CPU s ({quality['train_seconds']} s) of training ({quality['steps']} steps, "
          f"{quality['epochs']} epochs): {quality['bleu']} ({quality['bleu_tokenizer']}), chrF {quality['chrf']}")

    load = os.getloadavg()
    result = {"machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
              "load_average_at_end": [round(x, 2) for x in load],
              "note": "shared machine: other jobs may have been running; compare the ratio, not the absolutes",
              "data": str(args.data), "train_pairs": len(corpus["train"]), "max_length": args.max_length,
              "model": "tiny BART d_model 128, 2+2 layers, SentencePiece 4000, batch 32, lr 1e-3",
              "padding": speed, "dynamic_over_max_length": round(ratio, 2),
              "dynamic_over_max_length_cpu_time": round(ratio_cpu, 2), "bleu_after_budget": quality,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bart.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md = [f"# BART (notebook 03) benchmark, {result['date']}", "",
          f"Machine: {result['machine']}; load average at the end {result['load_average_at_end']} "
          "(a shared machine: other engineers' jobs were running, so absolute speeds are low and noisy).", "",
          f"Data: small_parallel_enja ({len(corpus['train']):,} training pairs), {result['model']}, "
          f"max_length {args.max_length}.", "",
          "| padding | steps | seconds | CPU seconds | real tokens/s | real tokens per CPU s |",
          "|---|---|---|---|---|---|",
          *[f"| {r['padding']} | {r['steps']} | {r['seconds']} | {r['cpu_seconds']} | {r['real_tokens_per_s']} | "
            f"{r['real_tokens_per_cpu_s']} |" for r in speed], "",
          f"Dynamic padding: **{ratio:.2f}x** the training throughput (wall clock) of padding every batch to "
          f"{args.max_length}; {ratio_cpu:.2f}x per CPU second (less sensitive to other jobs).", "",
          f"BLEU after a {args.budget:.0f} CPU-second training budget ({quality['train_seconds']} s wall, "
          f"{quality['steps']} steps, {quality['epochs']} epochs, warm-up {quality['warmup_steps']} steps): "
          f"**{quality['bleu']}** (sacrebleu, tokenizer {quality['bleu_tokenizer']}), chrF {quality['chrf']}, "
          f"{quality['sentences']} test sentences, beam 2.", ""]
    (args.out / "bart.md").write_text("\n".join(md), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    print(f"written {args.out / 'bart.json'} and bart.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
