"""Notebook 04's plumbing around the transformers code it shows: the SentencePiece tokenizer for
transformers, blocks of token ids, fixed validation masks, the loss plot, the Google-format export.

    tokenizer = train_tokenizer(sentences, work / "tokenizer", vocab_size=8000)
    blocks = encode_documents(tokenizer, train_docs, seq_len=128)       # documents: lists of sentences
    valid = fixed_masks(encode_documents(tokenizer, valid_docs, 128), tokenizer, 0.15, seed=0)
    collator = FixedMaskCollator(DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15))
    ...BertConfig, BertForMaskedLM, TrainingArguments, Trainer: in the notebook itself...
    paths = export_google(model, hf_dir / "spiece.model", out / "tf")   # for keras-bert (notebook 02)

The tokenizer exists in two forms that give the same ids: the fast one (`AlbertTokenizer`, a Rust
`tokenizers` Unigram converted from spiece.model) and the slow one (`SentencePieceBertTokenizer`,
the sentencepiece library itself). Both keep case and accents: ALBERT's defaults (lower-casing,
NFKD + accent stripping) would turn が into か.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from .spm import load as load_sentencepiece
from .spm import train_sentencepiece

TOKENIZER_OPTIONS = {"do_lower_case": False, "keep_accents": True}


# ----------------------------------------------------------------------------- tokenizer
class SentencePieceBertTokenizer(SentencePieceBackend):
    """The slow form: the sentencepiece library, BERT's [CLS] A [SEP] B [SEP] and segment ids."""

    vocab_files_names = {"vocab_file": "spiece.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, unk_token="<unk>", pad_token="<pad>", cls_token="[CLS]",
                 sep_token="[SEP]", mask_token="[MASK]", **kwargs):
        kwargs.setdefault("special_tokens_pattern", "cls_sep")
        kwargs.setdefault("token_type_ids_pattern", "bert_style")
        super().__init__(vocab_file=str(vocab_file), unk_token=unk_token, pad_token=pad_token,
                         cls_token=cls_token, sep_token=sep_token, mask_token=mask_token, **kwargs)


def _reuse_tokenizer(out: Path, vocab_size: int, model_max_length: int):
    tokenizer = load_tokenizer(out, model_max_length=model_max_length)
    if len(tokenizer) != vocab_size:
        raise ValueError(f"{out} holds a tokenizer of {len(tokenizer)} pieces, not vocab_size={vocab_size}: "
                         "an earlier job with other settings used this work_dir; give a new one")
    print(f"reusing the tokenizer in {out} / 前回作ったトークナイザを使います")
    return tokenizer


def train_tokenizer(sentences: Sequence[str], out_dir: str | Path, vocab_size: int, *,
                    character_coverage: float = 0.9995, input_sentence_size: int = 1_000_000,
                    model_max_length: int = 512, reuse: bool = False):
    """Train SentencePiece (unigram) on the sentences into out_dir/spiece.model and return the fast
    transformers tokenizer. With `reuse`, a spiece.model already in out_dir is loaded instead (a
    resumed job must keep the vocabulary its checkpoints were trained with).

    Raises ValueError when the corpus cannot fill `vocab_size` pieces (SentencePiece would quietly
    make a smaller vocabulary): the message says the largest size this corpus supports."""
    out = Path(out_dir)
    if reuse and (out / "spiece.model").is_file():
        return _reuse_tokenizer(out, vocab_size, model_max_length)
    try:
        model = train_sentencepiece(sentences, out / "spiece", vocab_size=vocab_size,
                                    character_coverage=character_coverage,
                                    input_sentence_size=input_sentence_size)
    except RuntimeError as err:
        chars = re.search(r"required_chars\. \d+ vs (\d+)", str(err))
        if not chars:
            raise
        raise ValueError(f"vocab_size={vocab_size} is smaller than the {chars.group(1)} distinct characters "
                         f"that character_coverage={character_coverage} keeps: raise vocab_size above "
                         f"{chars.group(1)} or lower character_coverage (e.g. 0.995)") from None
    found = load_sentencepiece(model).get_piece_size()
    if found < vocab_size:
        raise ValueError(f"vocab_size={vocab_size} is larger than this corpus supports: SentencePiece "
                         f"found only {found} pieces in {len(sentences)} sentences; use -p vocab_size "
                         f"{found} (or less), or give more text")
    (out / "spiece.vocab").unlink(missing_ok=True)
    return load_tokenizer(out, model_max_length=model_max_length)


