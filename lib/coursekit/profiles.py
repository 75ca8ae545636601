"""Profiles: one switch between the full cluster run and a tiny CPU run.

Every notebook's `parameters` cell has `profile = "full"` (real data, real pretrained model, GPU) or
`"tiny"` (a CPU run of a few minutes on small data and a tiny model), plus its other parameters with
the value `None`, which means "take the profile's value". The values of both profiles live here, in
one table per notebook, so no notebook copies them and the runner can check names and types.

    cfg = resolve("00_gpu_check", profile, matmul_size=matmul_size)
    cfg.matmul_size   # the value given, or the profile's
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

PROFILE_NAMES = ("tiny", "full")


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its type, its value in each profile, and what it means."""

    type: type
    tiny: Any
    full: Any
    help: str = ""


# Notebook stem -> parameter table. Every notebook's parameters cell declares exactly these names
# (plus `profile`); tests/test_notebooks.py checks that they agree.
NOTEBOOKS: dict[str, dict[str, Param]] = {
    "00_gpu_check": {
        "matmul_size": Param(int, 512, 8192, "side of the square matrices multiplied in the timing test"),
        "matmul_repeats": Param(int, 3, 20, "timed repetitions (after one warm-up)"),
        "frameworks": Param(str, "torch,tensorflow", "torch,tensorflow",
                            "comma-separated frameworks to check: torch, tensorflow"),
        "require_gpu": Param(bool, False, True, "fail the notebook when no GPU is visible"),
    },
    "05_results": {
        "runs_dir": Param(str, "", "", "folder of run folders; empty: $COURSEKIT_RUNS or runs/ of the kit"),
        "notebook_glob": Param(str, "*", "*", "glob on notebook names, e.g. 02_*"),
        "run_glob": Param(str, "*", "*", "glob on run folder names, e.g. a sweep job id like 4711_*"),
        "metric": Param(str, "", "", "metric to plot per run; empty: the first headline metric found"),
        "param": Param(str, "", "", "parameter on the x axis; empty: the first parameter that differs"),
    },
    "02_livedoor_bert": {
        "data_dir": Param(str, "", "", "unpacked livedoor text/ folder; empty: download the tarball into cache_dir"),
        "cache_dir": Param(str, "~/.cache/coursekit/livedoor", "~/.cache/coursekit/livedoor",
                           "where the downloaded corpus is kept"),
        "per_category": Param(int, 300, 0, "articles per genre (balanced subset); 0: all 7,367"),
        "max_chars": Param(int, 510, 510, "characters kept per article (title + body)"),
        "val_fraction": Param(float, 0.1, 0.1, "share of articles for validation (stratified)"),
        "test_fraction": Param(float, 0.1, 0.1, "share of articles for the test (stratified)"),
        "seed": Param(int, 0, 0, "seed of the subset, the split, the tiny model and training"),
        "bert_config": Param(str, "", "models/bert-japanese/bert_config.json",
                             "bert_config.json of the pre-trained BERT; empty: write a tiny random BERT"),
        "bert_checkpoint": Param(str, "", "models/bert-japanese/model.ckpt-1400000",
                                 "TF1 checkpoint prefix (without .index); empty: the tiny BERT"),
        "spm_model": Param(str, "", "models/bert-japanese/wiki-ja.model",
                           "SentencePiece model of the BERT; empty: train one on the training split"),
        "vocab_size": Param(int, 4000, 32000, "SentencePiece vocabulary of the tiny BERT (tiny only)"),
        "seq_len": Param(int, 128, 512, "longest token sequence (batches are padded to their own longest)"),
        "epochs": Param(int, 5, 5, "most epochs (early stopping on validation accuracy)"),
        "patience": Param(int, 2, 2, "epochs without improvement before stopping"),
        "batch_size": Param(int, 32, 16, "articles per training step"),
        "learning_rate": Param(float, 1e-3, 2e-5, "peak learning rate after warm-up"),
        "sentence": Param(str, "新型スマートフォンの発売日が発表され、予約が始まった。",
                          "新型スマートフォンの発売日が発表され、予約が始まった。",
                          "a new sentence whose genre the fine-tuned model predicts"),
    },
    "04_bert_pretraining": {
        "corpus": Param(str, "livedoor", "data/jawiki-latest-pages-articles.xml.bz2",
                        "Wikipedia dump (.xml.bz2), a folder of .txt files, or livedoor (training split)"),
        "cache_dir": Param(str, "~/.cache/coursekit/livedoor", "~/.cache/coursekit/livedoor",
                           "where the downloaded livedoor corpus is kept"),
        "work_dir": Param(str, "", "", "corpus, tokenizer and checkpoints; empty: the run folder. "
                          "Give a fixed folder to resume a killed job from its last checkpoint"),
        "max_documents": Param(int, 1500, 0, "documents used (after shuffling); 0: all"),
        "min_chars": Param(int, 5, 5, "shortest sentence kept, in characters"),
        "valid_fraction": Param(float, 0.01, 0.005, "share of documents for validation"),
        "test_fraction": Param(float, 0.01, 0.005, "share of documents held out for testing"),
        "shard_sentences": Param(int, 20000, 1000000, "sentences per corpus shard file"),
        "vocab_size": Param(int, 4000, 32000, "SentencePiece vocabulary size"),
        "character_coverage": Param(float, 0.995, 0.9995, "share of characters SentencePiece covers"),
        "input_sentence_size": Param(int, 200000, 2000000, "sentences sampled to train SentencePiece"),
        "hidden_size": Param(int, 128, 768, "BERT hidden size"),
        "num_layers": Param(int, 2, 12, "transformer layers"),
        "num_heads": Param(int, 2, 12, "attention heads"),
        "intermediate_size": Param(int, 512, 3072, "feed-forward size"),
        "max_positions": Param(int, 512, 512, "max_position_embeddings of the model"),
        "seq_len": Param(int, 64, 128, "sequence length of phase 1"),
        "steps": Param(int, 400, 100000, "optimizer steps of phase 1"),
        "phase2_seq_len": Param(int, 128, 512, "sequence length of phase 2"),
        "phase2_steps": Param(int, 0, 10000, "optimizer steps of phase 2; 0: no phase 2"),
        "batch_size": Param(int, 32, 32, "sequences per device and step"),
        "grad_accum": Param(int, 1, 8, "gradient accumulation steps (effective batch = batch x accum)"),
        "learning_rate": Param(float, 1e-3, 1e-4, "peak learning rate after warm-up"),
        "warmup_steps": Param(int, 40, 2000, "linear warm-up steps of each phase"),
        "eval_every": Param(int, 100, 2000, "steps between validation losses"),
        "save_every": Param(int, 100, 2000, "steps between checkpoints"),
        "mlm_probability": Param(float, 0.15, 0.15, "share of tokens masked"),
        "seed": Param(int, 0, 0, "seed of the split, the model and training"),
        "fill_mask_sentences": Param(str, "日本の[MASK]は東京です。|新しい[MASK]が発売された。|今日は[MASK]の試合がある。",
                                     "日本の[MASK]は東京です。|新しい[MASK]が発売された。|今日は[MASK]の試合がある。",
                                     "sentences with one [MASK] each, separated by |"),
    },
    "03_bart_translation": {
        "data_dir": Param(str, "", "", "ALT release (zip or folder), a folder of train/dev/test.en and .ja "
                          "files, or hf:NAME; empty: download ALT into cache_dir"),
        "cache_dir": Param(str, "~/.cache/coursekit/alt", "~/.cache/coursekit/alt",
                           "where the downloaded ALT release is kept"),
        "max_train": Param(int, 12000, 0, "training pairs used (the first N); 0: all"),
        "max_test": Param(int, 200, 0, "test pairs translated and scored; 0: all"),
        "model_name": Param(str, "", "facebook/bart-base",
                            "pre-trained model (hub id or folder); empty: a tiny BART trained from scratch"),
        "vocab_size": Param(int, 4000, 4000, "SentencePiece vocabulary of the tiny BART (tiny only)"),
        "d_model": Param(int, 128, 128, "hidden size of the tiny BART (tiny only)"),
        "layers": Param(int, 2, 2, "encoder and decoder layers of the tiny BART (tiny only)"),
        "max_length": Param(int, 64, 256, "longest token sequence, source and target (bart-base's byte-level "
                            "vocabulary makes Japanese targets long)"),
        "epochs": Param(int, 6, 5, "training epochs (a checkpoint after each)"),
        "batch_size": Param(int, 32, 32, "sentence pairs per training step"),
        # tiny: at 1e-3 the small BART's encoder collapsed (the same output for every source sentence)
        "learning_rate": Param(float, 5e-4, 5e-5, "peak learning rate after warm-up"),
        "num_beams": Param(int, 2, 4, "beam width when translating the test set"),
        "examples": Param(int, 8, 8, "test sentences shown with reference and output"),
        "bleu_tokenize": Param(str, "ja-mecab", "ja-mecab", "sacrebleu tokenizer for Japanese: ja-mecab or char"),
        "checkpoint_dir": Param(str, "", "", "where checkpoints go and resume from; empty: checkpoints/ in the run folder"),
        "seed": Param(int, 0, 0, "seed of the tiny model and training"),
    },
    "01_container_build": {
        "def_file": Param(str, "defs/keras-bert.def", "defs/keras-bert.def",
                          "definition file shown and checked (relative to the kit)"),
        "build": Param(bool, False, True, "build the image (needs apptainer or singularity and fakeroot)"),
        "sandbox": Param(bool, False, False, "build a writable sandbox folder instead of a .sif"),
    },
}


