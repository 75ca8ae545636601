"""The full profile proven at full size, on CPU: notebooks 02, 03 and 04 on their FULL profile, for a
handful of optimizer steps each (`-p max_steps N`), pointed at same-shaped stand-ins for the real
pre-trained files (run by hand; far too slow for CI):

  * 02: a Google-format TF1 BERT checkpoint shaped like the Japanese SentencePiece BERT of the full profile
    (12 layers, 768 hidden, 12 heads, 3072 feed-forward, 32,000 vocabulary, 512 positions; random weights,
    `coursekit.lessons.kerasbert.write_checkpoint`) and a 32k SentencePiece model trained on livedoor text;
  * 03: a BART with facebook/bart-base's shapes (6+6 layers, 768 hidden, 50,265 vocabulary, 1,024
    positions; random weights) saved in transformers' format with a byte-level BPE tokenizer trained on
    the parallel text;
  * 04: pre-trains its full-size BERT itself (the full profile's shapes) on the livedoor text.

It records seconds per optimizer step (the training phase's time over the steps it ran, less the Trainer's
evaluation inside it; start-up included, and in 02 Keras's validation pass: an upper bound), the peak memory (RSS) of the run, and what a
full epoch / the full run would take at that speed, into benchmarks/results/fullsize.json and .md with the
command line, commit, machine and load average.

    .venv/bin/python benchmarks/fullsize.py                      # all three, 2 steps each
    .venv/bin/python benchmarks/fullsize.py --notebooks 03 --steps 1 --keep   # one notebook, others kept
    .venv/bin/python benchmarks/fullsize.py --smoke --livedoor DIR --parallel DIR --out DIR   # tiny shapes, for tests

Data (default ../shared/data): livedoor/text (02, 04, the SentencePiece model) and small_parallel_enja (03).
Parameters that only shorten what is not training (03: `max_test`, `examples`) are set small and listed in
the results; everything else is the full profile as the notebooks' parameters cells have it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from measure import commit, portable  # noqa: E402  (no machine paths in the results files)
DATA = ROOT.parent / "shared" / "data"
NOTEBOOKS = {"02": "02_livedoor_bert", "03": "03_bart_translation", "04": "04_bert_pretraining"}
TRAIN_PHASES = {"02": ["fine-tune"], "03": ["train"], "04": ["pretrain-phase1", "pretrain-phase2"]}

FULL = {  # the shapes of the real pre-trained files
    "bert": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "max_position_embeddings": 512, "vocab_size": 32000},
    "bart": {"d_model": 768, "layers": 6, "heads": 12, "ffn": 3072, "positions": 1024, "vocab_size": 50265},
}
SMOKE = {
    "bert": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64, "vocab_size": 200},
    "bart": {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64, "positions": 64, "vocab_size": 600},
}
# overrides in --smoke mode so that the full profile's sequence lengths fit the tiny stand-ins
SMOKE_PARAMS = {
    "02": {"seq_len": 32, "batch_size": 4},
    "03": {"max_length": 24, "batch_size": 4, "num_beams": 1},
    "04": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "vocab_size": 400,
           "max_positions": 64, "seq_len": 32, "phase2_seq_len": 64, "batch_size": 4, "grad_accum": 1,
           "input_sentence_size": 20000, "valid_fraction": 0.1, "test_fraction": 0.1,
           "eval_every": 1, "save_every": 1, "warmup_steps": 1,
           "fill_mask_sentences": "日本の[MASK]は東京です。"},
}


def livedoor_texts(text_dir: Path, limit: int = 0) -> list[str]:
    """Article bodies of a livedoor text/ folder (URL and date lines dropped; LICENSE/README skipped)."""
    texts = []
    for path in sorted(text_dir.glob("*/*.txt")):
        if path.name == "LICENSE.txt":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        texts += [line.strip() for line in lines[2:] if line.strip()]
        if limit and len(texts) >= limit:
            break
    return texts


def make_bert(out: Path, livedoor: Path, shapes: dict) -> dict[str, str]:
    """bert_config.json + bert_model.ckpt.* (Google TF1 format) + a SentencePiece model of the same vocabulary."""
    from coursekit.lessons import kerasbert
    from coursekit.lessons.spm import train_sentencepiece

    if (out / "done.json").exists():
        return json.loads((out / "done.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    spm_prefix = out / "wiki-ja"
    train_sentencepiece(livedoor_texts(livedoor), spm_prefix, vocab_size=shapes["vocab_size"])
    spm_model = spm_prefix.with_suffix(".model")
    import sentencepiece

    vocab = sentencepiece.SentencePieceProcessor(model_file=str(spm_model)).get_piece_size()
    config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "initializer_range": 0.02, "type_vocab_size": 2, **shapes, "vocab_size": vocab}
    prefix = kerasbert.write_checkpoint(out, config)
    files = {"bert_config": str(out / "bert_config.json"), "bert_checkpoint": str(prefix),
             "spm_model": str(spm_model), "vocab_size": vocab, "seconds": round(time.monotonic() - t0, 1)}
    (out / "done.json").write_text(json.dumps(files, indent=1))
    return files


def make_bart(out: Path, parallel: Path, shapes: dict) -> dict[str, str]:
    """A BartForConditionalGeneration with bart-base's shapes (random weights) + a byte-level BPE
    tokenizer, saved with save_pretrained: what `-p model_name FOLDER` loads."""
    if (out / "done.json").exists():
        return json.loads((out / "done.json").read_text())
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    files = [str(parallel / f"train.{lang}") for lang in ("en", "ja")]
    bpe = ByteLevelBPETokenizer()
    bpe.train(files, vocab_size=shapes["vocab_size"], min_frequency=2,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(out))
    tok = BartTokenizerFast.from_pretrained(str(out))  # reads vocab.json + merges.txt (the constructor ignores files)
    tok.save_pretrained(str(out))
    config = BartConfig(vocab_size=shapes["vocab_size"], d_model=shapes["d_model"],
                        encoder_layers=shapes["layers"], decoder_layers=shapes["layers"],
                        encoder_attention_heads=shapes["heads"], decoder_attention_heads=shapes["heads"],
                        encoder_ffn_dim=shapes["ffn"], decoder_ffn_dim=shapes["ffn"],
                        max_position_embeddings=shapes["positions"], pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2, scale_embedding=False)
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(str(out))
    info = {"model_name": str(out), "tokenizer_vocab": len(tok), "seconds": round(time.monotonic() - t0, 1)}
    (out / "done.json").write_text(json.dumps(info, indent=1))
    return info


def run_notebook(key: str, params: dict, runs: Path, name: str) -> dict:
    """`python -m coursekit run NOTEBOOK --profile full -p ...` in a child; its record, wall time and the
    peak RSS of the largest process it started (the kernel)."""
    args = [sys.executable, "-m", "coursekit", "run", f"notebooks/{NOTEBOOKS[key]}.ipynb", "--profile", "full",
            "--name", name, "--no-html"]
    for k, v in params.items():
        args += ["-p", k, str(v)]
    # a wrapper process, so that RUSAGE_CHILDREN covers this notebook's processes only
    wrapper = ("import resource, subprocess, sys, json; rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(json.dumps({'rc': rc, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COURSEKIT_RUNS": str(runs)})
    wall = time.monotonic() - t0
    tail = json.loads(proc.stdout.strip().splitlines()[-1])
    folder = runs / NOTEBOOKS[key] / name
    record = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    return {"command": shlex.join(["python", *args[1:]]), "rc": tail["rc"], "wall_s": round(wall, 1),
            "peak_rss_mb": round(tail["maxrss_kb"] / 1024), "record": record,
            "stderr_tail": proc.stderr[-1500:] if tail["rc"] else ""}


def steps_per_epoch(key: str, record: dict, params: dict, parallel: Path) -> tuple[int | None, int | None]:
    """(optimizer steps per epoch, optimizer steps of the whole full-profile run) from the run's record."""
    p, m = record.get("params", {}), record.get("metrics", {})
    if key == "02" and m.get("n_train"):
        per = math.ceil(m["n_train"] / p["batch_size"])
        return per, per * p["epochs"]
    if key == "03":
        n = sum(1 for _ in open(parallel / "train.en", encoding="utf-8"))
        if p.get("max_train"):
            n = min(n, p["max_train"])
        per = math.ceil(n / p["batch_size"])
        return per, per * p["epochs"]
    if key == "04" and m.get("train_blocks"):
        per = math.ceil(m["train_blocks"] / (p["batch_size"] * p["grad_accum"]))
        return per, p["steps"] + p.get("phase2_steps", 0)
    return None, None