def load_tokenizer(folder: str | Path, slow: bool = False, model_max_length: int = 512):
    """The tokenizer of a folder holding spiece.model (or a saved tokenizer): fast by default."""
    from transformers import AlbertTokenizer

    folder = Path(folder)
    if not (folder / "spiece.model").is_file() and not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no spiece.model or tokenizer.json in {folder}")
    if slow:
        return SentencePieceBertTokenizer(folder / "spiece.model", model_max_length=model_max_length)
    # from_pretrained on the folder: AlbertTokenizer(vocab_file=...) silently ignores the file
    return AlbertTokenizer.from_pretrained(str(folder), model_max_length=model_max_length,
                                           **TOKENIZER_OPTIONS)


def tokenizer_differences(fast, slow, texts: Sequence[str]) -> list[tuple[str, list[int], list[int]]]:
    """(text, fast ids, slow ids) for every text the two forms encode differently."""
    out = []
    for text in texts:
        a, b = fast(text)["input_ids"], slow(text)["input_ids"]
        if a != b:
            out.append((text, a, b))
    return out


def check_lengths(seq_lens: Sequence[int], max_positions: int) -> None:
    """A sequence longer than the model's position table fails deep inside training: say it first."""
    for n in seq_lens:
        if n > max_positions:
            raise ValueError(f"sequence length {n} is above the model's max_position_embeddings="
                             f"{max_positions}: lower the sequence length or raise max_positions / "
                             f"系列長 {n} が位置埋め込みの数 {max_positions} を超えています。系列長を下げるか "
                             "max_positions を上げてください")


# ----------------------------------------------------------------------------- examples
def encode_documents(tokenizer, documents: Sequence[Sequence[str]], seq_len: int,
                     progress: Callable[[Iterable, int, str], Iterable] | None = None) -> list[dict]:
    """Training examples: the sentences of each document concatenated and cut into blocks of
    seq_len - 2 tokens, each wrapped as [CLS] block [SEP] (a block never spans two documents).
    `progress(iterable, total, what)` wraps the loop over the documents (e.g. the harness's
    `progress.progress`: a line in the job's log now and then)."""
    from tqdm.auto import tqdm

    if seq_len < 8:
        raise ValueError(f"seq_len={seq_len} is too short (8 or more)")
    block = seq_len - 2
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    examples = []
    docs = tqdm(documents, desc=f"encode (seq {seq_len})", mininterval=2.0)
    if progress is not None:
        docs = progress(docs, len(documents), f"encode (seq {seq_len})")
    for doc in docs:
        ids = [i for row in tokenizer(list(doc), add_special_tokens=False, verbose=False)["input_ids"] for i in row]
        for start in range(0, len(ids), block):
            chunk = ids[start:start + block]
            if len(chunk) >= 4:
                examples.append({"input_ids": [cls, *chunk, sep]})
    return examples


def fixed_masks(examples: list[dict], tokenizer, mlm_probability: float = 0.15, seed: int = 0) -> list[dict]:
    """Mask the validation examples once, with DataCollatorForLanguageModeling's own seeded generator,
    so every evaluation scores the same positions and "loss before" and "loss after" compare."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    out = []
    for ex in examples:
        batch = collator([{"input_ids": ex["input_ids"]}])
        out.append({"input_ids": batch["input_ids"][0].tolist(), "labels": batch["labels"][0].tolist()})
    return out


class FixedMaskCollator:
    """The Trainer takes one data collator for training and evaluation. This one hands training
    batches to `mlm_collator` (DataCollatorForLanguageModeling: new masks every time) and only pads
    batches that already carry labels (the fixed validation masks; the masking collator would
    draw new masks over them)."""

    def __init__(self, mlm_collator):
        from transformers import DataCollatorForTokenClassification

        self.mlm = mlm_collator
        self.pad = DataCollatorForTokenClassification(mlm_collator.tokenizer)  # labels padded with -100

    def __call__(self, features: list[dict]) -> dict:
        if "labels" in features[0]:
            return self.pad(features)
        return self.mlm(features)


# ----------------------------------------------------------------------------- curves
def loss_curve(log_history: list[dict]) -> list[dict]:
    """Trainer's log history as points {"step", "loss"} and {"step", "eval_loss"}."""
    points = []
    for row in log_history:
        if "loss" in row:
            points.append({"step": row["step"], "loss": row["loss"]})
        if "eval_loss" in row:
            points.append({"step": row["step"], "eval_loss": row["eval_loss"]})
    return points


