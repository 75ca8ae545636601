"""Speed figures of notebook 04's steps, and its tiny run end to end (run by hand, alone; not in CI).

    .venv/bin/python benchmarks/pretrain.py [--livedoor ../shared/data/livedoor/text] [--rounds 5] [--steps 30]

Without --livedoor it uses generated text (and skips the notebook run). Every time is the median of
`--rounds` runs after a warm-up round (benchmarks/measure.py): SentencePiece training, the fast against
the slow tokenizer (alternated), block encoding, masked-LM training time per step (steps after the
first 3 of each run) at the tiny profile's model size, and the validation pass. With --livedoor it
also runs notebook 04 on the tiny profile through the runner once and keeps its metrics.json as
results/pretrain_tiny_metrics.json. Writes results/pretrain.json and pretrain.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.corpora: the generated text
from measure import RESULTS, ROOT, Results, alternate, copy_portable, portable  # noqa: E402

import coursekit  # noqa: E402,F401
from coursekit.harness import params  # noqa: E402
from coursekit.lessons import corpora, pretrain  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "04_bert_pretraining.ipynb"
SKIP = 3  # training steps of each run left out of its time per step (start-up)


def new_model(tokenizer, cfg: dict):
    """The notebook's model: BertConfig + BertForMaskedLM at the profile's size."""
    from transformers import BertConfig, BertForMaskedLM, set_seed

    set_seed(cfg["seed"])
    return BertForMaskedLM(BertConfig(
        vocab_size=len(tokenizer), hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_heads"], intermediate_size=cfg["intermediate_size"],
        max_position_embeddings=cfg["max_positions"], type_vocab_size=2, hidden_act="gelu_new",
        pad_token_id=tokenizer.pad_token_id))


def new_trainer(model, tokenizer, train, valid, out: Path, cfg: dict, max_steps: int, callbacks=()):
    """The notebook's Trainer settings (no evaluation or checkpoint inside the timed steps)."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=cfg["batch_size"],
        per_device_eval_batch_size=cfg["batch_size"], gradient_accumulation_steps=1,
        learning_rate=cfg["learning_rate"], lr_scheduler_type="linear", warmup_steps=5, weight_decay=0.01,
        max_grad_norm=1.0, eval_strategy="no", save_strategy="no", logging_steps=10_000, seed=cfg["seed"],
        report_to="none", disable_tqdm=True, use_cpu=True)
    collator = pretrain.FixedMaskCollator(
        DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg["mlm_probability"]))
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid, data_collator=collator,
                   processing_class=tokenizer, callbacks=list(callbacks))