def eval_seconds(folders) -> float:
    """Seconds the Trainer spent in evaluation inside training (eval_runtime in the newest
    trainer_state.json of each folder): subtracted from the training phase for s/step."""
    total = 0.0
    for folder in folders:
        states = sorted(Path(folder).rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime) \
            if folder and Path(folder).is_dir() else []
        if states:
            history = json.loads(states[-1].read_text()).get("log_history", [])
            total += sum(e.get("eval_runtime", 0.0) for e in history)
    return total


def summarise(key: str, result: dict, steps: int, parallel: Path, overrides: dict) -> dict:
    record = result["record"]
    phases = record.get("phases", {})
    train_s = sum(phases.get(name, 0.0) for name in TRAIN_PHASES[key])
    eval_s = eval_seconds([overrides.get("checkpoint_dir"), overrides.get("work_dir")])
    n_phases = sum(1 for name in TRAIN_PHASES[key] if name in phases)
    ran = steps * max(n_phases, 1)
    s_per_step = (train_s - eval_s) / ran if train_s and ran else None
    per_epoch, full_steps = steps_per_epoch(key, record, result.get("params", {}), parallel)
    out = {"notebook": NOTEBOOKS[key], "status": record.get("status", "no record"), "rc": result["rc"],
           "wall_s": result["wall_s"], "peak_rss_mb": result["peak_rss_mb"], "phases_s": phases,
           "steps_run": ran, "eval_in_training_s": round(eval_s, 1), "s_per_step": round(s_per_step, 2) if s_per_step else None,
           "steps_per_epoch": per_epoch, "epoch_hours": round(per_epoch * s_per_step / 3600, 2)
           if per_epoch and s_per_step else None,
           "full_run_steps": full_steps, "full_run_hours": round(full_steps * s_per_step / 3600, 1)
           if full_steps and s_per_step else None,
           "command": result["command"]}
    if key == "04":
        out["note"] = "phase 2 (512 tokens) costs more per step than phase 1: s_per_step is their mean"
    if result["stderr_tail"]:
        out["error"] = result["stderr_tail"]
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem,
            "python": platform.python_version(), "load_average_before": os.getloadavg()}