def plot_losses(curves: dict[str, list[dict]], loss_before: float | None = None):
    """Training and validation loss of each phase against the step (Japanese labels)."""
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for name, points in curves.items():
        train = [(p["step"] + offset, p["loss"]) for p in points if "loss" in p]
        val = [(p["step"] + offset, p["eval_loss"]) for p in points if "eval_loss" in p]
        if train:
            ax.plot(*zip(*train), alpha=0.6, label=f"{name}: 訓練損失")
        if val:
            ax.plot(*zip(*val), "o-", label=f"{name}: 検証損失")
        offset += max([p["step"] for p in points], default=0)
    if loss_before is not None:
        ax.axhline(loss_before, color="gray", ls="--", lw=1, label="学習前の検証損失")
    ax.set_xlabel("ステップ")
    ax.set_ylabel("マスク言語モデルの損失")
    ax.set_title("事前学習の損失")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- export
def google_weights(model) -> dict[str, np.ndarray]:
    """A BertForMaskedLM's weights under Google's TF1 checkpoint names (torch Linear weights are
    (out, in); TF kernels are (in, out), so they are transposed). BertForMaskedLM has no pooler
    and no next-sentence head: those stay randomly initialised in the checkpoint."""
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = {}

    def dense(torch_name, tf_name):
        out[f"{tf_name}/kernel"] = sd[f"{torch_name}.weight"].T.copy()
        out[f"{tf_name}/bias"] = sd[f"{torch_name}.bias"]

    def norm(torch_name, tf_name):
        out[f"{tf_name}/gamma"] = sd[f"{torch_name}.weight"]
        out[f"{tf_name}/beta"] = sd[f"{torch_name}.bias"]

    for part in ("word", "position", "token_type"):
        out[f"bert/embeddings/{part}_embeddings"] = sd[f"bert.embeddings.{part}_embeddings.weight"]
    norm("bert.embeddings.LayerNorm", "bert/embeddings/LayerNorm")
    for n in range(model.config.num_hidden_layers):
        t, g = f"bert.encoder.layer.{n}", f"bert/encoder/layer_{n}"
        for part in ("query", "key", "value"):
            dense(f"{t}.attention.self.{part}", f"{g}/attention/self/{part}")
        dense(f"{t}.attention.output.dense", f"{g}/attention/output/dense")
        norm(f"{t}.attention.output.LayerNorm", f"{g}/attention/output/LayerNorm")
        dense(f"{t}.intermediate.dense", f"{g}/intermediate/dense")
        dense(f"{t}.output.dense", f"{g}/output/dense")
        norm(f"{t}.output.LayerNorm", f"{g}/output/LayerNorm")
    dense("cls.predictions.transform.dense", "cls/predictions/transform/dense")
    norm("cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm")
    bias = sd.get("cls.predictions.bias", sd.get("cls.predictions.decoder.bias"))
    if bias is not None:
        out["cls/predictions/output_bias"] = bias
    return out


def google_config(model) -> dict:
    """bert_config.json for keras-bert / Google's code (hidden_act "gelu" is their tanh GELU)."""
    c = model.config
    return {"attention_probs_dropout_prob": c.attention_probs_dropout_prob, "hidden_act": "gelu",
            "hidden_dropout_prob": c.hidden_dropout_prob, "hidden_size": c.hidden_size,
            "initializer_range": c.initializer_range, "intermediate_size": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings,
            "num_attention_heads": c.num_attention_heads, "num_hidden_layers": c.num_hidden_layers,
            "type_vocab_size": c.type_vocab_size, "vocab_size": c.vocab_size}


def export_google(model, spiece_model: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write a BertForMaskedLM as Google's TF1 BERT: out_dir/bert_model.ckpt.* + bert_config.json +
    spiece.model, what keras-bert reads (notebook 02: -p bert_config .../bert_config.json
    -p bert_checkpoint .../bert_model.ckpt -p spm_model .../spiece.model)."""
    from .kerasbert import write_checkpoint

    spiece_model, out = Path(spiece_model), Path(out_dir)
    if not spiece_model.is_file():
        raise FileNotFoundError(f"SentencePiece model not found: {spiece_model}")
    prefix = write_checkpoint(out, google_config(model), google_weights(model))
    shutil.copyfile(spiece_model, out / "spiece.model")
    return {"tf_config": out / "bert_config.json", "tf_checkpoint": prefix, "spm_model": out / "spiece.model"}
