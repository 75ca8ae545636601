"""Notebook 03 figures on small_parallel_enja (run by hand, alone on the machine; not in CI).

    .venv/bin/python benchmarks/bart.py [--data ../shared/data/small_parallel_enja] [--rounds 5] [--steps 60]

Writes benchmarks/results/bart.json, bart.md and bart_tiny_metrics.json:
1. training speed of the tiny profile's BART (its BartConfig, batch size and learning rate): dynamic
   padding (each batch padded to its longest sentence, DataCollatorForSeq2Seq's default) against padding
   every batch to max_length, `--steps` steps each, alternated over `--rounds` rounds after a warm-up
   round (benchmarks/measure.py); the dynamic figure also predicts the tiny profile's training time;
2. notebook 03 end to end on the tiny profile through the runner, on this corpus: BLEU and chrF
   (ja-mecab) on all 500 test sentences, training time, examples. One run (minutes): its times are a
   single measurement, checked against the prediction from 1.
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import RESULTS, ROOT, Results, alternate, copy_portable, portable  # noqa: E402

from coursekit.harness import params  # noqa: E402
from coursekit.lessons import alt, translation  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "03_bart_translation.ipynb"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "small_parallel_enja"


def tiny_bart(tok, cfg: dict):
    """The tiny BART of notebook 03 (the same BartConfig as its model cell, the profile's sizes)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    eos, d = tok.eos_token_id, cfg["d_model"]
    config = BartConfig(vocab_size=len(tok), d_model=d, encoder_layers=cfg["layers"], decoder_layers=cfg["layers"],
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=4 * d,
                        decoder_ffn_dim=4 * d, max_position_embeddings=cfg["max_length"] + 2,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.convert_tokens_to_ids("<s>"),
                        eos_token_id=eos, decoder_start_token_id=eos, forced_eos_token_id=eos,
                        dropout=0.1, scale_embedding=True)
    torch.manual_seed(cfg["seed"])
    return BartForConditionalGeneration(config)


def padding_speed(data, tok, cfg: dict, steps: int, rounds: int, work: Path) -> dict:
    """`steps` training steps of the tiny profile's Trainer settings, dynamic vs max_length padding."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    class StepClock(TrainerCallback):
        """Time of the steps after the first `skip` (the Trainer's start-up and the first steps left out)."""

        def __init__(self):
            self.stamps = []

        def on_step_end(self, args, state, control, **kw):
            self.stamps.append(time.perf_counter())

    bs, skip = cfg["batch_size"], 5
    train = data["train"].select(range(steps * bs))
    real = sum(len(x) for x in train["input_ids"]) + sum(len(x) for x in train["labels"])

    def run(pad_to_max: bool):
        model = tiny_bart(tok, cfg)
        args = Seq2SeqTrainingArguments(output_dir=str(work / "pad"), num_train_epochs=1, per_device_train_batch_size=bs,
                                        learning_rate=cfg["learning_rate"], warmup_steps=0.1, weight_decay=0.01,
                                        label_smoothing_factor=cfg["label_smoothing"], eval_strategy="no",
                                        save_strategy="no", logging_steps=10_000, seed=cfg["seed"], report_to="none",
                                        disable_tqdm=True, use_cpu=True)
        collator = DataCollatorForSeq2Seq(tok, model=model, padding="max_length" if pad_to_max else "longest",
                                          max_length=cfg["max_length"] if pad_to_max else None)
        clock = StepClock()
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                                 processing_class=tok, callbacks=[clock])
        trainer.train()
        timed = clock.stamps[skip - 1:]
        return {"s_per_step": (timed[-1] - timed[0]) / (len(timed) - 1)}

    if steps <= skip + 1:
        raise SystemExit(f"--steps must be more than {skip + 1} (the first {skip} steps are not timed)")
    times = alternate({"dynamic": lambda: run(False), "max_length": lambda: run(True)}, rounds=rounds)
    per_step = {k: statistics.median(r["s_per_step"] for r in t["extra"]) for k, t in times.items()}
    return {"steps": steps, "timed_steps": steps - skip, "batch_size": bs, "times": times,
            "median_s_per_step": {k: round(v, 4) for k, v in per_step.items()},
            "steps_per_s": {k: round(1 / v, 2) for k, v in per_step.items()},
            "real_tokens_per_s": {k: round(real / steps / v, 1) for k, v in per_step.items()},
            "dynamic_over_max_length": round(per_step["max_length"] / per_step["dynamic"], 2)}


def tiny_notebook(data_dir: Path, work: Path) -> dict:
    from coursekit.harness.runner import run_notebook

    t0 = time.perf_counter()
    result = run_notebook(NOTEBOOK, "tiny", {"data_dir": str(data_dir)}, runs_dir=work / "runs", quiet=True)
    wall = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"notebook 03 failed: {result.error}")
    copy_portable(result.run_dir / "metrics.json", RESULTS / "bart_tiny_metrics.json")
    m = result.metrics["metrics"]
    return {"wall_s": round(wall, 1), "phases": result.metrics["phases"], "bleu": m["bleu"], "chrf": m["chrf"],
            "bleu_tokenizer": m["bleu_tokenizer"], "bleu_precisions": m["bleu_precisions"],
            "sentences": m["sentences"], "train_pairs": m["pairs"]["train"], "global_step": m["training"]["global_step"],
            "train_seconds": round(m["training"]["train_seconds"], 1), "epochs": m["training"]["epochs"],
            "eval_losses": m.get("eval_losses"), "params": {k: result.metrics["params"][k] for k in
            ("d_model", "layers", "vocab_size", "batch_size", "learning_rate", "label_smoothing", "epochs", "num_beams")},
            "examples": m["examples"][:5]}


