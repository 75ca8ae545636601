"""Notebook 04's plumbing around the transformers code it shows: the SentencePiece tokenizer for
transformers, blocks of token ids, fixed validation masks, the loss plot, the Google-format export.

    tokenizer = train_tokenizer(sentences, work / "tokenizer", vocab_size=8000)
    blocks = encode_documents(tokenizer, train_docs, seq_len=128)       # documents: lists of sentences
    valid = fixed_masks(encode_documents(tokenizer, valid_docs, 128), tokenizer, 0.15, seed=0)
    masked_accuracy(model, valid, tokenizer.mask_token_id)               # vs unigram_accuracy, NeighbourGuesser
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
import statistics
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput
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


# ----------------------------------------------------------------------------- the model
class SparseBertForMaskedLM(BertForMaskedLM):
    """BertForMaskedLM that computes its vocabulary layer only at the chosen (masked) positions when it
    is given labels: the same weights, the same loss, the same saved files, about half the work of a
    training step of a small BERT (the vocabulary layer over every position costs about as much as the
    encoder; cramming, Geiping & Goldstein 2022: "sparse token prediction"). Without labels (fill-mask,
    the pipeline) it is BertForMaskedLM.

    The loss is the sum over the chosen tokens divided by the Trainer's `num_items_in_batch` (the chosen
    tokens of all the micro-batches of one optimizer step) when given: with gradient accumulation every
    chosen token weighs the same, and the logged loss is the mean. (BertForMaskedLM's own mean loss under
    transformers 5's Trainer, which leaves the normalisation to a model whose forward takes **kwargs,
    comes out multiplied by the accumulation steps, its gradients too.)"""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                num_items_in_batch=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, **kwargs)
        hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           return_dict=True).last_hidden_state
        chosen = labels != -100
        logits = self.cls(hidden[chosen])
        total = torch.nn.functional.cross_entropy(logits.float(), labels[chosen], reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else chosen.sum().clamp(min=1)
        return MaskedLMOutput(loss=total / count, logits=logits)


# ----------------------------------------------------------------------------- what the model learned
def _masked_positions(example: dict, mask_id: int) -> list[int]:
    """Positions of an example with fixed masks where the input shows [MASK] and a label is set (the
    10% of chosen tokens left unchanged would let a model score by copying its input)."""
    return [i for i, (t, y) in enumerate(zip(example["input_ids"], example["labels"])) if y != -100 and t == mask_id]


def masked_accuracy(model, examples: Sequence[dict], mask_id: int, k: int = 5, batch_size: int = 64) -> dict:
    """How often the model's best guess (top-1) and its k best guesses (top-k) hold the hidden token, at
    every [MASK] position of `examples` (fixed_masks output). Returns {"top1", "topk", "k", "positions"}."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hit1 = hitk = n = 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            part = examples[start:start + batch_size]
            width = max(len(ex["input_ids"]) for ex in part)
            ids = torch.zeros((len(part), width), dtype=torch.long)
            attention = torch.zeros_like(ids)
            for row, ex in enumerate(part):
                ids[row, :len(ex["input_ids"])] = torch.tensor(ex["input_ids"])
                attention[row, :len(ex["input_ids"])] = 1
            rows = [(row, pos) for row, ex in enumerate(part) for pos in _masked_positions(ex, mask_id)]
            if not rows:
                continue
            hidden = model.bert(input_ids=ids.to(device), attention_mask=attention.to(device)).last_hidden_state
            r, c = zip(*rows)
            logits = model.cls(hidden[list(r), list(c)])
            answers = torch.tensor([part[row]["labels"][pos] for row, pos in rows], device=device)
            top = logits.topk(k, dim=-1).indices
            hit1 += int((top[:, 0] == answers).sum())
            hitk += int((top == answers[:, None]).any(dim=-1).sum())
            n += len(rows)
    model.train(was_training)
    if n == 0:
        raise ValueError("no [MASK] position in the examples: give examples from fixed_masks")
    return {"top1": hit1 / n, "topk": hitk / n, "k": k, "positions": n}