def step_time(tok, train, valid, cfg: dict, steps: int, work: Path) -> dict:
    """One run of `steps` masked-LM steps; its seconds per step after the first SKIP."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        stamps: list = []

        def on_step_end(self, args, state, control, **kw):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    clock.stamps = []
    new_trainer(new_model(tok, cfg), tok, train, valid, work / "mlm", cfg, steps, [clock]).train()
    timed = clock.stamps[SKIP - 1:]
    return {"s_per_step": (timed[-1] - timed[0]) / (len(timed) - 1)}


def tiny_notebook(livedoor: str, work: Path) -> dict:
    from coursekit.harness.runner import run_notebook

    t0 = time.perf_counter()
    result = run_notebook(NOTEBOOK, "tiny", {"corpus": livedoor}, runs_dir=work / "runs", quiet=True)
    wall = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"notebook 04 failed: {result.error}")
    copy_portable(result.run_dir / "metrics.json", RESULTS / "pretrain_tiny_metrics.json")
    m = result.metrics["metrics"]
    keep = ("valid_loss_before", "valid_loss_after", "perplexity_before", "perplexity_after", "valid_loss_drop")
    return {"wall_s": round(wall, 1), "phases": result.metrics["phases"],
            **{k: m[k] for k in keep if k in m}}


def markdown(res: Results) -> list[str]:
    f = res.data["figures"]
    lines = res.header("Pre-training benchmark (notebook 04)")
    lines += [f"Data: {f['data']}; tiny profile sizes: {f['sizes']}.", "",
              "| step | median | min | max |", "|---|---:|---:|---:|"]
    for label, t in f["times"].items():
        lines.append(f"| {label} | {t['median_s']:.2f} s | {t['min_s']:.2f} s | {t['max_s']:.2f} s |")
    mlm = f["mlm"]
    lines += ["", f"Masked-LM training: **{mlm['steps_per_s']} steps/s**, {mlm['tokens_per_s']:,} tokens/s "
              f"(median time per step {mlm['median_s_per_step']:.3f} s over steps {SKIP + 1}-{mlm['steps']} of each of "
              f"{mlm['runs']} runs; batch {mlm['batch']} x {mlm['seq_len']} tokens).", ""]
    if "tiny_notebook" in f:
        n = f["tiny_notebook"]
        lines += ["## Notebook 04, tiny profile, end to end (one run)", "",
                  f"Wall time through the runner: {n['wall_s'] / 60:.1f} min. Phases (s): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in n["phases"].items()) + ".",
                  "Validation loss " + " -> ".join(f"{n[k]:.2f}" for k in ("valid_loss_before", "valid_loss_after") if k in n)
                  + ". Its metrics.json is `pretrain_tiny_metrics.json`."]
    return lines





def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--livedoor", default="", help="livedoor text/ folder (default: generated text)")
    ap.add_argument("--documents", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="masked-LM steps per timed run")
    ap.add_argument("--no-notebook", action="store_true", help="do not run notebook 04 (with --livedoor)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.steps <= SKIP + 1:
        ap.error(f"--steps must be more than {SKIP + 1}")
    cfg = params.resolve(NOTEBOOK, "tiny")
    res = Results("pretrain", args.out)
    res.add("data", f"livedoor {portable(args.livedoor)}" if args.livedoor else "generated text (tests.corpora)")
    res.add("sizes", {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                                          "seq_len", "batch_size")})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.livedoor:
            docs = corpora.read_source(args.livedoor, work)
            vocab = cfg["vocab_size"]
        else:
            from tests.corpora import sample_documents

            docs = sample_documents(args.documents)
            vocab = 150
        layout = corpora.write_layout(docs, work / "c", valid_fraction=0.01, test_fraction=0.01,
                                      max_documents=args.documents)
        train_docs = corpora.read_layout(layout.files["train"])
        valid_docs = corpora.read_layout(layout.files["valid"])
        sentences = [s for d in train_docs for s in d]
        out: dict = {}

        def spm_train():
            out["tok"] = pretrain.train_tokenizer(sentences, work / "tok", vocab,
                                                  character_coverage=cfg["character_coverage"])

        times = {}
        t = alternate({"spm": spm_train}, rounds=args.rounds)
        times[f"SentencePiece training ({len(sentences):,} sentences, vocab {vocab})"] = t["spm"]
        tok, slow = out["tok"], pretrain.load_tokenizer(work / "tok", slow=True)
        sample = sentences[:5000]
        t = alternate({"fast": lambda: [tok(s) for s in sample], "slow": lambda: [slow(s) for s in sample]},
                      rounds=args.rounds)
        times[f"fast tokenizer, {len(sample):,} sentences"] = t["fast"]
        times[f"slow tokenizer, {len(sample):,} sentences"] = t["slow"]
        seq_len, batch = cfg["seq_len"], cfg["batch_size"]

        def encode():
            out["train"] = pretrain.encode_documents(tok, train_docs, seq_len)

        times[f"encode blocks (seq {seq_len})"] = alternate({"encode": encode}, rounds=args.rounds)["encode"]
        train = out["train"]
        valid = pretrain.fixed_masks(pretrain.encode_documents(tok, valid_docs, seq_len), tok,
                                     cfg["mlm_probability"], seed=cfg["seed"])
        evaluator = new_trainer(new_model(tok, cfg), tok, train, valid, work / "eval", cfg, 1)
        times[f"validation loss ({len(valid)} blocks)"] = alternate({"eval": evaluator.evaluate},
                                                                    rounds=args.rounds)["eval"]
        t = alternate({"mlm": lambda: step_time(tok, train, valid, cfg, args.steps, work)}, rounds=args.rounds)["mlm"]
        per_step = statistics.median(r["s_per_step"] for r in t["extra"])
        res.add("times", times)
        res.add("mlm", {"steps": args.steps, "runs": t["runs"], "batch": batch, "seq_len": seq_len,
                        "median_s_per_step": round(per_step, 4), "steps_per_s": round(1 / per_step, 2),
                        "tokens_per_s": round(batch * seq_len / per_step),
                        "s_per_step_all": [round(r["s_per_step"], 4) for r in t["extra"]]})
        print(f"MLM: {1 / per_step:.2f} steps/s", flush=True)
        if args.livedoor and not args.no_notebook:
            res.add("tiny_notebook", tiny_notebook(args.livedoor, work))
    res.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