def markdown(res: Results) -> list[str]:
    f = res.data["figures"]
    lines = res.header("BART benchmark (notebook 03)")
    if "padding" in f:
        p = f["padding"]
        d, m = p["times"]["dynamic"], p["times"]["max_length"]
        lines += [f"## Dynamic padding vs padding to max_length ({p['steps']} training steps of batch {p['batch_size']}, "
                  f"tiny profile's BART, {f['train_pairs']:,}-pair corpus)", "",
                  "| padding | whole run: median (min-max) | training steps/s (median) | real tokens/s |", "|---|---|---|---|",
                  f"| dynamic (the notebook) | {d['median_s']:.2f} s ({d['min_s']:.2f}-{d['max_s']:.2f}) | "
                  f"{p['steps_per_s']['dynamic']} | {p['real_tokens_per_s']['dynamic']} |",
                  f"| every batch to max_length {f['max_length']} | {m['median_s']:.2f} s ({m['min_s']:.2f}-{m['max_s']:.2f}) | "
                  f"{p['steps_per_s']['max_length']} | {p['real_tokens_per_s']['max_length']} |", "",
                  f"Dynamic padding trains **{p['dynamic_over_max_length']}x** as fast (median time per step over steps "
                  f"6-{p['steps']} of each run; the whole run includes building the model and the Trainer).", ""]
        if "predicted_train_s" in f:
            lines += [f"At that speed the tiny profile's {f['tiny_steps']:,} steps take about "
                      f"{f['predicted_train_s'] / 60:.1f} minutes of training.", ""]
    if "tiny_notebook" in f:
        n = f["tiny_notebook"]
        lines += ["## Notebook 03, tiny profile, end to end (one run)", "",
                  f"Parameters: {n['params']}; {n['train_pairs']:,} training pairs.", "",
                  "| BLEU (sacrebleu, " + n["bleu_tokenizer"] + ") | chrF | test sentences | training | steps | epochs | notebook wall |",
                  "|---|---|---|---|---|---|---|",
                  f"| **{n['bleu']}** | {n['chrf']} | {n['sentences']} | {n['train_seconds'] / 60:.1f} min | "
                  f"{n['global_step']:,} | {n['epochs']} | {n['wall_s'] / 60:.1f} min |", "",
                  f"n-gram precisions {n['bleu_precisions']}; validation loss by epoch (label-smoothed) "
                  f"{[round(x, 3) for x in n['eval_losses'] or []]}.", "",
                  "| English | reference | tiny BART |", "|---|---|---|",
                  *[f"| {e.get('英語(原文)')} | {e.get('参照訳')} | {e.get('モデルの出力')} |" for e in n["examples"]],
                  "", "Its metrics.json is `bart_tiny_metrics.json`."]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60, help="training steps per padding run")
    parser.add_argument("--only", nargs="+", choices=["padding", "notebook"], default=["padding", "notebook"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (args.data / "train.en").is_file():
        print(f"small_parallel_enja not found at {args.data} (train.en/train.ja...); pass --data DIR", file=sys.stderr)
        return 2
    translation.require_bleu_tokenizer("ja-mecab")  # before minutes of timing, not after
    cfg = params.resolve(NOTEBOOK, "tiny")
    res = Results("bart", args.out, keep=set(args.only) != set(parser.get_default("only")))
    corpus, _ = alt.load_parallel(args.data)
    res.add("data", portable(str(args.data)))
    res.add("train_pairs", len(corpus["train"]))
    res.add("max_length", cfg["max_length"])
    work = Path(tempfile.mkdtemp(prefix="bart-bench-"))
    try:
        if "padding" in args.only:
            tok = translation.build_tiny_tokenizer(corpus["train"], work / "tok", vocab_size=cfg["vocab_size"])
            data = corpus.map(lambda b: tok(b["en"], text_target=b["ja"], max_length=cfg["max_length"], truncation=True),
                              batched=True, remove_columns=["en", "ja"])
            p = padding_speed(data, tok, cfg, args.steps, args.rounds, work)
            res.add("padding", p)
            steps = math.ceil(len(corpus["train"]) / cfg["batch_size"]) * cfg["epochs"]
            res.add("tiny_steps", steps)
            res.add("predicted_train_s", round(steps / p["steps_per_s"]["dynamic"], 1))
            print(f"dynamic padding {p['dynamic_over_max_length']}x; {p['steps_per_s']['dynamic']} steps/s -> "
                  f"{steps} steps in about {steps / p['steps_per_s']['dynamic'] / 60:.1f} min", flush=True)
        if "notebook" in args.only:
            n = tiny_notebook(args.data, work)
            res.add("tiny_notebook", n)
            print(f"notebook 03 tiny: BLEU {n['bleu']}, chrF {n['chrf']}, training {n['train_seconds'] / 60:.1f} min",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
