"""BERT in keras-bert: Google-format checkpoints, SentencePiece encoding, a fine-tuned classifier.

    prefix = write_checkpoint(out_dir, tiny_config(vocab_size=sp.get_piece_size()))   # tiny profile
    model = build_classifier(config_path, prefix, num_labels=9)    # keras-bert's real loader
    encoder = SentencePieceEncoder("wiki-ja.model", seq_len=256)
    history = fit(model, encoder, train_texts, train_labels, val_texts, val_labels, ...)

keras-bert needs Keras 2, which TensorFlow picks only when TF_USE_LEGACY_KERAS=1 is set before
tf.keras is first touched: importing this module sets it (unless already set).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 (tf-keras) for keras-bert, before TF loads

CHECKPOINT_NAME = "bert_model.ckpt"
CONFIG_NAME = "bert_config.json"


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


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a checkpoint as numpy arrays (optimizer slots included when present)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


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
        raise FileNotFoundError("pre-trained BERT files not found:\n  " + "\n  ".join(missing) +
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
    "  2. write its bert_config.json (not in that folder): python -c \"from coursekit import kerasbert; "
    "kerasbert.write_config(kerasbert.BERT_JAPANESE_CONFIG, 'models/bert-japanese/bert_config.json')\"\n"
    "  or pass -p bert_config PATH -p bert_checkpoint PREFIX -p spm_model PATH.\n"
    "  Or run the tiny profile, which writes its own small BERT.")


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
    in Google's checkpoint format into out_dir, so the same keras-bert loader reads it."""
    from .spm import train_sentencepiece, load as load_spm

    given = [bool(bert_config), bool(bert_checkpoint), bool(spm_model)]
    if any(given) and not all(given):
        raise ValueError("give all three of bert_config, bert_checkpoint and spm_model, or none "
                         "(none: a tiny BERT is written for this run)")
    if all(given):
        check_pretrained_files(bert_config, bert_checkpoint, spm_model, hint=PRETRAINED_HINT)
        return {"config": Path(bert_config), "checkpoint": Path(bert_checkpoint),
                "spm_model": Path(spm_model), "pretrained": True}
    out = Path(out_dir)
    spm_path = train_sentencepiece(train_texts, out / "spiece", vocab_size=vocab_size)
    config = tiny_config(vocab_size=load_spm(spm_path).get_piece_size(),
                         max_position_embeddings=max(seq_len, 16))
    prefix = write_checkpoint(out, config, seed=seed)
    return {"config": out / CONFIG_NAME, "checkpoint": prefix, "spm_model": spm_path, "pretrained": False}


