"""GPU training speed of the workshop's model shapes: tokens/s, model FLOP utilisation (MFU) and peak memory.

One command, PyTorch only (no TensorFlow, no network: every model is built from a config with random
weights, every batch is random token ids of the right shape), about 3-6 minutes on one GPU:

    python benchmarks/gpu.py                 # on a GPU node -> benchmarks/results/gpu-<device>.json and .md
    python benchmarks/gpu.py --cpu-smoke     # tiny shapes, 2 steps, seconds on a CPU -> a temp folder (or --out)

Workloads (BERT-base: 12 layers, 768 hidden, 12 heads, 3072 feed-forward; vocabulary 32,000 as the
Japanese wiki-ja SentencePiece model):
    bert-mlm-128   BertForMaskedLM, batch 64 x 128 tokens (pre-training phase 1, notebook 04)
    bert-mlm-512   BertForMaskedLM, batch 16 x 512 tokens (phase 2)
    bert-cls-512   BertForSequenceClassification, 9 labels, batch 16 x 512 (livedoor articles fill 512 tokens, notebook 02)
    bart-base      BartForConditionalGeneration in bart-base's shape (6+6 layers, 768, vocabulary 50,265),
                   batch 32, 128 source and 128 target tokens (notebook 03)
each in four modes: fp32 or bf16 autocast (fp16 + GradScaler where the GPU has no bf16) x attention
implementation "eager" (matmul + softmax in Python) or "sdpa" (torch's fused scaled_dot_product_attention).
One step = forward, backward, AdamW (fused on CUDA). Each mode: warm-up steps, then each timed step
synchronised; the figures are the median step (with min and max) over --steps steps.

FLOPs per training step (stated in the results):
    model FLOPs = 6 x parameters x tokens  (2 forward + 4 backward per parameter and token; the usual
                  approximation, e.g. Kaplan et al. 2020, PaLM appendix B). For BART each part counts its
                  own tokens: 6 x (encoder params x source tokens + (decoder params + LM head) x target tokens).
    + attention = 12 x layers x hidden x sequence x tokens  (QK^T and AV, forward and backward; the
                  "with attention" column; PaLM's 6N + 12LHQT).
    MFU = model FLOPs per second / the device's dense bf16 peak (table PEAK_BF16 below, by device name;
    an unknown device -> null). fp32 modes are compared with the bf16 peak too: what fp32 leaves unused.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from measure import commit  # noqa: E402  (standard library only: no TensorFlow on a GPU node)

# Dense (not 2:4 sparse) bf16 tensor-core peaks, FLOP/s, from NVIDIA's data sheets. First match wins
# (most specific names first). V100 and T4 have no bf16: their fp16 peak is used (with fp16 autocast).
PEAK_BF16 = [
    (r"GH200", 989e12),
    (r"H200 NVL", 835e12),
    (r"H200", 989e12),               # H200 SXM
    (r"H100 NVL", 835e12),
    (r"H100 PCIe", 756e12),
    (r"H100", 989e12),               # H100 SXM (reported as "NVIDIA H100 80GB HBM3")
    (r"A100", 312e12),
    (r"L40S", 362e12),
    (r"L40", 181e12),
    (r"A10G", 70e12),
    (r"A10\b", 125e12),
    (r"L4\b", 121e12),
    (r"V100", 125e12),               # fp16
    (r"T4\b", 65e12),                # fp16
]

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=32000, max_position_embeddings=512)
BART_BASE = dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                 decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, vocab_size=50265,
                 max_position_embeddings=1024)
# (name, kind, batch, sequence (source), target tokens)
WORKLOADS = [("bert-mlm-128", "mlm", 64, 128, 0), ("bert-mlm-512", "mlm", 16, 512, 0),
             ("bert-cls-512", "cls", 16, 512, 0), ("bart-base", "seq2seq", 32, 128, 128)]
SMOKE_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  vocab_size=500, max_position_embeddings=64)
SMOKE_BART = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=500,
                  max_position_embeddings=64)
SMOKE_WORKLOADS = [("bert-mlm-128", "mlm", 2, 16, 0), ("bert-mlm-512", "mlm", 2, 32, 0),
                   ("bert-cls-512", "cls", 2, 32, 0), ("bart-base", "seq2seq", 2, 16, 16)]
MODES = [("fp32", "eager"), ("fp32", "sdpa"), ("bf16", "eager"), ("bf16", "sdpa")]
NUM_LABELS = 9  # livedoor's genres


def peak_flops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a device by its name (torch.cuda.get_device_name), None when unknown."""
    for pattern, peak in PEAK_BF16:
        if device_name and re.search(pattern, device_name):
            return peak
    return None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-") or "device"


