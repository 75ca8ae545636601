"""Benchmark of notebook 02 on the real livedoor corpus (run by hand, alone on the machine; not in CI).

    .venv/bin/python benchmarks/livedoor.py [--data-dir ../shared/data/livedoor/text] [--rounds 5]

Notebook 02's own code is what runs: its cells, by cell id (SETUP_CELLS, MODEL_CELLS, FIT_CELLS below),
are executed here on its tiny profile, so the model, the warm-up schedule and the fit call measured are the
notebook's (tests/test_benchmarks.py checks that the cells still run this way).

Writes benchmarks/results/livedoor.json, livedoor.md and livedoor_tiny_metrics.json. Every time is the
median of `--rounds` runs after a warm-up round, the variants alternated (benchmarks/measure.py):
1. fine-tuning, inside a Jupyter kernel (papermill) as notebook 02 runs: notebook 02's training call
   (its callbacks and fit cells: `model.fit` on a tf.data dataset of the pre-padded arrays, autotuner off,
   EarlyStopping, progress lines, validation) against plain `model.fit` on the numpy arrays, and against
   the same fit cell with tf.data's autotuner on (`prefetch(tf.data.AUTOTUNE)`, the notebook before);
   a fresh model from the notebook's cells each run, one epoch each. Recorded per run: the training time (to
   `on_train_end`; the ratio is what the kit's path costs over plain Keras) and the wait until `fit`
   returns (the epoch's iterator is destroyed; with the autotuner on it waits for the autotuner's thread);
2. prediction: notebook 02's batched path (its `to_inputs`: SentencePiece for all texts at once; `model.predict`)
   against one document at a time (one tokenizer and one model call per article, as the original
   workshop script did);
3. the TF-IDF + LinearSVC baseline on all 7,367 articles (same split as the notebook);
4. notebook 02 end to end on the tiny profile through the runner (wall time, accuracies).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # keras-bert needs Keras 2: before TensorFlow loads
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import RESULTS, ROOT, Results, alternate, copy_portable, portable, summary  # noqa: E402

from coursekit.harness import params  # noqa: E402
from coursekit.lessons import baseline, livedoor  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "livedoor" / "text"
NOTEBOOK = ROOT / "notebooks" / "02_livedoor_bert.ipynb"


# Notebook 02's own code cells (by cell id), executed here: the benchmark times the notebook's code, not a copy.
SETUP_CELLS = ("nb02-03", "nb02-03-strategy", "nb02-05", "nb02-09", "nb02-13", "nb02-15")  # imports ... tokens
MODEL_CELLS = ("nb02-17", "nb02-19", "nb02-19-compile")   # keras-bert model, warm-up schedule, compile
FIT_CELLS = ("nb02-21", "nb02-21-fit")                    # callbacks; the tf.data pipeline and model.fit


def notebook_cells(*ids: str) -> list[tuple[str, str]]:
    """(id, source) of notebook 02's code cells `ids`, in the order asked; a KeyError names an id the
    notebook no longer has."""
    import nbformat

    cells = {c.get("id"): c.source for c in nbformat.read(str(NOTEBOOK), as_version=4).cells
             if c.cell_type == "code"}
    missing = [i for i in ids if i not in cells]
    if missing:
        raise KeyError(f"{NOTEBOOK.name} has no code cell {missing}: update the cell ids in benchmarks/livedoor.py")
    return [(i, cells[i]) for i in ids]


def run_cells(ns: dict, cells: list[tuple[str, str]]) -> dict:
    """Execute notebook cells in the namespace `ns`, in order, as the notebook's kernel does."""
    for cell_id, source in cells:
        exec(compile(source, f"{NOTEBOOK.name} cell {cell_id}", "exec"), ns)
    return ns


def tiny_setup(data_dir: Path, tmp: Path, **overrides) -> dict:
    """Notebook 02 on its tiny profile (and `overrides`) up to the model: its own cells from the imports to
    the padded arrays, in a fresh namespace; the run record they write goes to tmp/run."""
    from coursekit.contracts import RUN_DIR_ENV
    from coursekit.harness.runner import kernel_env

    ns = {**params.resolve(NOTEBOOK, "tiny", {"data_dir": str(data_dir), **overrides}), "__name__": "__main__"}
    (tmp / "run").mkdir(parents=True, exist_ok=True)
    with kernel_env({RUN_DIR_ENV: str(tmp / "run")}):
        return run_cells(ns, notebook_cells(*SETUP_CELLS))


def new_model(ns: dict):
    """Notebook 02's model and optimizer, built by its own cells (keras-bert encoder, [CLS] head, Adam with
    its warm-up + linear decay schedule); returns the compiled model (also ns["model"])."""
    return run_cells(ns, notebook_cells(*MODEL_CELLS))["model"]


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise ValueError(f"notebook 02's fit cell no longer holds {old!r} once: update benchmarks/livedoor.py")
    return text.replace(old, new)


