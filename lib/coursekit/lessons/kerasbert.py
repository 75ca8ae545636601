"""BERT files for keras-bert: Google-format checkpoints, the length check, SentencePiece ids.

    files = prepare_model(out_dir, train_texts)            # tiny profile: SentencePiece + random BERT
    config = check_seq_len(seq_len, files["config"])        # seq_len <= max_position_embeddings
    encoder = SentencePieceEncoder(files["spm_model"], seq_len)
    rows = encoder.ids(texts)                              # [CLS] pieces [SEP], as lists of ids

Notebook 02 shows the keras-bert and Keras steps themselves (load_trained_model_from_checkpoint, the
classification head, compile with a warm-up schedule, fit, predict, save and load_model); this
module holds the plumbing around them. keras-bert needs Keras 2, which TensorFlow picks only when
TF_USE_LEGACY_KERAS=1 is set before tf.keras is first touched: importing this module sets it
(unless already set), for scripts that import it before TensorFlow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 (tf-keras) for keras-bert, before TF loads

CHECKPOINT_NAME = "bert_model.ckpt"
CONFIG_NAME = "bert_config.json"
SHARED_FOLDER = "models/bert-japanese"  # the pre-trained files in the prepared shared folder ($COURSEKIT_SHARED)


# ----------------------------------------------------------------------------- checkpoints
def tiny_config(vocab_size: int, hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4,
                intermediate_size: int = 512, max_position_embeddings: int = 512) -> dict:
    """A bert_config.json dict for a small BERT (same keys as Google's configs)."""
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    return {
        "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": hidden_size, "initializer_range": 0.02, "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings, "num_attention_heads": num_heads,
        "num_hidden_layers": num_layers, "type_vocab_size": 2, "vocab_size": vocab_size,
    }


def checkpoint_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Variable name -> shape of every tensor a Google BERT checkpoint holds (without optimizer slots)."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (v, h),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": (config.get("type_vocab_size", 2), h),
        "bert/embeddings/LayerNorm/gamma": (h,),
        "bert/embeddings/LayerNorm/beta": (h,),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}"
        for part in ("query", "key", "value"):
            shapes[f"{p}/attention/self/{part}/kernel"] = (h, h)
            shapes[f"{p}/attention/self/{part}/bias"] = (h,)
        shapes.update({
            f"{p}/attention/output/dense/kernel": (h, h), f"{p}/attention/output/dense/bias": (h,),
            f"{p}/attention/output/LayerNorm/gamma": (h,), f"{p}/attention/output/LayerNorm/beta": (h,),
            f"{p}/intermediate/dense/kernel": (h, i), f"{p}/intermediate/dense/bias": (i,),
            f"{p}/output/dense/kernel": (i, h), f"{p}/output/dense/bias": (h,),
            f"{p}/output/LayerNorm/gamma": (h,), f"{p}/output/LayerNorm/beta": (h,),
        })
    shapes.update({
        "bert/pooler/dense/kernel": (h, h), "bert/pooler/dense/bias": (h,),
        "cls/predictions/transform/dense/kernel": (h, h), "cls/predictions/transform/dense/bias": (h,),
        "cls/predictions/transform/LayerNorm/gamma": (h,), "cls/predictions/transform/LayerNorm/beta": (h,),
        "cls/predictions/output_bias": (v,),
        "cls/seq_relationship/output_weights": (2, h), "cls/seq_relationship/output_bias": (2,),
    })
    return shapes


def _initial_value(name: str, shape: tuple[int, ...], rng: np.random.Generator, std: float) -> np.ndarray:
    if name.endswith("gamma"):
        return np.ones(shape, np.float32)
    if name.endswith(("beta", "bias")):
        return np.zeros(shape, np.float32)
    # BERT's initializer: normal(0, std) truncated at two standard deviations
    return np.clip(rng.normal(0.0, std, shape), -2 * std, 2 * std).astype(np.float32)


def write_checkpoint(out_dir: str | Path, bert_config: dict,
                     weights: dict[str, np.ndarray] | None = None, seed: int = 0) -> Path:
    """Write a TF1 BERT checkpoint in Google's format (`bert_model.ckpt.*`) and `bert_config.json`
    into `out_dir`; return the checkpoint prefix `out_dir/bert_model.ckpt` (what
    `load_trained_model_from_checkpoint` takes; the config is `prefix.parent / "bert_config.json"`).

    `weights` maps Google variable names (see `checkpoint_shapes`) to arrays; names not given are
    random-initialised like BERT (normal, std `initializer_range`; LayerNorm 1/0; biases 0).
    An unknown name or a wrong shape raises ValueError naming it.
    """
    import tensorflow as tf

    shapes = checkpoint_shapes(bert_config)
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(shapes))
    if unknown:
        raise ValueError(f"unknown BERT checkpoint variable(s): {', '.join(unknown[:5])}"
                         f"{' ...' if len(unknown) > 5 else ''}; expected names like "
                         "'bert/encoder/layer_0/attention/self/query/kernel'")
    for name, value in weights.items():
        if tuple(np.shape(value)) != shapes[name]:
            raise ValueError(f"{name}: shape {tuple(np.shape(value))} does not match the config, "
                             f"expected {shapes[name]}")
    rng = np.random.default_rng(seed)
    std = float(bert_config.get("initializer_range", 0.02))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / CHECKPOINT_NAME
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, shape in shapes.items():
            value = weights.get(name)
            value = _initial_value(name, shape, rng, std) if value is None else np.asarray(value, np.float32)
            variables.append(tf.compat.v1.Variable(value, name=name, dtype=tf.float32))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False)
    write_config(bert_config, out / CONFIG_NAME)
    return prefix