def token_counts(examples: Sequence[dict], vocab_size: int) -> np.ndarray:
    """How often each token id occurs in training blocks ([CLS] and [SEP] left out)."""
    ids = [i for ex in examples for i in ex["input_ids"][1:-1]]
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)


def unigram_accuracy(counts: np.ndarray, examples: Sequence[dict], mask_id: int, k: int = 5) -> dict:
    """The guesser that ignores the context: it answers the most frequent training token (top-1) or the k
    most frequent (top-k) at every [MASK] position. What masked-token accuracy must beat to show that a
    model reads the context. Same keys as masked_accuracy, plus "guesses" (the top-k token ids)."""
    guesses = [int(i) for i in np.argsort(-counts, kind="stable")[:k]]
    answers = [ex["labels"][pos] for ex in examples for pos in _masked_positions(ex, mask_id)]
    if not answers:
        raise ValueError("no [MASK] position in the examples: give examples from fixed_masks")
    return {"top1": sum(a == guesses[0] for a in answers) / len(answers),
            "topk": sum(a in guesses for a in answers) / len(answers), "k": k, "positions": len(answers),
            "guesses": guesses}


class NeighbourGuesser:
    """A guesser that reads only the two tokens on either side of a [MASK] and answers the tokens that
    stood between those two most often in the training blocks (most frequent first, ties by id); where
    the pair never surrounded a token there, or for the places left over, the unigram guesser's answers.
    It counts and does not learn: what a model reaches when it has learnt the neighbours of every word
    of the training text, and what masked-token accuracy can be read against besides the unigram guesser.

        guesser = NeighbourGuesser(train_blocks, len(tokenizer))
        guesser.accuracy(valid, tokenizer.mask_token_id)   # like masked_accuracy, plus "seen"
        guesser.guesses(left_id, right_id, k=5)"""

    def __init__(self, blocks: Sequence[dict], vocab_size: int):
        left, middle, right = [], [], []
        for ex in blocks:
            ids = np.asarray(ex["input_ids"], dtype=np.int64)
            left.append(ids[:-2])
            middle.append(ids[1:-1])
            right.append(ids[2:])
        self.vocab_size = v = int(vocab_size)
        if not left:
            raise ValueError("no training blocks to count neighbours in")
        middles = np.concatenate(middle)   # every token but [CLS] and [SEP], as token_counts counts them
        keys = (np.concatenate(left) * v + np.concatenate(right)) * v + middles
        self._keys, self._counts = np.unique(keys, return_counts=True)   # sorted: one pair's middles together
        self.unigram = [int(i) for i in np.argsort(-np.bincount(middles, minlength=v), kind="stable")]

    def _between(self, left: int, right: int) -> tuple[np.ndarray, np.ndarray]:
        start = (int(left) * self.vocab_size + int(right)) * self.vocab_size
        a, b = np.searchsorted(self._keys, [start, start + self.vocab_size])
        return self._keys[a:b] - start, self._counts[a:b]

    def guesses(self, left: int, right: int, k: int = 5) -> list[int]:
        """The k tokens most often between `left` and `right` in the training blocks, filled up with the
        most frequent tokens when fewer than k were seen there."""
        return self._ranked(*self._between(left, right), k)

    def _ranked(self, middles: np.ndarray, counts: np.ndarray, k: int) -> list[int]:
        order = np.lexsort((middles, -counts))      # count descending, then id
        out = [int(t) for t in middles[order[:k]]]
        for t in self.unigram:
            if len(out) >= k:
                break
            if t not in out:
                out.append(t)
        return out

    def seen(self, left: int, right: int) -> bool:
        """Whether the pair surrounded any token in the training blocks."""
        return len(self._between(left, right)[0]) > 0

    def accuracy(self, examples: Sequence[dict], mask_id: int, k: int = 5) -> dict:
        """Top-1 and top-k at every [MASK] position of `examples` (fixed_masks output), the neighbours
        read as the input shows them (a neighbour that is itself [MASK] makes a pair never seen).
        Same keys as masked_accuracy, plus "seen" (the share of positions whose pair was seen)."""
        hit1 = hitk = seen = n = 0
        for ex in examples:
            ids = ex["input_ids"]
            for pos in _masked_positions(ex, mask_id):
                if pos + 1 >= len(ids):
                    continue
                answer = ex["labels"][pos]
                middles, counts = self._between(ids[pos - 1], ids[pos + 1])   # looked up once per position
                top = self._ranked(middles, counts, k)
                hit1 += top[0] == answer
                hitk += answer in top
                seen += len(middles) > 0
                n += 1
        if n == 0:
            raise ValueError("no [MASK] position in the examples: give examples from fixed_masks")
        return {"top1": hit1 / n, "topk": hitk / n, "k": k, "positions": n, "seen": seen / n}


