"""Notebook 04's plumbing: tokenizer (slow == fast), the length check, blocks, fixed validation
masks inside a Trainer, the loss curve, the Google-format export (keras-bert reads the same weights
and fine-tunes a step; the transformers export loads in the fill-mask pipeline)."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from coursekit.lessons import corpora
from coursekit.lessons import pretrain
from ..conftest import SHARED_DATA
from ..corpora import sample_documents


# ----------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def sample_tokenizer(tmp_path_factory):
    docs = sample_documents(120, seed=2)
    sentences = [s for d in docs for s in corpora.split_sentences(d)]
    return pretrain.train_tokenizer(sentences, tmp_path_factory.mktemp("tok"), vocab_size=120)


MIXED = ["東京 と 大阪　で ＡＢＣ １２３ Hello World!", "日本の首都は[MASK]です。", "がぎぐげご ぱぴぷ ｶﾀｶﾅ ①② ㍻",
         "  前後に空白  ", "English only, with CAPITALS.", "絵文字😀と記号※★", "改行\nと\tタブ", ""]


def test_slow_and_fast_tokenizers_give_identical_ids(sample_tokenizer):
    fast = sample_tokenizer
    slow = pretrain.load_tokenizer(fast.name_or_path, slow=True)
    assert type(fast).__name__ == "AlbertTokenizer" and isinstance(slow, pretrain.SentencePieceBertTokenizer)
    assert len(fast) == len(slow) == 120
    assert (fast.pad_token_id, fast.unk_token_id, fast.cls_token_id, fast.sep_token_id, fast.mask_token_id) == \
        (0, 1, 4, 5, 6) == (slow.pad_token_id, slow.unk_token_id, slow.cls_token_id, slow.sep_token_id,
                            slow.mask_token_id)
    texts = [s for d in sample_documents(50, seed=3) for s in corpora.split_sentences(d)] + MIXED
    assert pretrain.tokenizer_differences(fast, slow, texts) == []
    ids = fast("今日の天気は[MASK]です。")["input_ids"]
    assert ids[0] == 4 and ids[-1] == 5 and 6 in ids
    assert fast.tokenize("がぎ") != ["▁", "か", "き"], "accents (dakuten) are kept"
    reused = pretrain.train_tokenizer(["別の文。"], fast.name_or_path, vocab_size=120, reuse=True)
    assert reused.get_vocab() == fast.get_vocab(), "a resumed job keeps the vocabulary of its checkpoints"
    with pytest.raises(ValueError, match="holds a tokenizer of 120 pieces, not vocab_size=50"):
        pretrain.train_tokenizer(["別の文。"], fast.name_or_path, vocab_size=50, reuse=True)


def test_slow_and_fast_agree_on_real_livedoor_text(tmp_path):
    root = SHARED_DATA / "livedoor" / "text"
    if not root.is_dir():
        pytest.skip(f"livedoor corpus not found at {root}")
    docs = list(corpora.read_text_folder(root))[::25]  # about 300 articles of every genre
    sentences = [s for d in docs for s in corpora.split_sentences(d)]
    fast = pretrain.train_tokenizer(sentences[::2], tmp_path / "tok", vocab_size=3000,
                                    character_coverage=0.995)
    slow = pretrain.load_tokenizer(tmp_path / "tok", slow=True)
    held_out = sentences[1::2]
    assert len(held_out) > 2000
    assert pretrain.tokenizer_differences(fast, slow, held_out) == []


def test_vocabulary_larger_than_the_corpus_supports_is_an_error_before_training(tmp_path):
    sentences = corpora.split_sentences("".join(sample_documents(20)))
    with pytest.raises(ValueError, match=r"vocab_size=5000 is larger than this corpus supports: "
                                         r"SentencePiece found only \d+ pieces"):
        pretrain.train_tokenizer(sentences, tmp_path / "tok", vocab_size=5000)
    with pytest.raises(ValueError, match="empty corpus"):
        pretrain.train_tokenizer([], tmp_path / "tok2", vocab_size=100)
    many_chars = ["".join(chr(0x4E00 + (7 * k + j) % 3000) for j in range(30)) + "。" for k in range(400)]
    with pytest.raises(ValueError, match=r"vocab_size=100 is smaller than the \d+ distinct characters"):
        pretrain.train_tokenizer(many_chars, tmp_path / "tok3", vocab_size=100, character_coverage=0.9995)


def test_sequence_length_above_positions_is_an_error_naming_both_numbers():
    pretrain.check_lengths([128, 512], 512)
    pretrain.check_lengths([], 512)
    with pytest.raises(ValueError, match="sequence length 1024 is above the model's max_position_embeddings=512"):
        pretrain.check_lengths([128, 1024], 512)


def test_examples_are_blocks_of_a_document_with_cls_and_sep(sample_tokenizer):
    docs = [corpora.split_sentences(d) for d in sample_documents(3, sentences=30, seed=4)]
    examples = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    assert len(examples) >= 6
    assert all(ex["input_ids"][0] == 4 and ex["input_ids"][-1] == 5 and len(ex["input_ids"]) <= 32
               for ex in examples)
    one_doc = pretrain.encode_documents(sample_tokenizer, docs[:1], seq_len=32)
    joined = [i for ex in one_doc for i in ex["input_ids"][1:-1]]
    expected = [i for s in docs[0] for i in sample_tokenizer(s, add_special_tokens=False)["input_ids"]]
    assert joined == expected[:len(joined)] and len(expected) - len(joined) < 4, "nothing lost but a short tail"
    with pytest.raises(ValueError, match="too short"):
        pretrain.encode_documents(sample_tokenizer, docs, seq_len=4)


def test_fixed_masks_are_the_same_every_time_and_mask_about_15_percent(sample_tokenizer):
    docs = [corpora.split_sentences(d) for d in sample_documents(6, sentences=30, seed=4)]
    examples = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    masked = pretrain.fixed_masks(examples, sample_tokenizer, 0.15, seed=0)
    assert masked == pretrain.fixed_masks(examples, sample_tokenizer, 0.15, seed=0), "same masks every time"
    assert masked != pretrain.fixed_masks(examples, sample_tokenizer, 0.15, seed=1)
    labelled = sum(l != -100 for ex in masked for l in ex["labels"])
    tokens = sum(len(ex["input_ids"]) - 2 for ex in examples)
    assert 0.08 < labelled / tokens < 0.25
    for ex, m in zip(examples, masked):
        assert m["labels"][0] == m["labels"][-1] == -100, "[CLS] and [SEP] are never masked"
        assert all(l == -100 or l == orig for l, orig in zip(m["labels"], ex["input_ids"])), "labels: the originals"


# ----------------------------------------------------------------------------- training pieces
def _tiny_model(tokenizer, max_positions=64):
    from transformers import BertConfig, BertForMaskedLM, set_seed

    set_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64,
                                      max_position_embeddings=max_positions, hidden_act="gelu_new",
                                      pad_token_id=tokenizer.pad_token_id))


def test_fixed_mask_collator_masks_training_batches_and_only_pads_validation(sample_tokenizer):
    from transformers import DataCollatorForLanguageModeling

    docs = [corpora.split_sentences(d) for d in sample_documents(8, seed=6)]
    train = pretrain.encode_documents(sample_tokenizer, docs, seq_len=24)
    valid = pretrain.fixed_masks(train[:3], sample_tokenizer, 0.15, seed=0)
    collator = pretrain.FixedMaskCollator(DataCollatorForLanguageModeling(sample_tokenizer, mlm_probability=0.5))
    a, b = collator(train[:8]), collator(train[:8])
    assert (a["labels"] != -100).any() and not (a["labels"] == b["labels"]).all(), "new masks every call"
    batch = collator(valid)
    longest = max(len(v["input_ids"]) for v in valid)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, longest)
    for k, v in enumerate(valid):
        n = len(v["input_ids"])
        assert batch["input_ids"][k, :n].tolist() == v["input_ids"]
        assert batch["labels"][k, :n].tolist() == v["labels"] and (batch["labels"][k, n:] == -100).all()
        assert batch["attention_mask"][k].tolist() == [1] * n + [0] * (longest - n)


def test_trainer_scores_the_same_validation_masks_at_every_evaluation(sample_tokenizer, tmp_path):
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    docs = [corpora.split_sentences(d) for d in sample_documents(40, seed=5)]
    train = pretrain.encode_documents(sample_tokenizer, docs[:-6], seq_len=32)
    valid = pretrain.fixed_masks(pretrain.encode_documents(sample_tokenizer, docs[-6:], seq_len=32),
                                 sample_tokenizer)
    collator = pretrain.FixedMaskCollator(DataCollatorForLanguageModeling(sample_tokenizer))
    args = TrainingArguments(output_dir=str(tmp_path / "t"), max_steps=30, per_device_train_batch_size=8,
                             per_device_eval_batch_size=8, learning_rate=3e-3, warmup_steps=3,
                             eval_strategy="steps", eval_steps=30, save_strategy="no", report_to="none",
                             logging_steps=10, seed=0)
    trainer = Trainer(model=_tiny_model(sample_tokenizer), args=args, train_dataset=train,
                      eval_dataset=valid, data_collator=collator)
    before = trainer.evaluate()["eval_loss"]
    assert trainer.evaluate()["eval_loss"] == before, "fixed masks: the same loss twice"
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < before - 0.3
    curve = pretrain.loss_curve(trainer.state.log_history)
    assert [p["step"] for p in curve if "loss" in p] == [10, 20, 30]
    assert [p["step"] for p in curve if "eval_loss" in p][-2:] == [30, 30]
    fig = pretrain.plot_losses({"phase 1": curve, "phase 2": curve[:2]}, loss_before=before)
    assert len(fig.axes[0].lines) == 4 and fig.axes[0].get_xlabel() == "ステップ"


# ----------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def exported(sample_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    model = _tiny_model(sample_tokenizer).eval()
    model.save_pretrained(out / "hf")
    sample_tokenizer.save_pretrained(out / "hf")
    spiece = out / "hf" / "spiece.model"  # the fast tokenizer's save_pretrained writes only tokenizer.json
    assert not spiece.exists()
    shutil.copyfile(Path(sample_tokenizer.name_or_path) / "spiece.model", spiece)
    return {"paths": pretrain.export_google(model, spiece, out / "tf"), "model": model, "hf": out / "hf",
            "tokenizer": sample_tokenizer}


def test_google_export_files_and_names(exported, tmp_path):
    import json

    from .test_kerasbert import read_checkpoint

    paths = exported["paths"]
    assert paths["tf_checkpoint"].name == "bert_model.ckpt" and paths["spm_model"].is_file()
    config = json.loads(paths["tf_config"].read_text())
    assert config["hidden_act"] == "gelu" and config["vocab_size"] == 120 and config["num_hidden_layers"] == 1
    weights = read_checkpoint(paths["tf_checkpoint"])
    torch_kernel = exported["model"].bert.encoder.layer[0].attention.self.query.weight.detach().numpy()
    np.testing.assert_allclose(weights["bert/encoder/layer_0/attention/self/query/kernel"], torch_kernel.T)
    assert "cls/predictions/output_bias" in weights
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        pretrain.export_google(exported["model"], tmp_path / "missing.model", tmp_path / "tf")


def test_keras_bert_reads_the_same_weights_and_fine_tunes_a_step(exported):
    import torch

    from coursekit.lessons import kerasbert  # sets TF_USE_LEGACY_KERAS before TensorFlow loads
    from keras_bert import load_trained_model_from_checkpoint
    import tensorflow as tf

    paths, tok = exported["paths"], exported["tokenizer"]
    texts = ["太郎は東京で本を読みました。", "今日の天気は雨です。明日も雨でしょうか？"]
    rows = [tok(t)["input_ids"] for t in texts]
    x = np.zeros((2, max(map(len, rows))), np.int32)
    for k, row in enumerate(rows):
        x[k, :len(row)] = row
    bert = load_trained_model_from_checkpoint(str(paths["tf_config"]), str(paths["tf_checkpoint"]),
                                              training=False, seq_len=None)
    keras_out = np.asarray(bert.predict_on_batch([x, np.zeros_like(x)]))
    with torch.no_grad():
        ids = torch.tensor(x, dtype=torch.long)
        torch_out = exported["model"].bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state.numpy()
    real = x != 0
    np.testing.assert_allclose(keras_out[real], torch_out[real], atol=1e-4)

    classifier = kerasbert.build_classifier(paths["tf_config"], paths["tf_checkpoint"], num_labels=2)
    classifier.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    before = classifier.get_layer("Embedding-Token").get_weights()[0].copy()
    history = classifier.fit([x, np.zeros_like(x)], np.array([0, 1]), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, classifier.get_layer("Embedding-Token").get_weights()[0])


def test_transformers_export_loads_in_the_fill_mask_pipeline(exported):
    from transformers import pipeline

    hf = exported["hf"]
    fill = pipeline("fill-mask", model=str(hf), tokenizer=str(hf))
    result = fill("今日の天気は[MASK]です。", top_k=5)
    scores = [r["score"] for r in result]
    assert len(result) == 5 and scores == sorted(scores, reverse=True)
    assert fill.tokenizer("がぎ")["input_ids"] == exported["tokenizer"]("がぎ")["input_ids"]