def read_config(path: str | Path) -> dict:
    """A bert_config.json as a dict."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_pretrained_files(config_path: str | Path, checkpoint: str | Path,
                           spm_model: str | Path | None = None, *, hint: str = "") -> None:
    """Raise FileNotFoundError saying what to download and where, when a model file is missing."""
    missing = []
    if not Path(config_path).is_file():
        missing.append(f"BERT config: {config_path}")
    if not Path(f"{checkpoint}.index").is_file():
        missing.append(f"checkpoint: {checkpoint}.index and {checkpoint}.data-*")
    if spm_model is not None and not Path(spm_model).is_file():
        missing.append(f"SentencePiece model: {spm_model}")
    if missing:
        raise FileNotFoundError("pre-trained BERT files not found / 事前学習済み BERT のファイルがありません:\n  "
                                + "\n  ".join(missing) +
                                (f"\n{hint}" if hint else ""))


# bert_config.json of yoheikikuta/bert-japanese (its config.ini, section [BERT-CONFIG]); the Google Drive
# folder holds the checkpoint and the SentencePiece model but no bert_config.json.
BERT_JAPANESE_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
    "type_vocab_size": 2, "vocab_size": 32000,
}
PRETRAINED_HINT = (
    "The full profile fine-tunes the SentencePiece + BERT Japanese Wikipedia model of yoheikikuta/bert-japanese:\n"
    "  1. download wiki-ja.model and model.ckpt-1400000.{index,meta,data-00000-of-00001} from the Google Drive\n"
    "     folder linked in https://github.com/yoheikikuta/bert-japanese (README, 'Pretrained models':\n"
    "     https://drive.google.com/drive/folders/1Zsm9DD40lrUVu6iAnIuTH2ODIkh-WM-O) into models/bert-japanese/;\n"
    "  2. write its bert_config.json (not in that folder): python -c \"from coursekit.lessons import kerasbert; "
    "kerasbert.write_config(kerasbert.BERT_JAPANESE_CONFIG, 'models/bert-japanese/bert_config.json')\"\n"
    "  or pass -p bert_config PATH -p bert_checkpoint PREFIX -p spm_model PATH.\n"
    "  Or run the tiny profile, which writes its own small BERT.\n"
    "full プロファイルは yoheikikuta/bert-japanese のモデルを使います。上の 1. と 2. のファイルを "
    "models/bert-japanese/ に置くか、tiny プロファイル(小さな BERT を自分で作ります)で実行してください。")


def write_config(config: dict, path: str | Path) -> Path:
    """Write a bert_config.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def prepare_model(out_dir: str | Path, train_texts: Sequence[str], *, bert_config: str = "",
                  bert_checkpoint: str = "", spm_model: str = "", vocab_size: int = 4000,
                  seq_len: int = 128, seed: int = 0) -> dict:
    """The three files a fine-tuning needs: {"config", "checkpoint", "spm_model", "pretrained"}.

    Given paths (full profile): checked, with PRETRAINED_HINT when one is missing. Empty paths
    (tiny profile): a SentencePiece model trained on `train_texts` and a tiny random BERT written
    in Google's checkpoint format into out_dir, so the same keras-bert loader reads it. Its
    SentencePiece model keeps id 0 for <pad> (keras-bert masks id 0): checked here."""
    from .spm import train_sentencepiece, load as load_spm

    given = [bool(bert_config), bool(bert_checkpoint), bool(spm_model)]
    if any(given) and not all(given):
        raise ValueError("give all three of bert_config, bert_checkpoint and spm_model, or none "
                         "(none: a tiny BERT is written for this run) / bert_config、bert_checkpoint、"
                         "spm_model は三つとも渡すか、三つとも空にしてください(空: 小さな BERT をこの実行で作ります)")
    if all(given):
        from . import download  # relative defaults not here: the prepared shared folder's copies
        bert_config, spm_model = (download.shared_fallback(p, SHARED_FOLDER) for p in (bert_config, spm_model))
        bert_checkpoint = download.shared_fallback(bert_checkpoint, SHARED_FOLDER, ".index")
        shared = download.shared_dir()
        hint = (str(download.not_staged(SHARED_FOLDER, "the pre-trained Japanese BERT", "the kit never downloads "
                                        "it: Google Drive needs a browser")) if shared is not None else PRETRAINED_HINT)
        check_pretrained_files(bert_config, bert_checkpoint, spm_model, hint=hint)
        return {"config": Path(bert_config), "checkpoint": Path(bert_checkpoint),
                "spm_model": Path(spm_model), "pretrained": True}
    out = Path(out_dir)
    # BPE: a vocabulary for a tiny model in about a second (unigram, wiki-ja.model's type, takes ~20x longer here)
    spm_path = train_sentencepiece(train_texts, out / "spiece", vocab_size=vocab_size, model_type="bpe")
    sp = load_spm(spm_path)
    if sp.id_to_piece(0) != "<pad>":
        raise ValueError(f"{spm_path}: id 0 is {sp.id_to_piece(0)!r}, not <pad>; keras-bert masks id 0, "
                         "so it must not be a real token")
    config = tiny_config(vocab_size=sp.get_piece_size(), max_position_embeddings=max(seq_len, 16))
    prefix = write_checkpoint(out, config, seed=seed)
    return {"config": out / CONFIG_NAME, "checkpoint": prefix, "spm_model": spm_path, "pretrained": False}


