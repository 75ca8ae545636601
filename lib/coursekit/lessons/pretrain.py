"""Pre-train a BERT from raw text: SentencePiece tokenizer, masked-LM training, export.

    tokenizer = train_tokenizer(sentences, work / "tokenizer", vocab_size=8000)
    train = encode_documents(tokenizer, train_docs, seq_len=128)          # lists of sentences in
    model = new_model(tokenizer, hidden_size=256, num_layers=4, num_heads=4, max_positions=512)
    trainer = train_mlm(model, tokenizer, train, valid, work / "phase1", max_steps=1000, ...)
    paths = export(model, tokenizer, out / "export")     # hf/ for transformers, tf/ for keras-bert

The tokenizer exists in two forms that give the same ids: the fast one (`AlbertTokenizer`, a Rust
`tokenizers` Unigram converted from spiece.model, saved with the model) and the slow one
(`SentencePieceBertTokenizer`, the sentencepiece library itself). Both keep case and accents:
ALBERT's defaults (lower-casing, NFKD + accent stripping) would turn が into か.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

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


def train_tokenizer(sentences: Sequence[str], out_dir: str | Path, vocab_size: int, *,
                    character_coverage: float = 0.9995, input_sentence_size: int = 1_000_000,
                    model_max_length: int = 512, reuse: bool = False):
    """Train SentencePiece (unigram) on the sentences and return the fast transformers tokenizer.
    With `reuse`, a spiece.model already in out_dir is loaded instead (a resumed job must keep the
    vocabulary its checkpoints were trained with).

    Raises ValueError when the corpus cannot fill `vocab_size` pieces (SentencePiece would quietly
    make a smaller vocabulary): the message says the largest size this corpus supports."""
    import re

    out = Path(out_dir)
    if reuse and (out / "spiece.model").is_file():
        tokenizer = load_tokenizer(out, model_max_length=model_max_length)
        if len(tokenizer) != vocab_size:
            raise ValueError(f"{out} holds a tokenizer of {len(tokenizer)} pieces, not vocab_size={vocab_size}: "
                             "an earlier job with other settings used this work_dir; give a new one")
        print(f"reusing the tokenizer in {out}")
        return tokenizer
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
    from .spm import load

    found = load(model).get_piece_size()
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


# ----------------------------------------------------------------------------- examples
def encode_documents(tokenizer, documents: Sequence[Sequence[str]], seq_len: int) -> list[dict]:
    """Training examples: the sentences of each document concatenated and cut into blocks of
    seq_len - 2 tokens, each wrapped as [CLS] block [SEP] (a block never spans two documents)."""
    from tqdm.auto import tqdm

    if seq_len < 8:
        raise ValueError(f"seq_len={seq_len} is too short (8 or more)")
    block = seq_len - 2
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    examples = []
    for doc in tqdm(documents, desc=f"encode (seq {seq_len})", mininterval=2.0):
        ids = [i for row in tokenizer(list(doc), add_special_tokens=False, verbose=False)["input_ids"] for i in row]
        for start in range(0, len(ids), block):
            chunk = ids[start:start + block]
            if len(chunk) >= 4:
                examples.append({"input_ids": [cls, *chunk, sep]})
    return examples


def fixed_masks(examples: list[dict], tokenizer, mlm_probability: float = 0.15, seed: int = 0) -> list[dict]:
    """Mask the validation examples once (seeded), so every evaluation scores the same positions
    and "loss before" and "loss after" are comparable."""
    import torch
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        out = []
        for ex in examples:
            batch = collator([{"input_ids": ex["input_ids"]}])
            out.append({"input_ids": batch["input_ids"][0].tolist(), "labels": batch["labels"][0].tolist()})
    finally:
        torch.random.set_rng_state(generator_state)
    return out


class MaskingCollator:
    """BERT's dynamic masking (15%: 80% [MASK], 10% random, 10% kept) for training batches; batches
    that already carry labels (the fixed validation masks) are only padded."""

    def __init__(self, tokenizer, mlm_probability: float = 0.15):
        from transformers import DataCollatorForLanguageModeling

        self.pad_id = tokenizer.pad_token_id
        self.mlm = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if "labels" not in features[0]:
            return self.mlm([{"input_ids": f["input_ids"]} for f in features])
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), longest), -100, dtype=torch.long)
        for k, f in enumerate(features):
            ids[k, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
            labels[k, :len(f["labels"])] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": (ids != self.pad_id).long(), "labels": labels}


# ----------------------------------------------------------------------------- model
def new_model(tokenizer, *, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
              max_positions: int = 512, seed: int = 0):
    """A randomly initialised BertForMaskedLM sized for the tokenizer. GELU is the tanh form
    ("gelu_new"), the one Google's BERT and keras-bert compute, so the export gives the same outputs."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=num_heads, intermediate_size=intermediate_size,
                        max_position_embeddings=max_positions, hidden_act="gelu_new",
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id, type_vocab_size=2)
    torch.manual_seed(seed)
    return BertForMaskedLM(config)


def check_lengths(seq_lens: Sequence[int], max_positions: int) -> None:
    """A sequence longer than the model's position table fails deep inside training: say it first."""
    for n in seq_lens:
        if n > max_positions:
            raise ValueError(f"sequence length {n} is above the model's max_position_embeddings="
                             f"{max_positions}: lower the sequence length or raise max_positions")