def write_results(results: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = portable(results)
    js = out_dir / "fullsize.json"
    js.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    m = results["machine"]
    lines = ["# Full profile at full size, on CPU (benchmarks/fullsize.py)", "",
             f"`{results['command']}`  ", f"commit {results['commit']}, {results['date']}  ",
             f"{m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB; load average before "
             f"{', '.join(f'{x:.2f}' for x in m['load_average_before'])}, after "
             f"{', '.join(f'{x:.2f}' for x in results['load_average_after'])}"
             + (" (the machine was shared with other work: times are upper bounds)" if results.get("shared") else ""),
             "", "A feasibility check, not a speed benchmark: does each full profile load, train a step and fit in "
             "memory on this machine. Each s/step is one step of one run (minutes to hours each at these shapes), "
             "so it is a rough single measurement; the repeatable speed figures (medians of alternated rounds) are "
             "in livedoor.md, bart.md, pretrain.md and distributed-cpu.md.",
             "", f"Stand-ins: {json.dumps(results['stand_ins'], ensure_ascii=False)}", "",
             "| notebook | status | steps run | s/step | steps/epoch | epoch (h) | full run steps | full run (h) | peak RSS (MB) | wall (s) | run at (load after) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        when = f"{r.get('date', results['date'])} ({', '.join(str(x) for x in r.get('load_average_after', []))})"
        lines.append(f"| {r['notebook']} | {r['status']} | {r['steps_run']} | {r['s_per_step']} | "
                     f"{r['steps_per_epoch']} | {r['epoch_hours']} | {r['full_run_steps']} | {r['full_run_hours']} | "
                     f"{r['peak_rss_mb']} | {r['wall_s']} | {when} |")
    lines += ["", "s/step: the training phase's seconds, less the Trainer's evaluation inside it (eval_runtime; "
              "notebooks 03, 04), over the optimizer steps it ran. Start-up is included, and for notebook 02 "
              "(Keras) the validation pass at the end of the cut-short epoch too: an upper bound. Commands:", ""]
    lines += [f"- `{r['command']}`" for r in results["runs"]]
    notes = [f"- {r['notebook']}: {r['note']}" for r in results["runs"] if r.get("note")]
    if notes:
        lines += ["", "Notes:", "", *notes]
    md = out_dir / "fullsize.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return js, md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", default="02,03,04", help="which of 02,03,04 (comma-separated)")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per training phase (-p max_steps)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes: checks the script in seconds")
    parser.add_argument("--livedoor", type=Path, default=DATA / "livedoor" / "text", help="a livedoor text/ folder")
    parser.add_argument("--parallel", type=Path, default=DATA / "small_parallel_enja",
                        help="a folder of train/dev/test.en and .ja files")
    parser.add_argument("--work", type=Path, default=Path("/tmp/coursekit-fullsize"),
                        help="stand-ins (kept for the next run) and run folders")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where fullsize.json/.md go")
    parser.add_argument("--shared", action="store_true", help="note that the machine was busy with other work")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="one more notebook parameter for every run (e.g. -p batch_size 4 where the full "
                             "batch does not fit this machine's memory); recorded with the run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the earlier results of the notebooks not run now (one notebook per run)")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.notebooks.split(",") if k.strip()]
    unknown = [k for k in keys if k not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; use 02, 03, 04")
    for needed, path in (("livedoor", args.livedoor), ("parallel", args.parallel)):
        if not path.is_dir():
            parser.error(f"--{needed} {path} is not a folder")
    shapes = SMOKE if args.smoke else FULL
    size = "smoke" if args.smoke else "full"
    work = args.work / size
    runs = work / "runs" / time.strftime("%Y%m%d-%H%M%S")
    results = {"command": shlex.join(["python", "benchmarks/fullsize.py", *(argv if argv is not None else sys.argv[1:])]),
               "commit": commit("notebooks", "lib"), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
               "size": size, "steps": args.steps, "shared": args.shared, "stand_ins": {}, "runs": []}
    t0 = time.monotonic()
    if "02" in keys:
        bert = make_bert(work / "bert", args.livedoor, shapes["bert"])
        results["stand_ins"]["bert"] = {**shapes["bert"], "vocab_size": bert["vocab_size"], "build_s": bert["seconds"]}
    if "03" in keys:
        bart = make_bart(work / "bart", args.parallel, shapes["bart"])
        results["stand_ins"]["bart"] = {**shapes["bart"], "tokenizer_vocab": bart["tokenizer_vocab"],
                                        "build_s": bart["seconds"]}
    for key in keys:
        params: dict = {"max_steps": args.steps}
        if key == "02":
            params.update(data_dir=str(args.livedoor), bert_config=bert["bert_config"],
                          bert_checkpoint=bert["bert_checkpoint"], spm_model=bert["spm_model"])
        elif key == "03":
            params.update(data_dir=str(args.parallel), model_name=bart["model_name"], max_test=8, examples=3,
                          checkpoint_dir=str(runs / "bart-checkpoints"))
        elif key == "04":
            params.update(corpus=str(args.livedoor), work_dir=str(runs / "pretrain-work"))
        if args.smoke:
            params.update(SMOKE_PARAMS[key])
        params.update({name: value for name, value in args.param})
        print(f"[fullsize] notebook {NOTEBOOKS[key]} ({size}, {args.steps} steps) ...", flush=True)
        result = run_notebook(key, params, runs, f"fullsize-{size}")
        result["params"] = result["record"].get("params", {})
        summary = summarise(key, result, args.steps, args.parallel, params)
        summary["overrides"] = params
        summary["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        summary["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        summary["commit"] = results["commit"]
        results["runs"].append(summary)
        print(f"[fullsize] {summary['notebook']}: {summary['status']}, {summary['s_per_step']} s/step, "
              f"peak {summary['peak_rss_mb']} MB, {summary['wall_s']} s", flush=True)
    results["total_s"] = round(time.monotonic() - t0, 1)
    results["load_average_after"] = os.getloadavg()
    earlier = args.out / "fullsize.json"
    if args.keep and earlier.exists():
        old = json.loads(earlier.read_text(encoding="utf-8"))
        if old.get("size") == size:
            done = {r["notebook"] for r in results["runs"]}
            kept = [r for r in old.get("runs", []) if r["notebook"] not in done]
            results["runs"] = sorted(kept + results["runs"], key=lambda r: r["notebook"])
            results["stand_ins"] = {**old.get("stand_ins", {}), **results["stand_ins"]}
    js, md = write_results(results, args.out)
    print(md.read_text())
    print(f"[fullsize] wrote {js} and {md}")
    return 0 if all(r["status"] == "completed" for r in results["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