def check_seq_len(seq_len: int, bert_config: str | Path | dict) -> dict:
    """The BERT config (a dict), after checking that `seq_len` fits it.

    A BERT has one position embedding per position, max_position_embeddings of them (512 for the
    Japanese BERT). keras-bert silently shortens seq_len to that number, so a longer seq_len would
    only fail later, with a shape error: raise ValueError here, naming both numbers."""
    config = bert_config if isinstance(bert_config, dict) else read_config(bert_config)
    where = "" if isinstance(bert_config, dict) else f" of {bert_config}"
    limit = int(config["max_position_embeddings"])
    if int(seq_len) > limit:
        raise ValueError(f"seq_len={seq_len} is longer than max_position_embeddings={limit} in the BERT "
                         f"config{where}: this BERT has position embeddings for {limit} tokens only; "
                         f"use seq_len {limit} or less / seq_len={seq_len} はこの BERT の位置埋め込みの数 "
                         f"{limit} を超えています。seq_len を {limit} 以下にしてください")
    if int(seq_len) < 3:
        raise ValueError(f"seq_len={seq_len} is too short: [CLS] and [SEP] alone take 2 tokens / "
                         f"seq_len={seq_len} は短すぎます([CLS] と [SEP] だけで 2 トークンです)。3 以上にしてください")
    return config


# ----------------------------------------------------------------------------- tokenization
class SentencePieceEncoder:
    """Texts -> token ids for keras-bert: [CLS] pieces [SEP], cut to seq_len.

    keras-bert masks token id 0 in attention, so inputs are padded with 0. The SentencePiece models
    this kit trains keep id 0 for <pad>; in yoheikikuta's wiki-ja.model id 0 is <unk>, so unknown
    pieces are masked like padding there (the notebook counts how often that happens).
    """

    def __init__(self, model_path: str | Path, seq_len: int, lowercase: bool = False):
        from .spm import load

        self.sp = load(model_path)
        self.sp_path = Path(model_path)
        self.lowercase = lowercase  # yoheikikuta's wiki-ja model was trained on lower-cased text
        self.seq_len = int(seq_len)
        self.cls_id = self._special("[CLS]", "<s>")
        self.sep_id = self._special("[SEP]", "</s>")

    def _special(self, piece: str, fallback: str) -> int:
        for name in (piece, fallback):
            pid = self.sp.piece_to_id(name)
            if pid != self.sp.unk_id() or name == self.sp.id_to_piece(self.sp.unk_id()):
                return pid
        raise ValueError(f"SentencePiece model has neither {piece} nor {fallback}")

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """[CLS] + pieces + [SEP] per text, at most seq_len ids (one SentencePiece call for all)."""
        pieces = self.sp.encode([t.lower() for t in texts] if self.lowercase else list(texts))
        keep = self.seq_len - 2
        return [[self.cls_id, *p[:keep], self.sep_id] for p in pieces]


# ----------------------------------------------------------------------------- for notebook 04
def build_classifier(config_path: str | Path, checkpoint: str | Path, num_labels: int,
                     dropout: float = 0.1, seq_len: int | None = None):
    """A keras-bert BERT from a Google-format checkpoint with a softmax head on the [CLS] vector (not
    compiled): the model notebook 02's model cell builds (tests/test_benchmarks.py fails when the two
    differ). Notebook 04 uses it to check that its exported checkpoint loads. `seq_len=None` accepts any
    length up to max_position_embeddings."""
    import warnings

    import tensorflow as tf
    from keras_bert import load_trained_model_from_checkpoint
    from keras_bert.layers import Extract

    check_pretrained_files(config_path, checkpoint)
    if seq_len is not None:
        check_seq_len(seq_len, config_path)
    with warnings.catch_warnings():  # keras-bert shares one unseeded initializer between layers
        warnings.filterwarnings("ignore", message=".*initializer.*unseeded.*")
        bert = load_trained_model_from_checkpoint(str(config_path), str(checkpoint), training=False,
                                                  trainable=True, seq_len=seq_len)
    cls = Extract(index=0, name="CLS")(bert.output)
    cls = tf.keras.layers.Dropout(dropout, name="Classifier-Dropout")(cls)
    out = tf.keras.layers.Dense(num_labels, activation="softmax", name="Classifier")(cls)
    return tf.keras.models.Model(bert.inputs, out)