def encode_masked(tokenizer, text: str) -> list[int]:
    """Token ids of a sentence written with "[MASK]" (one or more): [CLS] pieces [SEP].

    SentencePiece puts its word-start piece "▁" at the start of every piece of text it encodes, and the
    tokenizer encodes the text after [MASK] as a new piece of text: "首都は[MASK]です。" would read
    "[MASK] ▁ です", a "▁" that never follows a hidden word in training (where masks replace ids in
    place). Here that "▁" is dropped, so the model sees what it saw in training."""
    mask = tokenizer.mask_token
    parts = text.split(mask)
    ids: list[int] = []
    for k, part in enumerate(parts):
        piece_ids = tokenizer(part, add_special_tokens=False)["input_ids"] if part else []
        if k > 0:
            ids.append(tokenizer.mask_token_id)
            pieces = tokenizer.convert_ids_to_tokens(piece_ids)
            if pieces and pieces[0] == "▁":
                piece_ids = piece_ids[1:]
            elif pieces and pieces[0].startswith("▁") and pieces[0][1:] in tokenizer.get_vocab():
                piece_ids = [tokenizer.convert_tokens_to_ids(pieces[0][1:]), *piece_ids[1:]]
        ids += piece_ids
    return [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]


def fill_mask_examples(tokenizer, documents: Sequence[Sequence[str]], counts: np.ndarray, n: int = 8, *,
                       min_count: int = 100, min_chars: int = 2, sentence_chars: tuple[int, int] = (12, 60),
                       seed: int = 0) -> list[dict]:
    """Held-out sentences with one word hidden that the model can know: a piece of `min_chars` or more
    characters (a word, not a particle or a punctuation mark) that the training blocks hold `min_count`
    times or more. At most one sentence per document, documents in a seeded random order.
    Each: {"text", "masked", "answer", "answer_id", "ids" ([CLS] ... [MASK] ... [SEP]), "position"}."""
    import random

    rng = random.Random(seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    out = []
    for d in order:
        for sentence in documents[d]:
            if not sentence_chars[0] <= len(sentence) <= sentence_chars[1]:
                continue
            ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
            pieces = tokenizer.convert_ids_to_tokens(ids)
            known = [p for p, (i, piece) in enumerate(zip(ids, pieces))
                     if len(piece.lstrip("▁")) >= min_chars and counts[i] >= min_count and piece != tokenizer.unk_token]
            if not known:
                continue
            p = rng.choice(known)
            shown = [tokenizer.mask_token if q == p else piece for q, piece in enumerate(pieces)]
            out.append({"text": sentence, "masked": "".join(shown).replace("▁", " ").strip(),
                        "answer": pieces[p].lstrip("▁") or pieces[p], "answer_id": ids[p],
                        "ids": [tokenizer.cls_token_id, *ids[:p], tokenizer.mask_token_id, *ids[p + 1:],
                                tokenizer.sep_token_id],
                        "position": p + 1})
            break
        if len(out) >= n:
            break
    return out


def fill_mask(model, tokenizer, ids: Sequence[int], top_k: int = 5) -> list[dict]:
    """The top_k tokens the model puts at the first [MASK] of `ids`, with their probabilities:
    [{"token", "id", "score"}] (the word-start piece "▁" shown as itself, not as an empty string)."""
    position = list(ids).index(tokenizer.mask_token_id)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([list(ids)], device=next(model.parameters()).device)).logits
    model.train(was_training)
    probs = logits[0, position].softmax(-1)
    top = probs.topk(top_k)
    return [{"token": (tokenizer.convert_ids_to_tokens(int(i)).lstrip("▁")
                       or tokenizer.convert_ids_to_tokens(int(i))), "id": int(i), "score": round(float(s), 4)}
            for s, i in zip(top.values, top.indices)]