class ParameterError(ValueError):
    """A parameter name, type or profile that the notebook does not accept."""


def spec(notebook: str) -> dict[str, Param]:
    """The parameter table of a notebook (by stem, e.g. "00_gpu_check")."""
    try:
        return NOTEBOOKS[notebook]
    except KeyError:
        raise ParameterError(
            f"no profile table for notebook {notebook!r}; known: {', '.join(sorted(NOTEBOOKS))}"
        ) from None


def check_profile(profile: str) -> str:
    if profile not in PROFILE_NAMES:
        raise ParameterError(f"profile must be one of {PROFILE_NAMES}, got {profile!r}")
    return profile


def unknown_name_message(name: str, known: list[str], notebook: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown parameter {name!r} for {notebook}{hint}; "
            f"known: {', '.join(sorted(known))}")


def coerce(name: str, value: Any, param: Param) -> Any:
    """Check (and for strings from a command line, convert) one value to the declared type."""
    if value is None:
        return None
    want = param.type
    if isinstance(value, str) and want is not str:
        text = value.strip()
        try:
            if want is bool:
                low = text.lower()
                if low in ("true", "1", "yes"):
                    return True
                if low in ("false", "0", "no"):
                    return False
                raise ValueError(text)
            return want(text)
        except ValueError:
            raise ParameterError(
                f"parameter {name!r} expects {want.__name__}, got {value!r}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not bool and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} expects {want.__name__}, got a bool ({value!r})")
    if not isinstance(value, want):
        raise ParameterError(
            f"parameter {name!r} expects {want.__name__}, got {type(value).__name__} ({value!r})")
    return value


def resolve(notebook: str, profile: str, /, **given: Any) -> SimpleNamespace:
    """Merge the parameters a notebook was given over its profile's values.

    A given value of None means "use the profile's value". Unknown names and wrong types raise
    ParameterError with the name in the message.
    """
    check_profile(profile)
    table = spec(notebook)
    values: dict[str, Any] = {"profile": profile}
    for name in given:
        if name not in table:
            raise ParameterError(unknown_name_message(name, list(table), notebook))
    for name, param in table.items():
        value = coerce(name, given.get(name), param)
        values[name] = getattr(param, profile) if value is None else value
    return SimpleNamespace(**values)