# --------------------------------------------------------------------------------------- models
def build(kind: str, attn: str, smoke: bool):
    """A model with random weights from a config (no download)."""
    from transformers import (BartConfig, BartForConditionalGeneration, BertConfig, BertForMaskedLM,
                              BertForSequenceClassification)

    if kind == "seq2seq":
        shape = SMOKE_BART if smoke else BART_BASE
        config = BartConfig(**shape, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                            attn_implementation=attn)
        return BartForConditionalGeneration(config)
    shape = SMOKE_BERT if smoke else BERT_BASE
    if kind == "cls":
        return BertForSequenceClassification(BertConfig(**shape, num_labels=NUM_LABELS, attn_implementation=attn))
    return BertForMaskedLM(BertConfig(**shape, attn_implementation=attn))


def batch_for(kind: str, batch: int, seq: int, tgt: int, vocab: int, device, generator):
    """Random token ids of the workload's shape; MLM labels on 15% of the positions (-100 elsewhere)."""
    import torch

    ids = torch.randint(5, vocab, (batch, seq), generator=generator).to(device)
    mask = torch.ones_like(ids)
    if kind == "mlm":
        labels = torch.where(torch.rand(batch, seq, generator=generator).to(device) < 0.15, ids,
                             torch.full_like(ids, -100))
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if kind == "cls":
        return {"input_ids": ids, "attention_mask": mask,
                "labels": torch.randint(0, NUM_LABELS, (batch,), generator=generator).to(device)}
    labels = torch.randint(5, vocab, (batch, tgt), generator=generator).to(device)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def flops_per_step(model, kind: str, batch: int, seq: int, tgt: int) -> tuple[float, float]:
    """(6 x params x tokens, attention FLOPs) of one training step; see the module docstring."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    if kind == "seq2seq":
        cfg = model.config
        shared = model.model.shared.weight.numel()
        n_enc = count(model.model.encoder) - shared       # the embedding lookup is not a matmul
        n_dec = count(model.model.decoder) - shared
        dense = 6 * (n_enc * batch * seq + (n_dec + shared) * batch * tgt)   # + shared: the LM head
        attn = 12 * cfg.d_model * (cfg.encoder_layers * seq * batch * seq            # encoder self
                                   + cfg.decoder_layers * tgt * batch * tgt          # decoder self
                                   + cfg.decoder_layers * seq * batch * tgt)         # cross
        return float(dense), float(attn)
    cfg = model.config
    dense = 6 * count(model) * batch * seq
    attn = 12 * cfg.num_hidden_layers * cfg.hidden_size * seq * batch * seq
    return float(dense), float(attn)


# --------------------------------------------------------------------------------------- timing
def run_one(name, kind, batch, seq, tgt, precision, attn, args, device) -> dict:
    import torch

    on_cuda = device.type == "cuda"
    row = {"workload": name, "precision": precision, "attention": attn, "batch": batch, "seq_len": seq,
           "target_len": tgt or None, "tokens_per_step": batch * (seq + tgt)}
    model = optimizer = data = None
    try:
        torch.manual_seed(0)
        model = build(kind, attn, args.cpu_smoke).to(device)
        model.train()
        row["parameters"] = sum(p.numel() for p in model.parameters())
        row["model_flops_per_step"], row["attention_flops_per_step"] = flops_per_step(model, kind, batch, seq, tgt)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if on_cuda else {}))
        generator = torch.Generator().manual_seed(0)
        data = batch_for(kind, batch, seq, tgt, model.config.vocab_size, device, generator)
        dtype = None
        if precision != "fp32":
            dtype = torch.bfloat16 if (not on_cuda or torch.cuda.is_bf16_supported()) else torch.float16
            row["precision"] = "bf16" if dtype == torch.bfloat16 else "fp16"
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model(**data).loss
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            return loss

        sync = torch.cuda.synchronize if on_cuda else (lambda: None)
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args.warmup):
            step()
        sync()
        times, started = [], time.perf_counter()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            loss = step()
            sync()
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - started > args.seconds_per_mode and len(times) >= 5:
                break
        median = statistics.median(times)
        row.update(steps_timed=len(times), step_s_median=median, step_s_min=min(times), step_s_max=max(times),
                   tokens_per_s=row["tokens_per_step"] / median, sequences_per_s=batch / median,
                   loss=float(loss.detach().float()),
                   peak_memory_gib=(torch.cuda.max_memory_allocated() / 2**30) if on_cuda else None)
        peak = args.peak
        achieved = row["model_flops_per_step"] / median
        row["model_tflops_per_s"] = achieved / 1e12
        row["mfu"] = achieved / peak if peak else None
        row["mfu_with_attention"] = ((row["model_flops_per_step"] + row["attention_flops_per_step"]) / median / peak
                                     if peak else None)
    except Exception as exc:  # out of memory, an attention implementation missing: recorded, the rest still runs
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    finally:
        del model, optimizer, data
        if on_cuda:
            torch.cuda.empty_cache()
    return row


# --------------------------------------------------------------------------------------- context
def versions() -> dict:
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for name in ("transformers", "accelerate"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


def markdown(result: dict) -> str:
    lines = [f"# GPU training speed: {result['device']}", "",
             f"`{result['command']}` — commit {result['commit']}, {result['finished']}; "
             f"{result['machine']}; load average at the start {result['load_average_start']}, "
             f"at the end {result['load_average_end']}.",
             (f"Peak used for MFU: {result['peak_bf16_tflops']:.0f} TFLOP/s (dense bf16). " if result["peak_bf16_tflops"]
              else "No known peak for this device: MFU not computed. ") + result["flops_formula"] + ".",
             *(["", "**CPU smoke run**: tiny shapes and 2 steps, to check the script; the figures mean nothing."]
               if result["cpu_smoke"] else []), "",
             "| workload | precision | attention | batch x tokens | tokens/s | median step (min-max) | "
             "TFLOP/s | MFU | MFU + attention | peak memory GiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda x: f"{100 * x:.1f}%" if x is not None else "–"  # noqa: E731
    for r in result["results"]:
        shape = f"{r['batch']} x {r['seq_len']}" + (f"+{r['target_len']}" if r.get("target_len") else "")
        if "error" in r:
            lines.append(f"| {r['workload']} | {r['precision']} | {r['attention']} | {shape} | {r['error']} "
                         "| | | | | |")
            continue
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "–"
        lines.append(f"| {r['workload']} | {r['precision']} | {r['attention']} | {shape} | {r['tokens_per_s']:,.0f} "
                     f"| {1000 * r['step_s_median']:.1f} ms ({1000 * r['step_s_min']:.1f}-"
                     f"{1000 * r['step_s_max']:.1f}, n={r['steps_timed']}) | {r['model_tflops_per_s']:.1f} "
                     f"| {pct(r['mfu'])} | {pct(r['mfu_with_attention'])} | {mem} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny shapes, 2 steps, on the CPU: checks the script in seconds (results to a temp folder)")
    parser.add_argument("--out", type=Path, help="results folder (default: benchmarks/results; --cpu-smoke: a temp folder)")
    parser.add_argument("--steps", type=int, help="timed steps per mode (default 20; smoke 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; smoke 1)")
    parser.add_argument("--seconds-per-mode", type=float, default=15.0, help="stop timing a mode after this (>= 5 steps)")
    parser.add_argument("--budget", type=float, default=450.0, help="skip the remaining modes after this many seconds")
    parser.add_argument("--only", default="", help="comma-separated workload names (default: all)")
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.cpu_smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.cpu_smoke else 3)

    import torch

    started_at = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    if args.cpu_smoke:
        device, device_name = torch.device("cpu"), "cpu-smoke"
        out = args.out or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    else:
        if not torch.cuda.is_available():
            print("gpu.py: no CUDA device visible (use --cpu-smoke to check the script on a CPU)", file=sys.stderr)
            return 2
        device, device_name = torch.device("cuda", 0), torch.cuda.get_device_name(0)
        out = args.out or RESULTS
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (TF32 would be a third precision)
        torch.backends.cudnn.allow_tf32 = False
    args.peak = None if args.cpu_smoke else peak_flops(device_name)
    workloads = SMOKE_WORKLOADS if args.cpu_smoke else WORKLOADS
    only = {w for w in args.only.split(",") if w}
    rows = []
    for name, kind, batch, seq, tgt in workloads:
        if only and name not in only:
            continue
        for precision, attn in MODES:
            if time.perf_counter() - started_at > args.budget:
                rows.append({"workload": name, "precision": precision, "attention": attn, "batch": batch,
                             "seq_len": seq, "target_len": tgt or None, "error": "skipped: --budget spent"})
                continue
            row = run_one(name, kind, batch, seq, tgt, precision, attn, args, device)
            rows.append(row)
            shown = (f"{row['tokens_per_s']:,.0f} tokens/s, median step {1000 * row['step_s_median']:.1f} ms"
                     + (f", MFU {100 * row['mfu']:.1f}%" if row.get("mfu") is not None else "")
                     + (f", peak {row['peak_memory_gib']:.1f} GiB" if row.get("peak_memory_gib") is not None else "")
                     if "error" not in row else row["error"])
            print(f"{name:<13} {row['precision']:<5} {attn:<6} {shown}", flush=True)

    result = {
        "device": device_name, "device_count": torch.cuda.device_count() if not args.cpu_smoke else 0,
        "peak_bf16_tflops": args.peak / 1e12 if args.peak else None,
        "command": " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "commit": commit("benchmarks/gpu.py"), "versions": versions(),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.machine()}",
        "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"), "elapsed_s": round(time.perf_counter() - started_at, 1),
        "cpu_smoke": args.cpu_smoke, "steps": args.steps, "warmup": args.warmup,
        "flops_formula": ("model FLOPs per step = 6 x parameters x tokens (BART: 6 x (encoder params x source "
                          "tokens + (decoder params + LM head) x target tokens)); attention adds 12 x layers x "
                          "hidden x sequence x tokens; MFU = model FLOPs/s / dense bf16 peak"),
        "timing": "per mode: warm-up steps, then each step synchronised; median of the timed steps (min, max)",
        "results": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{slug(device_name)}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {out / (stem + '.json')} and .md in {result['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