def fill_mask_hits(model, tokenizer, examples: Sequence[dict], guesser: "NeighbourGuesser | None" = None,
                   k: int = 5) -> dict:
    """How many of `examples` (fill_mask_examples output) have the hidden word in the model's top k
    (`fill_mask`), and in the neighbour guesser's k answers (it reads the tokens left and right of the
    [MASK]): a rate over every held-out sentence, not the handful printed. {"sentences", "k", "model",
    "neighbour"} (counts; "neighbour" is None without a guesser)."""
    if not examples:
        raise ValueError("no held-out sentences to fill / 穴埋めを試すテストデータの文がありません")
    model_hits = neighbour_hits = 0
    for ex in examples:
        at = ex["position"]
        model_hits += ex["answer_id"] in [p["id"] for p in fill_mask(model, tokenizer, ex["ids"], top_k=k)]
        if guesser is not None:
            neighbour_hits += ex["answer_id"] in guesser.guesses(ex["ids"][at - 1], ex["ids"][at + 1], k=k)
    return {"sentences": len(examples), "k": k, "model": model_hits,
            "neighbour": neighbour_hits if guesser is not None else None}


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
            ax.plot(*zip(*train), alpha=0.6, label=f"{name}: 学習損失")
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


# ----------------------------------------------------------------------------- notebook 02 from the export
FINETUNE_NOTEBOOK = "notebooks/02_livedoor_bert.ipynb"
LIFT_RESULTS = "benchmarks/results/pretrain_lift.json"
TRANSFER_RESULTS = "benchmarks/results/pretrain_transfer.json"
# benchmarks/pretrain_transfer.py's starts of notebook 02, in the order a lesson shows them
TRANSFER_STARTS = {
    "random_04_vocab": "04 の語彙、ランダムな重み",
    "pretrained": "04 の語彙と重み",
    "random_04_vocab_zero_position": "04 の語彙、ランダムな重み、位置の埋め込み 0",
    "pretrained_zero_position": "04 の語彙と重み、位置の埋め込み 0",
}


def finetune_command(paths: dict, *, profile: str, learning_rate: float, seed: int,
                     per_category: int | None = None, data_dir: str | Path = "") -> list[str]:
    """The command line that fine-tunes the exported BERT in notebook 02, as a list of arguments.

    The same profile as this run, notebook 02's split of the same `seed` (and, for livedoor, the same
    `per_category` and `data_dir`), so that the articles 02 validates and tests on are the ones this
    pre-training left out; `learning_rate` for a pre-trained start; `lowercase False` because the
    export's SentencePiece model keeps case; the three exported files."""
    argv = ["python", "-m", "coursekit", "run", FINETUNE_NOTEBOOK, "--profile", profile, "-p", "seed", str(seed)]
    if per_category is not None:
        argv += ["-p", "per_category", str(per_category)]
    if data_dir:
        argv += ["-p", "data_dir", str(data_dir)]
    argv += ["-p", "learning_rate", f"{learning_rate:g}", "-p", "lowercase", "False",
             "-p", "bert_config", str(paths["tf_config"]), "-p", "bert_checkpoint", str(paths["tf_checkpoint"]),
             "-p", "spm_model", str(paths["spm_model"])]
    return argv


def format_command(argv: Sequence[str]) -> str:
    """A command line to print: shell-quoted, one `-p NAME VALUE` per line."""
    import shlex

    lines, current = [], []
    for arg in argv:
        if arg == "-p" and current:
            lines.append(" ".join(current))
            current = []
        current.append(shlex.quote(str(arg)))
    lines.append(" ".join(current))
    return " \\\n    ".join(lines)