def precision() -> dict:
    """Trainer flags for the device: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {"use_cpu": True}
    return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}


def last_checkpoint(folder: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if Path(folder).is_dir() else None


def train_mlm(model, tokenizer, train: list[dict], valid: list[dict], out_dir: str | Path, *,
              max_steps: int, batch_size: int, grad_accum: int = 1, learning_rate: float = 1e-4,
              warmup_steps: int = 0, eval_every: int = 100, save_every: int = 100,
              mlm_probability: float = 0.15, seed: int = 0, resume: bool = True, callbacks=()):
    """Masked-LM training with the Trainer: linear warm-up and decay, clipping at 1.0, gradient
    accumulation, validation loss every `eval_every` steps, a checkpoint every `save_every` steps
    (the last two kept). With `resume`, continues from the newest checkpoint in out_dir (a job
    killed or requeued by Slurm picks up where it stopped). `callbacks` come from the notebook (e.g.
    the harness's preemption callback, which saves a checkpoint and stops when Slurm warns).
    Returns the Trainer (trainer.state.log_history holds the losses)."""
    if not train:
        raise ValueError("no training examples (is the corpus empty?)")
    if not valid:
        raise ValueError("no validation examples: raise valid_fraction or give more text")
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out_dir), max_steps=max_steps, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        learning_rate=learning_rate, lr_scheduler_type="linear", warmup_steps=warmup_steps,
        weight_decay=0.01, max_grad_norm=1.0, eval_strategy="steps", eval_steps=eval_every,
        logging_steps=max(1, min(eval_every, 10)), save_strategy="steps", save_steps=save_every,
        save_total_limit=2, seed=seed, data_seed=seed, report_to="none", dataloader_num_workers=0,
        disable_tqdm=False, **precision())
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid,
                      data_collator=MaskingCollator(tokenizer, mlm_probability),
                      processing_class=tokenizer, callbacks=list(callbacks))
    start = last_checkpoint(out_dir) if resume else None
    if start:
        print(f"resuming from {start}")
    trainer.train(resume_from_checkpoint=start)
    return trainer


def evaluate_loss(model, tokenizer, valid: list[dict], batch_size: int = 32) -> float:
    """Mean masked-LM loss over the (fixed-mask) validation examples, per masked token."""
    import torch

    collate = MaskingCollator(tokenizer)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(valid), batch_size):
            batch = collate(valid[k:k + batch_size])
            batch = {name: t.to(model.device) for name, t in batch.items()}
            n = int((batch["labels"] != -100).sum())
            if n:
                total += float(model(**batch).loss) * n
                count += n
    return total / max(count, 1)


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


# ----------------------------------------------------------------------------- fill-mask
def fill_mask(model_dir: str | Path, sentences: Sequence[str], top_k: int = 5) -> list[dict]:
    """Load the export with transformers.pipeline("fill-mask") and predict each [MASK]:
    [{"sentence", "predictions": [{"token", "score"}, ...]}, ...]."""
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(model_dir), device="cpu")
    out = []
    for sentence in sentences:
        if fill.tokenizer.mask_token not in sentence:
            raise ValueError(f"no {fill.tokenizer.mask_token} in {sentence!r}")
        result = fill(sentence, top_k=top_k)
        if result and isinstance(result[0], list):  # several masks: the first one's predictions
            result = result[0]
        # the word-boundary piece "▁" decodes to an empty string: show the piece itself
        tokens = [r["token_str"].strip() or fill.tokenizer.convert_ids_to_tokens(r["token"]) for r in result]
        out.append({"sentence": sentence,
                    "predictions": [{"token": t, "score": round(float(r["score"]), 4)}
                                    for t, r in zip(tokens, result)]})
    return out


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


def export(model, tokenizer, out_dir: str | Path) -> dict[str, Path]:
    """Write the pre-trained BERT twice:
    out_dir/hf/  save_pretrained model + tokenizer (transformers.pipeline("fill-mask", out_dir/hf)),
    out_dir/tf/  bert_model.ckpt.* + bert_config.json + spiece.model for keras-bert (notebook 02:
                 -p bert_config .../tf/bert_config.json -p bert_checkpoint .../tf/bert_model.ckpt
                 -p spm_model .../tf/spiece.model)."""
    from .kerasbert import write_checkpoint

    out = Path(out_dir)
    hf = out / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    spiece = hf / "spiece.model"  # save_pretrained copies it from the tokenizer's folder
    if not spiece.is_file():
        source = Path(tokenizer.name_or_path) / "spiece.model"
        if not source.is_file():
            raise FileNotFoundError(f"the tokenizer's spiece.model was not found (looked at {source})")
        shutil.copyfile(source, spiece)
    prefix = write_checkpoint(out / "tf", google_config(model), google_weights(model))
    shutil.copyfile(spiece, out / "tf" / "spiece.model")
    return {"hf": hf, "tf_config": out / "tf" / "bert_config.json", "tf_checkpoint": prefix,
            "spm_model": out / "tf" / "spiece.model"}


def size_mb(folder: str | Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> float:
    return n_examples / max(1, batch_size * grad_accum)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def train_phase(name: str, model, tokenizer, train: list[dict], valid: list[dict], work_dir: str | Path,
                **train_args):
    """One phase of pre-training in work_dir/name: skipped (its final model loaded) when a previous
    job finished it, resumed from its last checkpoint when a previous job was killed in it.
    Returns (model, loss curve points)."""
    import json

    from transformers import BertForMaskedLM

    folder = Path(work_dir) / name
    final = folder / "final"
    if (final / "config.json").is_file() and (final / "log_history.json").is_file():
        print(f"{name}: finished by an earlier job, loading {final}")
        history = json.loads((final / "log_history.json").read_text(encoding="utf-8"))
        return BertForMaskedLM.from_pretrained(final), loss_curve(history)
    trainer = train_mlm(model, tokenizer, train, valid, folder, **train_args)
    trainer.save_model(str(final))
    (final / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
    return trainer.model, loss_curve(trainer.state.log_history)