def fine_tune(ns: dict, rounds: int) -> dict:
    """One epoch of notebook 02's fit call (its own callbacks and fit cells) against plain model.fit on the
    same arrays (and against the same fit cell with tf.data's autotuner on, as the notebook had it before),
    alternated; every run builds a fresh model with the notebook's cells (`ns`: tiny_setup's, epochs=1).
    Each run records the time to the
    end of training (`on_train_end`) and the wait from there until `fit` returns (the epoch's iterator is
    destroyed: with the autotuner on, that waits for its thread)."""
    import tensorflow as tf

    callbacks_cell, fit_cell = notebook_cells(*FIT_CELLS)
    before = (fit_cell[0], _replace_once(_replace_once(fit_cell[1], "no_autotune.autotune.enabled = False",
                                                       "no_autotune.autotune.enabled = True"),
                                         ".prefetch(2)", ".prefetch(tf.data.AUTOTUNE)"))

    class Ended(tf.keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.at = time.perf_counter()

    def timed(fit):
        model, ended = new_model(ns), Ended()
        t0 = time.perf_counter()
        fit(model, ended)
        t1 = time.perf_counter()
        return {"fit_s": t1 - t0, "train_s": ended.at - t0, "wait_after_training_s": t1 - ended.at}

    def notebook_fit(cell):
        def fit(model, ended):  # notebook 02's callbacks cell, then its fit cell with `ended` among the callbacks
            run_cells(ns, [callbacks_cell])
            ns["callbacks"].append(ended)
            run_cells(ns, [cell])
        return lambda: timed(fit)

    def plain():
        return timed(lambda model, ended: model.fit(
            ns["train_x"], ns["train_y"], validation_data=(ns["val_x"], ns["val_y"]), epochs=1,
            batch_size=ns["global_batch"], shuffle=True, verbose=0, callbacks=[ended]))

    times = alternate({"kit": notebook_fit(fit_cell), "plain": plain, "kit_autotune": notebook_fit(before)},
                      rounds=rounds)

    def per_run(key):  # median, min and max of one figure of each run, per variant
        return {name: summary([r[key] for r in t["extra"]]) for name, t in times.items()}

    train = per_run("train_s")
    return {"rows": len(ns["train_y"]), "seq_len": ns["seq_len"], "batch_size": ns["global_batch"],
            "rows_filling_seq_len": round(ns["truncated"], 3), "times": times,
            "train_s": train, "wait_after_training_s": per_run("wait_after_training_s"),
            "ratio_kit_over_plain": round(train["kit"]["median_s"] / train["plain"]["median_s"], 3)}


KERNEL_CELL = """\
import importlib.util, json, os, sys
from pathlib import Path
os.environ["TF_USE_LEGACY_KERAS"] = "1"
spec = importlib.util.spec_from_file_location("livedoor_benchmark", {script!r})
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
figures = bench.fine_tune(bench.tiny_setup(Path({data!r}), Path({tmp!r}), epochs=1), {rounds})
Path({out!r}).write_text(json.dumps(figures))
"""


def fine_tune_in_kernel(data_dir: Path, rounds: int, tmp: Path) -> dict:
    """fine_tune() run inside a Jupyter kernel (papermill), where notebook 02 runs: the waits after
    training showed up in the kernel far more than in a plain Python process."""
    import nbformat
    import papermill

    from coursekit.harness import threads
    from coursekit.harness.runner import kernel_env

    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "fine_tune.json"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_CELL.format(script=str(Path(__file__).resolve()), data=str(data_dir),
                                                             rounds=rounds, tmp=str(tmp), out=str(out)))]
    nbformat.write(nb, tmp / "fine_tune.ipynb")
    with kernel_env(threads.kernel_values(threads.plan())):  # the thread variables the runner gives notebook 02's kernel
        papermill.execute_notebook(str(tmp / "fine_tune.ipynb"), str(tmp / "fine_tune.out.ipynb"),
                                   kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    return json.loads(out.read_text())


def prediction(ns: dict, docs: int, loop_docs: int, batch_size: int, rounds: int) -> dict:
    """Notebook 02's batched prediction (its `to_inputs`, `model.predict`) against one article at a time."""
    import numpy as np

    model, to_inputs = new_model(ns), ns["to_inputs"]
    test_texts = ns["test"].texts
    texts = (test_texts * (docs // len(test_texts) + 1))[:docs]
    out = {}

    def batched():
        out["batched"] = model.predict(to_inputs(texts), batch_size=batch_size, verbose=0)

    def one_by_one():
        out["single"] = np.concatenate([np.asarray(model.predict_on_batch(to_inputs([t]))) for t in texts[:loop_docs]])

    times = alternate({"batched": batched, "one_by_one": one_by_one}, rounds=rounds)
    per_s = {"batched": docs / times["batched"]["median_s"], "one_by_one": loop_docs / times["one_by_one"]["median_s"]}
    return {"seq_len": ns["seq_len"], "batch_size": batch_size, "docs_batched": docs, "docs_one_by_one": loop_docs,
            "times": times, "docs_per_s": {k: round(v, 1) for k, v in per_s.items()},
            "ratio": round(per_s["batched"] / per_s["one_by_one"], 2),
            "max_abs_difference": float(abs(out["batched"][:loop_docs] - out["single"]).max())}


def baseline_full(corpus, rounds: int) -> dict:
    train, _, test = livedoor.split(corpus, 0.1, 0.1, seed=0)
    acc = {}

    def fit():
        model = baseline.train(train.texts, train.labels)
        acc["value"] = livedoor.evaluate(test.labels, model.predict(test.texts), corpus.label_names)["accuracy"]

    times = alternate({"baseline": fit}, rounds=rounds)
    return {"articles": len(corpus), "n_train": len(train), "n_test": len(test), "accuracy": acc["value"],
            "times": times}


def tiny_notebook(data_dir: Path, rounds: int, tmp: Path) -> dict:
    from coursekit.harness.runner import run_notebook

    runs = []

    def run():
        result = run_notebook(NOTEBOOK, "tiny", {"data_dir": str(data_dir)}, runs_dir=tmp / "runs", quiet=True)
        if not result.ok:
            raise SystemExit(f"notebook 02 failed: {result.error}")
        runs.append(result)
        m = result.metrics["metrics"]
        return {"accuracy": m["accuracy"], "baseline_accuracy": m["baseline_accuracy"],
                "fine_tune_s": result.metrics["phases"]["fine-tune"]}

    times = alternate({"notebook": run}, rounds=rounds)
    last = runs[-1]
    copy_portable(last.run_dir / "metrics.json", RESULTS / "livedoor_tiny_metrics.json")
    m = last.metrics["metrics"]
    return {"times": times, "accuracy": m["accuracy"], "baseline_accuracy": m["baseline_accuracy"],
            "baseline_same_text_accuracy": m.get("baseline_same_text_accuracy"),
            "baseline_uncapped_accuracy": m.get("baseline_uncapped_accuracy"),
            "articles_used": m["articles_used"], "epochs_run": m["epochs_run"], "phases": last.metrics["phases"],
            "accuracies_all_runs": [r["accuracy"] for r in times["notebook"]["extra"]]}


def markdown(res: Results) -> list[str]:
    f = res.data["figures"]
    lines = res.header("livedoor benchmark (notebook 02)")
    if "fine_tune" in f:
        t = f["fine_tune"]
        names = {"kit": "notebook 02: tf.data of the arrays, autotuner off, `prefetch(2)` (+ EarlyStopping, progress lines)",
                 "plain": "plain `model.fit` on the numpy arrays",
                 "kit_autotune": "notebook 02 before: the same with `prefetch(tf.data.AUTOTUNE)` (autotuner on)"}
        lines += [f"## Fine-tuning: notebook 02's fit call vs plain `model.fit` ({t['rows']} articles x "
                  f"{t['seq_len']} tokens, batch {t['batch_size']}, one epoch with validation, tiny BERT, "
                  "in a Jupyter kernel as the notebook runs)", "",
                  "| path | training: median (min-max) | wait after training: median (max) |", "|---|---|---|"]
        for key, name in names.items():
            train, wait = t["train_s"][key], t["wait_after_training_s"][key]
            lines.append(f"| {name} | {train['median_s']:.2f} s ({train['min_s']:.2f}-{train['max_s']:.2f}) | "
                         f"{wait['median_s']:.2f} s ({wait['max_s']:.2f}) |")
        lines += ["", f"Training (from the `fit` call to its `on_train_end`): notebook 02's path takes "
                  f"**{t['ratio_kit_over_plain']:.2f}x** plain `model.fit` ({t['train_s']['kit']['median_s']:.2f} s vs "
                  f"{t['train_s']['plain']['median_s']:.2f} s). The wait after training is the time from `on_train_end` "
                  "until `fit` returns: Keras destroys the epoch's tf.data iterator, and with the autotuner on "
                  "(Keras turns it on for numpy arrays too) the destructor waits for the autotuner's thread "
                  "(seen with `py-spy dump --native`: `RootDataset::Iterator::~Iterator`; in notebook 02's kernel the "
                  "same destructor also waited between epochs). The wait is the autotuner thread's sleep, so it "
                  "comes in some runs and not others: compare the maxima. "
                  f"{t['rows_filling_seq_len']:.0%} of the training articles fill all {t['seq_len']} tokens, "
                  "so padding each batch to its longest article would save nothing here.", ""]
    if "prediction" in f:
        e = f["prediction"]
        lines += ["## Prediction: batched vs one article at a time (same tiny BERT)", "",
                  "| path | documents | median | documents/s |", "|---|---|---|---|",
                  f"| notebook 02: pre-padded arrays, `model.predict` (batch {e['batch_size']}) | {e['docs_batched']} | "
                  f"{e['times']['batched']['median_s']:.2f} s | {e['docs_per_s']['batched']} |",
                  f"| one document at a time (as the original script) | {e['docs_one_by_one']} | "
                  f"{e['times']['one_by_one']['median_s']:.2f} s | {e['docs_per_s']['one_by_one']} |",
                  "", f"Batched: **{e['ratio']}x** the documents per second. Largest difference between the two "
                  f"paths' probabilities: {e['max_abs_difference']:.1e}.", ""]
    lines += ["## Accuracy and end-to-end time", "", "| what | articles | test accuracy | median time (min-max) |",
              "|---|---|---|---|"]
    if "baseline_all_articles" in f:
        b = f["baseline_all_articles"]
        t = b["times"]["baseline"]
        lines.append(f"| TF-IDF char 1-3-grams + LinearSVC, all articles (510-char cap) | {b['articles']} | "
                     f"{b['accuracy']:.3f} | {t['median_s']:.1f} s ({t['min_s']:.1f}-{t['max_s']:.1f}) |")
    if "tiny_notebook" in f:
        n = f["tiny_notebook"]
        t = n["times"]["notebook"]
        lines += [f"| notebook 02 `--profile tiny` end to end (runner): BERT from random init, {n['epochs_run']} epochs | "
                  f"{n['articles_used']} | {n['accuracy']:.3f} | {t['median_s']:.1f} s ({t['min_s']:.1f}-{t['max_s']:.1f}) |",
                  f"| same run: TF-IDF baseline, first 510 characters | {n['articles_used']} | {n['baseline_accuracy']:.3f} | |",
                  f"| same run: TF-IDF baseline on the text BERT reads | {n['articles_used']} | "
                  f"{n['baseline_same_text_accuracy']:.3f} | |",
                  f"| same run: TF-IDF baseline, whole articles | {n['articles_used']} | "
                  f"{n['baseline_uncapped_accuracy']:.3f} | |", "",
                  f"BERT's accuracy in the {t['runs']} timed runs: {', '.join(f'{a:.3f}' for a in n['accuracies_all_runs'])}. "
                  "Phases of the last run (s): " + ", ".join(f"{k} {v:.1f}" for k, v in n["phases"].items()) + ".",
                  "Its metrics.json is `livedoor_tiny_metrics.json`."]
    lines += ["", "A tiny BERT trained from random weights on a CPU for a minute or two stays below the TF-IDF "
              "baseline; pre-training (notebook 04) is what makes BERT strong: the pre-trained Japanese BERT of the "
              "full profile reached 0.97 test accuracy on livedoor in its author's README (yoheikikuta/bert-japanese, "
              "\"Finetuning with BERT Japanese\", a 6:2:2 split of its own)."]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per figure (after one warm-up round)")
    ap.add_argument("--docs", type=int, default=1000, help="documents for the batched prediction path")
    ap.add_argument("--loop-docs", type=int, default=200, help="documents for the one-by-one loop")
    ap.add_argument("--only", nargs="+", choices=["fine_tune", "prediction", "baseline", "notebook"],
                    default=["fine_tune", "prediction", "baseline", "notebook"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    data = Path(args.data_dir)
    if not data.is_dir():
        print(f"livedoor corpus not found at {data}: {livedoor.DOWNLOAD_HINT}", file=sys.stderr)
        return 2
    res = Results("livedoor", args.out, keep=set(args.only) != set(ap.get_default("only")))
    res.add("data", portable(str(data)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "fine_tune" in args.only:
            t = fine_tune_in_kernel(data, args.rounds, tmp / "fine_tune")
            res.add("fine_tune", t)
            waits = {k: v["median_s"] for k, v in t["wait_after_training_s"].items()}
            print(f"fine-tune: kit/plain {t['ratio_kit_over_plain']:.2f}x; waits after training {waits}", flush=True)
        if "prediction" in args.only:
            e = prediction(tiny_setup(data, tmp / "prediction"), args.docs, args.loop_docs, 64, args.rounds)
            res.add("prediction", e)
            print(f"prediction: batched {e['ratio']}x one by one", flush=True)
        if "baseline" in args.only:
            res.add("baseline_all_articles", baseline_full(livedoor.load_corpus(data), args.rounds))
        if "notebook" in args.only:
            n = tiny_notebook(data, args.rounds, tmp)
            res.add("tiny_notebook", n)
            print(f"notebook 02 tiny: median {n['times']['notebook']['median_s']:.1f} s", flush=True)
    res.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