def find_lift_results(start: str | Path | None = None, name: str = LIFT_RESULTS) -> Path | None:
    """benchmarks/results/pretrain_lift.json (or another results file `name`, e.g. TRANSFER_RESULTS) of
    the kit's checkout above `start` (default: the current folder), else above this module; None when
    the benchmark has not written it yet."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents, *Path(__file__).resolve().parents):
        path = folder / name
        if path.is_file():
            return path
    return None


def best_within(curve: Sequence[dict], seconds: float) -> dict | None:
    """The point of pretrain_lift.py's curve with the highest median accuracy among the pre-training lengths
    whose notebook 04 run (median of its seeds' `notebook04_s`) took at most `seconds`; None if none did.
    The 0-step point (no notebook 04 run) is not a length of pre-training and is left out."""
    timed = [p for p in curve if p.get("notebook04_s") and statistics.median(p["notebook04_s"]) <= seconds]
    return max(timed, key=lambda p: p["median"], default=None)


def plot_lift(figures: dict):
    """The lift of pre-training, from the figures of benchmarks/pretrain_lift.py: notebook 02's test
    accuracy against the steps of pre-training (median of the seeds, bars from min to max; 0 steps is the
    random start), with the TF-IDF baseline on the same text as a line (Japanese labels)."""
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    fig, ax = plt.subplots(figsize=(7, 4))
    curve = sorted(figures["curve"], key=lambda p: p["steps"])
    steps = [p["steps"] for p in curve]
    med = [p["median"] for p in curve]
    low = [m - min(p["accuracies"]) for m, p in zip(med, curve)]
    high = [max(p["accuracies"]) - m for m, p in zip(med, curve)]
    ax.errorbar(steps, med, yerr=[low, high], fmt="o-", capsize=4, label="事前学習した BERT(02 のテスト正解率)")
    three = figures["three"]
    ax.axhline(three["random"]["median"], color="tab:gray", ls="--", label="ランダムな初期値から")
    ax.axhline(three["tfidf_same_text"]["median"], color="tab:green", ls=":", label="TF-IDF + SVM(同じ文字列)")
    tiny = three["pretrained"].get("steps")
    if tiny:
        ax.axvline(tiny, color="tab:orange", lw=1, alpha=0.6, label=f"tiny プロファイル({tiny} ステップ)")
    ax.set_xlabel("事前学習のステップ数")
    ax.set_ylabel("ノートブック 02 のテスト正解率")
    ax.set_title("事前学習の長さとファインチューニングの正解率")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return fig


def plot_short_first(figures: dict):
    """Short blocks first against the tiny profile, from the figures of benchmarks/pretrain_lift.py
    (its `short_first` part, and `masked` for the tiny profile): left, masked-token accuracy top-1 and top-5
    of the unigram guesser, the tiny model and the short-first model; right, notebook 02's test accuracy
    from a random start, from the tiny model and from the short-first model (medians of the seeds;
    Japanese labels)."""
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    sf, three, tiny = figures["short_first"], figures["three"], figures["masked"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = ["ユニグラムの当て方", "tiny", "短いブロックから"]
    top1 = [tiny["unigram_top1"]["median"], tiny["model_top1"]["median"], sf["model_top1"]["median"]]
    top5 = [tiny["unigram_top5"]["median"], tiny["model_top5"]["median"], sf["model_top5"]["median"]]
    xs = np.arange(len(names))
    left.bar(xs - 0.2, top1, 0.4, label="top-1", color="tab:blue")
    left.bar(xs + 0.2, top5, 0.4, label="top-5", color="tab:cyan")
    left.set_xticks(xs, names)
    left.set_ylabel("隠したトークンの正解率")
    left.set_title("事前学習: 文脈を読めたか")
    left.legend(fontsize="small")
    rows = [("ランダムな重みから", three["random"]), ("tiny から", three["pretrained"]),
            ("短いブロックから", sf["accuracy"])]
    med = [r["median"] for _, r in rows]
    err = [[m - r["min"] for m, (_, r) in zip(med, rows)], [r["max"] - m for m, (_, r) in zip(med, rows)]]
    right.bar(np.arange(3), med, yerr=err, capsize=4, color=["tab:gray", "tab:blue", "tab:orange"])
    right.axhline(three["tfidf_same_text"]["median"], color="tab:green", ls=":", label="TF-IDF + SVM(同じ文字列)")
    right.set_xticks(np.arange(3), [name for name, _ in rows])
    right.set_ylim(max(0.0, min(r["min"] for _, r in rows) - 0.1), 1.0)
    right.set_ylabel("ノートブック 02 のテスト正解率")
    right.set_title("ファインチューニング: よい出発点か")
    right.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return fig


def plot_longer_finetuning(longer: dict):
    """Notebook 02 fine-tuned longer, from the `longer_finetuning` figures of benchmarks/pretrain_lift.py
    --epochs-seeds: left, training (dashed) and validation (solid) accuracy after every epoch from the random
    and from the pre-trained start; right, the validation loss (medians of the seeds; Japanese labels)."""
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.arange(1, longer["epochs"] + 1)
    for key, name, color in (("random", "ランダムな重みから", "tab:gray"), ("pretrained", "tiny から", "tab:blue")):
        figures = longer[key]
        left.plot(epochs, figures["val_accuracy"], "o-", color=color, label=f"{name}: 検証データ")
        left.plot(epochs, figures["train_accuracy"], "--", color=color, alpha=0.7, label=f"{name}: 学習データ")
        right.plot(epochs, figures["val_loss"], "o-", color=color, label=name)
    left.set_xlabel("エポック")
    left.set_ylabel("正解率")
    left.set_ylim(0, 1.02)
    left.set_title("ノートブック 02 の正解率")
    left.legend(fontsize="small", loc="lower right")
    right.set_xlabel("エポック")
    right.set_ylabel("検証損失")
    right.set_title("ノートブック 02 の検証損失")
    right.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_transfer(transfer: dict, lift: dict | None = None):
    """benchmarks/pretrain_transfer.py's test accuracies of notebook 02 from each start (median of the seeds,
    bars from min to max), then its learning-rate rows (pre-trained and random start at each other rate) when
    the figures have them, with notebook 02's own random start and TF-IDF from pretrain_lift.py's figures
    `lift` when given (Japanese labels)."""
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    rates = transfer.get("learning_rates") or {}
    at = f"、学習率 {rates['command_learning_rate']:g}" if rates.get("command_learning_rate") else ""
    rows = [(label + at, transfer["accuracy"][key]) for key, label in TRANSFER_STARTS.items()
            if key in transfer["accuracy"]]
    for rate in rates.get("rates", []):
        rows += [(f"{TRANSFER_STARTS['pretrained']}、学習率 {rate['learning_rate']:g}", rate["pretrained"]),
                 (f"02 の語彙、ランダムな重み、学習率 {rate['learning_rate']:g}", rate["random"])]
    if lift is not None:
        rows.insert(0, ("02 の語彙、ランダムな重み(02 そのまま)", lift["three"]["random"]))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    ys = list(range(len(rows)))[::-1]
    med = [r["median"] for _, r in rows]
    err = [[m - r["min"] for m, (_, r) in zip(med, rows)], [r["max"] - m for m, (_, r) in zip(med, rows)]]
    ax.barh(ys, med, xerr=err, capsize=3, color=["tab:gray" if "ランダム" in label else "tab:blue"
                                                   for label, _ in rows])
    ax.set_yticks(ys, [label for label, _ in rows])
    if lift is not None:
        ax.axvline(lift["three"]["tfidf_same_text"]["median"], color="tab:green", ls=":", label="TF-IDF + SVM(同じ文字列)")
        ax.legend(fontsize="small", loc="lower right")
    low = min(r["min"] for _, r in rows)
    ax.set_xlim(max(0.0, low - 0.1), 1.0)
    ax.set_xlabel("02 のテスト正解率(シードの中央値。線は最小〜最大)")
    ax.set_title("何から始めると 02 の正解率が変わるか")
    fig.tight_layout()
    return fig


def is_livedoor(corpus: str) -> bool:
    """True when notebook 04's `corpus` is the livedoor corpus: "livedoor", the URL of its tarball, or a
    folder holding its category folders (text/ or its parent), what corpora.read_source reads as livedoor."""
    from . import download, livedoor

    if corpus == "livedoor" or (download.is_url(corpus) and corpus.endswith((".tar.gz", ".tgz"))):
        return True
    path = Path(corpus).expanduser()
    root = path / "text" if (path / "text").is_dir() else path
    return root.is_dir() and any((root / c).is_dir() for c in livedoor.CATEGORIES)