# ----------------------------------------------------------------------------- tokenization
class SentencePieceEncoder:
    """Texts -> keras-bert inputs ([CLS] pieces [SEP]), padded to the longest text of each batch.

    Padding uses id 0 because keras-bert masks token id 0 in attention (our SentencePiece models
    have <pad> at 0). Lengths are rounded up to a multiple of `multiple` so TensorFlow sees a few
    shapes only (each new shape costs a retrace).
    """

    def __init__(self, model_path: str | Path, seq_len: int, multiple: int = 16, lowercase: bool = False):
        from .spm import load

        self.sp = load(model_path)
        self.sp_path = Path(model_path)
        self.lowercase = lowercase  # yoheikikuta's wiki-ja model was trained on lower-cased text
        self.seq_len = int(seq_len)
        self.multiple = int(multiple)
        self.cls_id = self._special("[CLS]", "<s>")
        self.sep_id = self._special("[SEP]", "</s>")

    def _special(self, piece: str, fallback: str) -> int:
        for name in (piece, fallback):
            pid = self.sp.piece_to_id(name)
            if pid != self.sp.unk_id() or name == self.sp.id_to_piece(self.sp.unk_id()):
                return pid
        raise ValueError(f"SentencePiece model has neither {piece} nor {fallback}")

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """[CLS] + pieces + [SEP], truncated to seq_len (one SentencePiece call for the batch)."""
        pieces = self.sp.encode([t.lower() for t in texts] if self.lowercase else list(texts))
        keep = self.seq_len - 2
        return [[self.cls_id, *p[:keep], self.sep_id] for p in pieces]

    def pad(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """[token_ids, segment_ids], both int32 (batch, length), length = longest row rounded up."""
        longest = max(len(r) for r in rows)
        length = min(self.seq_len, math.ceil(longest / self.multiple) * self.multiple)
        tokens = np.zeros((len(rows), length), np.int32)
        for k, row in enumerate(rows):
            tokens[k, :len(row)] = row
        return [tokens, np.zeros_like(tokens)]

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Texts straight to padded model inputs (one batch)."""
        return self.pad(self.ids(texts))


def batches(encoder: SentencePieceEncoder, rows: Sequence[Sequence[int]], labels=None,
            batch_size: int = 32, shuffle: bool = False, seed: int = 0):
    """A keras Sequence over token-id rows (from `encoder.ids`), each batch padded to its own
    longest row; reshuffled every epoch when `shuffle`."""
    import tensorflow as tf

    class _Batches(tf.keras.utils.Sequence):
        def __init__(self):
            super().__init__()
            self.order = np.arange(len(rows))
            self.rng = np.random.default_rng(seed)
            if shuffle:
                self.rng.shuffle(self.order)

        def __len__(self):
            return math.ceil(len(rows) / batch_size)

        def __getitem__(self, k):
            idx = self.order[k * batch_size:(k + 1) * batch_size]
            x = encoder.pad([rows[i] for i in idx])
            if labels is None:
                return (x,)
            return x, np.asarray([labels[i] for i in idx], np.int32)

        def on_epoch_end(self):
            if shuffle:
                self.rng.shuffle(self.order)

    return _Batches()


# ----------------------------------------------------------------------------- model
def warmup_schedule(learning_rate: float, total_steps: int, warmup_steps: int):
    """Linear warm-up to `learning_rate`, then linear decay to 0 (BERT's schedule)."""
    return __getattr__("WarmupLinearDecay")(learning_rate, total_steps, warmup_steps)


def _schedule_class():
    import tensorflow as tf

    class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
        """BERT's learning rate: linear warm-up, then linear decay to zero. A plain Keras schedule,
        used with the stock Adam (keras-bert's AdamWarmup is broken on TensorFlow >= 2.11)."""

        def __init__(self, learning_rate, total_steps, warmup_steps):
            self.learning_rate = float(learning_rate)
            self.total_steps = max(1, int(total_steps))
            self.warmup_steps = max(0, int(warmup_steps))

        def __call__(self, step):
            step = tf.cast(step, tf.float32)  # 0 for the first update
            warm = (step + 1.0) / max(1, self.warmup_steps)
            decay = (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps)
            factor = tf.where(step < self.warmup_steps, warm, tf.maximum(decay, 0.0))
            return self.learning_rate * factor

        def get_config(self):
            return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                    "warmup_steps": self.warmup_steps}

    return WarmupLinearDecay


def __getattr__(name):  # WarmupLinearDecay is built on first use, so importing this module stays light
    if name == "WarmupLinearDecay":
        cls = _schedule_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def warmup_adam(learning_rate: float, total_steps: int, warmup_proportion: float = 0.1):
    """Adam with BERT's warm-up + linear decay schedule (saves and reloads with the model)."""
    import tensorflow as tf

    warmup = int(total_steps * warmup_proportion)
    return tf.keras.optimizers.Adam(warmup_schedule(learning_rate, total_steps, warmup))


def custom_objects() -> dict:
    """What `keras.models.load_model` needs for a saved classifier: keras-bert's layers + our schedule."""
    from keras_bert import get_custom_objects

    objects = get_custom_objects()
    objects["WarmupLinearDecay"] = __getattr__("WarmupLinearDecay")
    return objects


def build_classifier(config_path: str | Path, checkpoint: str | Path, num_labels: int,
                     dropout: float = 0.1, seq_len: int | None = None):
    """A BERT loaded with keras-bert's `load_trained_model_from_checkpoint` (Google TF1 format),
    with a softmax classification head on the [CLS] vector. Not compiled (see `compile_classifier`).
    `seq_len=None` accepts any length up to the config's max_position_embeddings."""
    import tensorflow as tf
    from keras_bert import load_trained_model_from_checkpoint
    from keras_bert.layers import Extract

    import warnings

    check_pretrained_files(config_path, checkpoint)
    with warnings.catch_warnings():  # keras-bert shares one unseeded initializer between layers
        warnings.filterwarnings("ignore", message=".*initializer.*unseeded.*")
        bert = load_trained_model_from_checkpoint(str(config_path), str(checkpoint), training=False,
                                                  trainable=True, seq_len=seq_len)
    cls = Extract(index=0, name="CLS")(bert.output)
    cls = tf.keras.layers.Dropout(dropout, name="Classifier-Dropout")(cls)
    out = tf.keras.layers.Dense(num_labels, activation="softmax", name="Classifier")(cls)
    return tf.keras.models.Model(bert.inputs, out)


def compile_classifier(model, learning_rate: float, total_steps: int, warmup_proportion: float = 0.1):
    model.compile(optimizer=warmup_adam(learning_rate, total_steps, warmup_proportion),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, encoder: SentencePieceEncoder, train_rows, train_labels, val_rows, val_labels, *,
        epochs: int, batch_size: int, learning_rate: float, patience: int = 1,
        warmup_proportion: float = 0.1, seed: int = 0, verbose: int = 2, callbacks=()):
    """Fine-tune end to end with warm-up, early stopping on validation accuracy, best weights kept.
    `*_rows` are token-id rows from `encoder.ids`. Returns the Keras History
    (history.history: loss / accuracy / val_loss / val_accuracy per epoch)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    train = batches(encoder, train_rows, train_labels, batch_size, shuffle=True, seed=seed)
    val = batches(encoder, val_rows, val_labels, batch_size)
    compile_classifier(model, learning_rate, len(train) * epochs, warmup_proportion)
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                            restore_best_weights=True)
    return model.fit(train, validation_data=val, epochs=epochs, callbacks=[stop, *callbacks],
                     verbose=verbose)


def predict_proba(model, encoder: SentencePieceEncoder, texts: Sequence[str], batch_size: int = 64,
                  progress: bool = False) -> np.ndarray:
    """Class probabilities (n_texts, n_labels): tokenized, padded and run in batches."""
    from tqdm.auto import tqdm

    starts = range(0, len(texts), batch_size)
    out = [np.asarray(model.predict_on_batch(encoder.encode(list(texts[k:k + batch_size]))))
           for k in tqdm(starts, desc="predict", disable=not progress)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def predict_one_by_one(model, encoder: SentencePieceEncoder, texts: Sequence[str]) -> np.ndarray:
    """The slow way (one model call per text, as the original workshop script did): for benchmarks."""
    return np.concatenate([np.asarray(model.predict_on_batch(encoder.encode([t]))) for t in texts])


def save(model, path: str | Path) -> Path:
    """Save the fine-tuned classifier (.h5: weights, architecture and optimizer state)."""
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # "HDF5 ... legacy": .h5 is the format keras-bert reloads reliably
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        model.save(str(path))
    return path


def load(path: str | Path):
    """Reload a classifier saved by `save` (keras-bert's custom layers and our schedule registered)."""
    import tensorflow as tf

    if not Path(path).is_file():
        raise FileNotFoundError(f"saved model not found: {path}")
    import warnings

    with warnings.catch_warnings():  # keras-bert's layers rebuild with a shared unseeded initializer
        warnings.filterwarnings("ignore", message=".*initializer.*unseeded.*")
        return tf.keras.models.load_model(str(path), custom_objects=custom_objects())
