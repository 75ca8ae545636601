"""What in notebook 04's export helps or hurts notebook 02? Its vocabulary, its weights, position embeddings.

    .venv/bin/python benchmarks/pretrain_transfer.py --livedoor ../shared/data/livedoor/text [--seeds 0 1 2]
    .venv/bin/python benchmarks/pretrain_transfer.py --quick     # a smoke test on generated text (minutes)

pretrain_lift.py measures the whole chain (notebook 04 tiny, then the notebook 02 command it prints)
against notebook 02's random start. The two differ in two things at once: the vocabulary (02 trains a BPE
vocabulary on its own training split, the chain uses 04's unigram vocabulary) and the initial weights.
This script separates them. For every seed it runs notebook 04 tiny once (leaving out that seed's
validation and test articles, as pretrain_lift.py does) and then notebook 02 tiny four times, through
the runner, with the same parameters as the command 04 prints except the checkpoint:

- random_04_vocab: 04's vocabulary, random weights (the same initialisation as 02's own random start)
- pretrained: 04's vocabulary and weights (the command as printed)
- random_04_vocab_zero_position: as random_04_vocab, with the position embeddings set to zero
- pretrained_zero_position: as pretrained, with the position embeddings set to zero

With --learning-rates LR ...: notebook 02 also from the pre-trained start (the command as printed but for
`-p learning_rate`) and from its own random start (02 tiny as it is but for `-p learning_rate`) at each LR,
per seed: is the printed command's fine-tuning learning rate what keeps it below the random start?
--only-learning-rates skips the four starts and keeps their figures from the results file.

Zero position embeddings make the encoder blind to word order at the start of fine-tuning (it can learn
them back). If the pre-trained start does better than the random one once both have zero positions, the
weights carry something the classifier uses. The variants run one after another (no timing here).
Accuracies of notebook 02 tiny are deterministic for a seed
on one machine; figures are medians of the seeds. Writes results/pretrain_transfer.json and .md.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from measure import RESULTS, Results  # noqa: E402
from pretrain_lift import NB02, QUICK_02, Chain, _check, _median, chain_data, chain_options  # noqa: E402

from coursekit.harness.runner import build_parser, run_notebook  # noqa: E402

POSITION = "bert/embeddings/position_embeddings"
VARIANTS = {
    "random_04_vocab": "04's vocabulary, random weights",
    "pretrained": "04's vocabulary and weights (the command 04 prints)",
    "random_04_vocab_zero_position": "04's vocabulary, random weights, position embeddings zero",
    "pretrained_zero_position": "04's vocabulary and weights, position embeddings zero",
}


def checkpoint(export: Path, out: Path, seed: int, *, pretrained: bool, zero_position: bool) -> Path:
    """A checkpoint in out/ with export's config and SentencePiece model: its weights or random ones
    (kerasbert.write_checkpoint with `seed`, as notebook 02's random start), position embeddings zeroed
    if asked. Returns the checkpoint prefix."""
    import shutil

    import numpy as np
    import tensorflow as tf

    from coursekit.lessons import kerasbert

    config = kerasbert.read_config(export / kerasbert.CONFIG_NAME)
    shapes = kerasbert.checkpoint_shapes(config)
    weights = {}
    if pretrained:
        reader = tf.train.load_checkpoint(str(export / kerasbert.CHECKPOINT_NAME))
        weights = {name: reader.get_tensor(name) for name in shapes}
    if zero_position:
        weights[POSITION] = np.zeros(shapes[POSITION], np.float32)
    prefix = kerasbert.write_checkpoint(out, config, weights, seed=seed)
    shutil.copy2(export / "spiece.model", out / "spiece.model")
    return prefix


def main(argv=None) -> int:
    ap = chain_options(__doc__.splitlines()[0])
    ap.add_argument("--learning-rates", type=float, nargs="*", default=[],
                    help="fine-tuning learning rates to try for the pre-trained and the random start")
    ap.add_argument("--only-learning-rates", action="store_true",
                    help="run only the --learning-rates part; keep the four starts' figures from the results file")
    ap.add_argument("--rewrite", action="store_true", help="write the .md again from the .json (no runs)")
    args = ap.parse_args(argv)
    if args.rewrite:
        print(Results.rewrite("pretrain_transfer", markdown, args.out))
        return 0
    if args.only_learning_rates and not args.learning_rates:
        ap.error("--only-learning-rates needs --learning-rates")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        corpus, out, label = chain_data(ap, args, scratch, "pretrain_transfer")
        if args.quick:
            args.seeds = args.seeds[:1]
        res = Results("pretrain_transfer", out, keep=args.only_learning_rates)
        res.add("data", label)
        chain = Chain(corpus, scratch / "runs", args.quick)
        rows = []
        for seed in args.seeds:
            pre = chain.pretrained(seed)        # notebook 04 tiny and the command it prints, as printed
            argv = json.loads(Path(pre["metrics04"]).read_text(encoding="utf-8"))["metrics"]["finetune_command"]
            parsed = build_parser().parse_args(argv[4:])
            given = dict(map(tuple, parsed.parameter))
            export = Path(given["bert_checkpoint"]).parent
            extra = [(k, str(v)) for k, v in QUICK_02.items() if k != "per_category"] if args.quick else []
            row = {"seed": seed, "pretrained": pre["accuracy"], "tfidf_same_text": pre["tfidf_same_text"],
                   "command": pre["command"], "notebook04_s": pre["notebook04_s"]}

            starts = (("random_04_vocab", False, False), ("random_04_vocab_zero_position", False, True),
                      ("pretrained_zero_position", True, True))
            for name, pretrained, zero_position in ([] if args.only_learning_rates else starts):
                prefix = checkpoint(export, scratch / f"{name}-{seed}", seed,
                                    pretrained=pretrained, zero_position=zero_position)
                p = {**given, "bert_config": str(prefix.parent / "bert_config.json"),
                     "bert_checkpoint": str(prefix), "spm_model": str(prefix.parent / "spiece.model")}
                result = _check(run_notebook(NB02, parsed.profile, [*p.items(), *extra], runs_dir=chain.runs,
                                             quiet=True), f"notebook 02 ({name}, seed {seed})")
                row[name] = result.metrics["metrics"]["accuracy"]
                print(f"seed {seed}: {name} {row[name]:.3f}", flush=True)
            print(f"seed {seed}: pretrained (as printed) {row['pretrained']:.3f}", flush=True)
            for lr in args.learning_rates:
                for start, notebook_params in (("pretrained", given), ("random", {"data_dir": given["data_dir"]}
                                                                          if "data_dir" in given else {})):
                    p = {**notebook_params, "seed": str(seed), "learning_rate": f"{lr:g}"}
                    result = _check(run_notebook(NB02, parsed.profile, [*p.items(), *extra], runs_dir=chain.runs,
                                                 quiet=True), f"notebook 02 ({start} start, lr {lr:g}, seed {seed})")
                    row[f"{start}_lr{lr:g}"] = result.metrics["metrics"]["accuracy"]
                    print(f"seed {seed}: {start} start at lr {lr:g}: {row[f'{start}_lr{lr:g}']:.3f}", flush=True)
            rows.append(row)

        if not args.only_learning_rates:
            res.add("seeds", args.seeds)
            res.add("accuracy", {name: _median(rows, name) for name in VARIANTS})
            res.add("tfidf_same_text", statistics.median(r["tfidf_same_text"] for r in rows))
            res.add("runs", rows)
        if args.learning_rates:
            res.add("learning_rates", {
                "seeds": args.seeds, "command_learning_rate": float(given["learning_rate"]),
                "command": _median(rows, "pretrained"),
                "rates": [{"learning_rate": lr, **{start: _median(rows, f"{start}_lr{lr:g}")
                                                   for start in ("pretrained", "random")}}
                          for lr in args.learning_rates]})
            res.add("learning_rate_runs", rows)
        res.write(markdown)
    return 0


def markdown(res: Results) -> list[str]:
    f = res.data["figures"]
    lines = [line for line in res.header("What in notebook 04's export helps notebook 02 (tiny profiles)")
             if not line.startswith("Each time is the median")]     # accuracies here, no times
    lift = RESULTS / "pretrain_lift.json"
    own = json.loads(lift.read_text(encoding="utf-8"))["figures"]["three"]["random"] if lift.is_file() else None
    if "accuracy" in f:
        a = {k: v["median"] for k, v in f["accuracy"].items()}
        lines += [f"Data: {f['data']}. Seeds {f['seeds']}: notebook 04 tiny once per seed (without that seed's "
                  "validation and test articles), then notebook 02 tiny from four starts, all with 04's vocabulary "
                  "and the parameters of the command 04 prints. Test accuracy of notebook 02:", "",
                  "| start of notebook 02 | median | min | max | per seed |", "|---|---:|---:|---:|---|"]
        for name, label in VARIANTS.items():
            r = f["accuracy"][name]
            lines.append(f"| {label} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | "
                         + ", ".join(f"{v:.3f}" for v in r["values"]) + " |")
        lines += ["", f"TF-IDF + SVM on the same text (median): {f['tfidf_same_text']:.3f}."
                  + (f" Notebook 02's own random start (its BPE vocabulary, pretrain_lift.md): {own['median']:.3f} "
                     f"({', '.join(f'{v:.3f}' for v in own['values'])}); vocabulary alone (04's minus 02's, random "
                     f"weights): {(a['random_04_vocab'] - own['median']) * 100:+.1f} points." if own else ""), "",
                  f"Weights (pre-trained minus random, 04's vocabulary): "
                  f"{(a['pretrained'] - a['random_04_vocab']) * 100:+.1f} points; with zero position embeddings: "
                  f"{(a['pretrained_zero_position'] - a['random_04_vocab_zero_position']) * 100:+.1f} points. "
                  f"Zero instead of random position embeddings (random weights): "
                  f"{(a['random_04_vocab_zero_position'] - a['random_04_vocab']) * 100:+.1f} points.", ""]
    if "learning_rates" in f:
        lr = f["learning_rates"]
        lines += ["## The fine-tuning learning rate", "",
                  f"Seeds {lr['seeds']}; notebook 02 tiny from the pre-trained start (the command 04 prints, at "
                  f"learning rate {lr['command_learning_rate']:g}, but for `-p learning_rate`) and from its own random "
                  "start (02 tiny as it is but for `-p learning_rate`). Test accuracy, median (min-max; per seed):", "",
                  "| learning rate | pre-trained start | random start |", "|---:|---|---|"]
        for r in lr["rates"]:
            cells = [f"{r[k]['median']:.3f} ({r[k]['min']:.3f}-{r[k]['max']:.3f}; "
                     + ", ".join(f"{v:.3f}" for v in r[k]["values"]) + ")" for k in ("pretrained", "random")]
            lines.append(f"| {r['learning_rate']:g} | {cells[0]} | {cells[1]} |")
        c = lr["command"]
        lines += ["", f"At the command's own learning rate {lr['command_learning_rate']:g}: pre-trained start "
                  f"{c['median']:.3f} (the four starts' run)." + (f" Notebook 02's random start as it is: "
                                                                 f"{own['median']:.3f}." if own else ""), ""]
    lines += ["Read with pretrain_lift.md: notebook 02 tiny is deterministic for a seed on one machine, and the "
              "'command 04 prints' row repeats that file's own pre-trained start per seed."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
