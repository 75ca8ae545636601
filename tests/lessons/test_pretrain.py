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


# ----------------------------------------------------------------------------- sparse prediction, accumulation
def _sparse_and_full(tokenizer):
    full = _tiny_model(tokenizer)
    sparse = pretrain.SparseBertForMaskedLM(full.config)
    sparse.load_state_dict(full.state_dict())
    return sparse.eval(), full.eval()


def test_sparse_prediction_gives_bert_for_masked_lm_loss_and_gradients(sample_tokenizer):
    import torch
    from transformers import DataCollatorForLanguageModeling

    docs = [corpora.split_sentences(d) for d in sample_documents(6, seed=7)]
    collator = pretrain.FixedMaskCollator(DataCollatorForLanguageModeling(sample_tokenizer))
    batch = collator(pretrain.fixed_masks(pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)[:4],
                                          sample_tokenizer))
    sparse, full = _sparse_and_full(sample_tokenizer)
    assert isinstance(sparse, type(full)), "a BertForMaskedLM: the same weights and saved files"
    a, b = sparse(**batch), full(**batch)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-5)
    assert a.logits.shape == ((batch["labels"] != -100).sum().item(), len(sample_tokenizer)), "masked positions only"
    a.loss.backward()
    b.loss.backward()
    torch.testing.assert_close(sparse.bert.embeddings.word_embeddings.weight.grad,
                               full.bert.embeddings.word_embeddings.weight.grad, rtol=1e-4, atol=1e-6)
    no_labels = {k: v for k, v in batch.items() if k != "labels"}
    torch.testing.assert_close(sparse(**no_labels).logits, full(**no_labels).logits), "fill-mask: every position"
    # the Trainer's count of chosen tokens over the micro-batches of one step divides the sum
    half = sparse(**batch, num_items_in_batch=2 * (batch["labels"] != -100).sum())
    torch.testing.assert_close(half.loss, a.loss / 2)


def test_gradient_accumulation_keeps_the_logged_loss_and_the_step(sample_tokenizer, tmp_path):
    """batch 8 x accumulation 1 and batch 4 x accumulation 2 are the same optimizer steps: the logged
    training loss stays on the same scale (BertForMaskedLM's mean loss would be doubled here)."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    docs = [corpora.split_sentences(d) for d in sample_documents(40, seed=5)]
    train = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    logged = {}
    for batch, accum in ((8, 1), (4, 2)):
        args = TrainingArguments(output_dir=str(tmp_path / f"a{accum}"), max_steps=6, per_device_train_batch_size=batch,
                                 gradient_accumulation_steps=accum, learning_rate=1e-3, logging_steps=2,
                                 save_strategy="no", report_to="none", seed=0, use_cpu=True,
                                 average_tokens_across_devices=False, disable_tqdm=True)
        model = pretrain.SparseBertForMaskedLM(_tiny_model(sample_tokenizer).config)
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          data_collator=pretrain.FixedMaskCollator(DataCollatorForLanguageModeling(sample_tokenizer)))
        trainer.train()
        logged[accum] = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        assert trainer.state.global_step == 6
    assert len(logged[1]) == len(logged[2]) == 3
    for one, two in zip(logged[1], logged[2]):
        assert 0.8 < two / one < 1.25, logged


# ----------------------------------------------------------------------------- masked-token accuracy, fill-mask
def _rigged(tokenizer, favourites):
    """A model whose vocabulary layer ranks `favourites` first, in that order, whatever the context."""
    import torch

    model = _tiny_model(tokenizer).eval()
    with torch.no_grad():
        for rank, token in enumerate(favourites):
            model.cls.predictions.bias[token] = 100.0 - rank
    return model


def test_masked_accuracy_counts_mask_positions_and_the_unigram_guesser(sample_tokenizer):
    docs = [corpora.split_sentences(d) for d in sample_documents(30, seed=8)]
    blocks = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    valid = pretrain.fixed_masks(blocks[-20:], sample_tokenizer, 0.15, seed=0)
    mask = sample_tokenizer.mask_token_id
    answers = [ex["labels"][i] for ex in valid for i, t in enumerate(ex["input_ids"]) if t == mask and ex["labels"][i] != -100]
    chosen = sum(l != -100 for ex in valid for l in ex["labels"])
    assert 0 < len(answers) < chosen, "random and unchanged tokens are not counted"
    counts = pretrain.token_counts(blocks[:-20], len(sample_tokenizer))
    assert counts[sample_tokenizer.cls_token_id] == counts[sample_tokenizer.sep_token_id] == 0
    unigram = pretrain.unigram_accuracy(counts, valid, mask)
    top = [int(i) for i in np.argsort(-counts, kind="stable")[:5]]
    assert unigram["guesses"] == top and unigram["positions"] == len(answers)
    assert unigram["top1"] == pytest.approx(sum(a == top[0] for a in answers) / len(answers))
    assert unigram["topk"] == pytest.approx(sum(a in top for a in answers) / len(answers))
    # a model that answers the unigram guesser's list scores exactly what the guesser scores
    rigged = pretrain.masked_accuracy(_rigged(sample_tokenizer, top), valid, mask, batch_size=7)
    assert (rigged["top1"], rigged["topk"], rigged["positions"]) == pytest.approx(
        (unigram["top1"], unigram["topk"], len(answers)))
    with pytest.raises(ValueError, match="no \\[MASK\\] position"):
        pretrain.unigram_accuracy(counts, [{"input_ids": [4, 9, 5], "labels": [-100, -100, -100]}], mask)


def test_encode_masked_has_no_word_start_piece_after_the_mask(sample_tokenizer):
    tok = sample_tokenizer
    original = tok("今日の天気は雨です。")["input_ids"]
    pieces = tok.convert_ids_to_tokens(original)
    k = pieces.index("雨") if "雨" in pieces else next(i for i, p in enumerate(pieces) if p.lstrip("▁") == "雨")
    masked = pretrain.encode_masked(tok, "今日の天気は[MASK]です。")
    assert masked == original[:k] + [tok.mask_token_id] + original[k + 1:]
    naive = tok("今日の天気は[MASK]です。")["input_ids"]
    assert len(naive) == len(masked) + 1, "the tokenizer alone puts a '▁' after [MASK]"
    assert pretrain.encode_masked(tok, "[MASK]です。")[:2] == [tok.cls_token_id, tok.mask_token_id]


def test_fill_mask_examples_hide_known_words_of_held_out_documents(sample_tokenizer):
    tok = sample_tokenizer
    docs = [corpora.split_sentences(d) for d in sample_documents(60, seed=9)]
    counts = pretrain.token_counts(pretrain.encode_documents(tok, docs[:50], seq_len=64), len(tok))
    examples = pretrain.fill_mask_examples(tok, docs[50:], counts, n=4, min_count=30, sentence_chars=(5, 60), seed=0)
    assert len(examples) == 4
    assert examples == pretrain.fill_mask_examples(tok, docs[50:], counts, n=4, min_count=30,
                                                   sentence_chars=(5, 60), seed=0)
    held_out = {s for d in docs[50:] for s in d}
    for ex in examples:
        assert ex["text"] in held_out and ex["ids"].count(tok.mask_token_id) == 1
        assert ex["ids"][ex["position"]] == tok.mask_token_id and "[MASK]" in ex["masked"]
        restored = ex["ids"][:ex["position"]] + [ex["answer_id"]] + ex["ids"][ex["position"] + 1:]
        assert restored == tok(ex["text"])["input_ids"]
        assert len(ex["answer"]) >= 2 and counts[ex["answer_id"]] >= 30
    assert pretrain.fill_mask_examples(tok, docs[50:], counts, n=4, min_count=10 ** 9,
                                       sentence_chars=(5, 60)) == [], "no word is known"
    model = _rigged(tok, [ex["answer_id"] for ex in examples[:1]] + [7, 8, 9, 10])
    top = pretrain.fill_mask(model, tok, examples[0]["ids"], top_k=5)
    assert [p["id"] for p in top] == [examples[0]["answer_id"], 7, 8, 9, 10]
    assert top[0]["token"] == examples[0]["answer"] and top[0]["score"] > 0.5


# ----------------------------------------------------------------------------- notebook 02 from the export
def test_the_fine_tuning_command_is_what_the_runner_parses():
    import shlex

    from coursekit.harness.runner import build_parser

    paths = {"tf_config": Path("runs/x/export/tf/bert_config.json"),
             "tf_checkpoint": Path("runs/x/export/tf/bert_model.ckpt"), "spm_model": Path("my runs/spiece.model")}
    argv = pretrain.finetune_command(paths, profile="tiny", learning_rate=0.001, seed=2, per_category=300,
                                     data_dir="data/text")
    assert argv[:5] == ["python", "-m", "coursekit", "run", "notebooks/02_livedoor_bert.ipynb"]
    args = build_parser().parse_args(argv[4:])
    assert args.profile == "tiny" and dict(args.parameter) == {
        "seed": "2", "per_category": "300", "data_dir": "data/text", "learning_rate": "0.001", "lowercase": "False",
        "bert_config": "runs/x/export/tf/bert_config.json", "bert_checkpoint": "runs/x/export/tf/bert_model.ckpt",
        "spm_model": "my runs/spiece.model"}
    printed = pretrain.format_command(argv)
    assert printed.count("\\\n") == 8 and shlex.split(printed.replace("\\\n", " ")) == argv
    full = pretrain.finetune_command(paths, profile="full", learning_rate=2e-5, seed=0)
    assert "per_category" not in full and "data_dir" not in full and full[full.index("learning_rate") + 1] == "2e-05"


def test_livedoor_sources_are_recognised(tmp_path):
    from ..corpora import write_sample_corpus

    text = write_sample_corpus(tmp_path / "ldcc", per_category=3)
    assert pretrain.is_livedoor("livedoor") and pretrain.is_livedoor("https://example.org/ldcc-20140209.tar.gz")
    assert pretrain.is_livedoor(str(text)) and pretrain.is_livedoor(str(text.parent))
    assert not pretrain.is_livedoor("data/jawiki-latest-pages-articles.xml.bz2")
    assert not pretrain.is_livedoor(str(tmp_path))


@pytest.mark.parametrize("per_category", [0, 10])
def test_livedoor_pretraining_text_leaves_out_what_notebook_02_validates_and_tests_on(tmp_path, per_category):
    """Notebook 02 splits all articles (full) or per_category per genre (tiny) with its seed: the
    pre-training text holds none of either split's validation and test articles, and every other article."""
    from coursekit.lessons import livedoor

    from ..corpora import write_sample_corpus

    text = write_sample_corpus(tmp_path / "ldcc", per_category=14, seed=3)
    for seed in (0, 1):
        docs = corpora.read_source(str(text), tmp_path / "work", seed=seed, per_category=per_category)
        articles = livedoor.load_corpus(text, max_chars=0)
        held_out = set()
        for n in (0, per_category):
            _, val, test = livedoor.split(livedoor.balanced_subset(articles, n, seed=seed), 0.1, 0.1, seed=seed)
            held_out |= set(val.texts) | set(test.texts)
        assert len(set(articles.texts)) == len(articles), "generated articles are all different"
        assert not held_out & set(docs)
        assert sorted(docs) == sorted(t for t in articles.texts if t not in held_out)
        assert len(held_out) > (26 if per_category else 24), "both splits' articles are left out"


def test_real_livedoor_pretraining_text_leaves_out_both_splits_of_notebook_02(tmp_path):
    root = SHARED_DATA / "livedoor" / "text"
    if not root.is_dir():
        pytest.skip(f"livedoor corpus not found at {root}")
    from coursekit.lessons import livedoor

    docs = corpora.read_source(str(root), tmp_path, livedoor_cache=str(tmp_path / "no-download"), per_category=300)
    tiny = livedoor.balanced_subset(livedoor.load_corpus(root, max_chars=510), 300, seed=0)
    train, val, test = livedoor.split(tiny, 0.1, 0.1, seed=0)
    assert len(val) == len(test) == 270
    # what notebook 02 reads (the first 510 characters); the release has a few articles twice under two ids
    read = {d[:510] for d in docs}
    assert not read & set(val.texts + test.texts), "none of notebook 02 tiny's held-out articles, nor a copy"
    _, full_val, full_test = livedoor.split(livedoor.load_corpus(root, max_chars=510), 0.1, 0.1, seed=0)
    assert not read & set(full_val.texts + full_test.texts), "nor those of notebook 02 full"
    missing = set(train.texts) - read - set(full_val.texts + full_test.texts)
    assert len(missing) < 3, "the rest of notebook 02 tiny's training articles are there (but copies of held-out ones)"
    assert 5300 < len(docs) < 5600


def test_the_lift_results_are_found_and_drawn(tmp_path, monkeypatch):
    import json

    figures = {"three": {"seeds": [0, 1, 2], "random": {"values": [0.8, 0.81, 0.83], "median": 0.81, "min": 0.8, "max": 0.83},
                         "pretrained": {"values": [0.84, 0.86, 0.87], "median": 0.86, "min": 0.84, "max": 0.87, "steps": 300},
                         "tfidf_same_text": {"values": [0.9, 0.9, 0.91], "median": 0.9, "min": 0.9, "max": 0.91},
                         "finetune_learning_rate": 0.001},
               "curve": [{"steps": 0, "accuracies": [0.8, 0.81, 0.83], "median": 0.81},
                         {"steps": 300, "accuracies": [0.84, 0.86, 0.87], "median": 0.86},
                         {"steps": 1000, "accuracies": [0.88], "median": 0.88}]}
    kit = tmp_path / "kit"
    (kit / "benchmarks" / "results").mkdir(parents=True)
    (kit / "notebooks").mkdir()
    (kit / pretrain.LIFT_RESULTS).write_text(json.dumps({"figures": figures}))
    assert pretrain.find_lift_results(kit / "notebooks") == kit / pretrain.LIFT_RESULTS
    monkeypatch.chdir(kit / "notebooks")
    assert pretrain.find_lift_results() == kit / pretrain.LIFT_RESULTS
    fig = pretrain.plot_lift(figures)
    ax = fig.axes[0]
    xs, ys = ax.lines[0].get_data()
    assert list(xs) == [0, 300, 1000] and list(ys) == [0.81, 0.86, 0.88]
    assert ax.get_xlabel() == "事前学習のステップ数" and len(ax.get_legend().get_texts()) == 4


def test_short_blocks_first_are_drawn_beside_the_tiny_profile():
    three = {"random": {"median": 0.80, "min": 0.79, "max": 0.81}, "pretrained": {"median": 0.81, "min": 0.79, "max": 0.82},
             "tfidf_same_text": {"median": 0.885, "min": 0.87, "max": 0.90}}
    sf = {"model_top1": {"median": 0.12}, "model_top5": {"median": 0.25}, "accuracy": {"median": 0.75, "min": 0.74, "max": 0.76}}
    tiny = {"model_top1": {"median": 0.035}, "model_top5": {"median": 0.136},
            "unigram_top1": {"median": 0.032}, "unigram_top5": {"median": 0.137}}
    fig = pretrain.plot_short_first({"three": three, "short_first": sf, "masked": tiny})
    masked, fine = fig.axes
    heights = [p.get_height() for p in masked.patches]
    assert heights == pytest.approx([0.032, 0.035, 0.12, 0.137, 0.136, 0.25])   # top-1 bars, then top-5 bars
    assert [t.get_text() for t in masked.get_xticklabels()] == ["ユニグラムの当て方", "tiny", "短いブロックから"]
    assert [p.get_height() for p in fine.patches] == pytest.approx([0.80, 0.81, 0.75])
    assert fine.lines[-1].get_ydata()[0] == pytest.approx(0.885), "the TF-IDF line"
    assert fine.get_ylim()[0] == pytest.approx(0.64)


def test_longer_fine_tuning_is_drawn_epoch_by_epoch():
    longer = {"epochs": 3,
              "random": {"train_accuracy": [0.2, 0.7, 0.9], "val_accuracy": [0.57, 0.77, 0.83], "val_loss": [1.2, 0.7, 0.69]},
              "pretrained": {"train_accuracy": [0.3, 0.8, 1.0], "val_accuracy": [0.6, 0.7, 0.74], "val_loss": [1.1, 1.0, 1.2]}}
    fig = pretrain.plot_longer_finetuning(longer)
    accuracy, loss = fig.axes
    drawn = {line.get_label(): list(line.get_ydata()) for line in accuracy.lines}
    assert drawn == {"ランダムな重みから: 検証データ": [0.57, 0.77, 0.83], "ランダムな重みから: 学習データ": [0.2, 0.7, 0.9],
                     "tiny から: 検証データ": [0.6, 0.7, 0.74], "tiny から: 学習データ": [0.3, 0.8, 1.0]}
    assert list(accuracy.lines[0].get_xdata()) == [1, 2, 3] and accuracy.get_xlabel() == "エポック"
    assert [list(line.get_ydata()) for line in loss.lines] == [[1.2, 0.7, 0.69], [1.1, 1.0, 1.2]]
    assert loss.get_ylabel() == "検証損失"


def test_the_best_length_within_the_budget_leaves_out_the_random_start_and_slow_lengths():
    curve = [{"steps": 0, "accuracies": [0.9, 0.9, 0.9], "median": 0.9},           # no notebook 04 run
             {"steps": 100, "accuracies": [0.80], "median": 0.80, "notebook04_s": [200]},
             {"steps": 300, "accuracies": [0.79, 0.81, 0.82], "median": 0.81, "notebook04_s": [310, 330, 700]},
             {"steps": 2000, "accuracies": [0.95], "median": 0.95, "notebook04_s": [900]}]
    assert pretrain.best_within(curve, seconds=600)["steps"] == 300   # its median time 330 s is within
    assert pretrain.best_within(curve, seconds=1000)["steps"] == 2000
    assert pretrain.best_within(curve, seconds=250)["steps"] == 100
    assert pretrain.best_within(curve, seconds=100) is None


def test_the_transfer_results_are_found_and_drawn_beside_the_random_start(tmp_path):
    import json

    kit = tmp_path / "kit"
    (kit / "benchmarks" / "results").mkdir(parents=True)
    accuracy = {key: {"values": [0.7 + i / 100], "median": 0.7 + i / 100, "min": 0.69 + i / 100, "max": 0.72 + i / 100}
                for i, key in enumerate(pretrain.TRANSFER_STARTS)}
    (kit / pretrain.TRANSFER_RESULTS).write_text(json.dumps({"figures": {"accuracy": accuracy}}))
    assert pretrain.find_lift_results(kit, pretrain.TRANSFER_RESULTS) == kit / pretrain.TRANSFER_RESULTS
    lift = {"three": {"random": {"median": 0.8, "min": 0.79, "max": 0.81},
                      "tfidf_same_text": {"median": 0.88, "min": 0.87, "max": 0.9}}}
    ax = pretrain.plot_transfer({"accuracy": accuracy}, lift).axes[0]
    bars = [p.get_width() for p in ax.patches]
    top_down = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: -p[0])]
    assert bars == [0.8, 0.7, 0.71, 0.72, 0.73]            # 02 as it is first, then the four starts in order
    assert top_down[0].startswith("02 の語彙") and top_down[1:] == list(pretrain.TRANSFER_STARTS.values())
    assert ax.get_lines()[-1].get_xdata()[0] == 0.88       # the TF-IDF line
    assert len(pretrain.plot_transfer({"accuracy": accuracy}).axes[0].patches) == 4
    # the learning-rate rows: the four starts are labelled with the rate they were measured at, then each
    # other rate's pre-trained and random start follow
    rates = {"command_learning_rate": 0.001, "rates": [{"learning_rate": 0.002,
             "pretrained": {"median": 0.81, "min": 0.79, "max": 0.82},
             "random": {"median": 0.82, "min": 0.78, "max": 0.83}}]}
    ax = pretrain.plot_transfer({"accuracy": accuracy, "learning_rates": rates}, lift).axes[0]
    top_down = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: -p[0])]
    assert [p.get_width() for p in ax.patches] == [0.8, 0.7, 0.71, 0.72, 0.73, 0.81, 0.82]
    assert all(label.endswith("学習率 0.001") for label in top_down[1:5])
    assert top_down[5:] == ["04 の語彙と重み、学習率 0.002", "02 の語彙、ランダムな重み、学習率 0.002"]


def test_neighbour_guesser_answers_what_stood_between_the_two_neighbours(sample_tokenizer):
    from collections import Counter

    docs = [corpora.split_sentences(d) for d in sample_documents(30, seed=8)]
    blocks = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    train, valid = blocks[:-20], pretrain.fixed_masks(blocks[-20:], sample_tokenizer, 0.15, seed=0)
    mask, vocab = sample_tokenizer.mask_token_id, len(sample_tokenizer)
    guesser = pretrain.NeighbourGuesser(train, vocab)
    # by hand: what stood between each pair of tokens in the training blocks
    between: dict[tuple[int, int], Counter] = {}
    for ex in train:
        ids = ex["input_ids"]
        for i in range(1, len(ids) - 1):
            between.setdefault((ids[i - 1], ids[i + 1]), Counter())[ids[i]] += 1
    unigram = pretrain.unigram_accuracy(pretrain.token_counts(train, vocab), valid, mask)["guesses"]
    hit1 = hit5 = seen = n = 0
    for ex in valid:
        ids = ex["input_ids"]
        for pos, (t, y) in enumerate(zip(ids, ex["labels"])):
            if y == -100 or t != mask:
                continue
            counts = between.get((ids[pos - 1], ids[pos + 1]), Counter())
            top = [tok for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:5]
            top += [tok for tok in unigram + list(range(vocab)) if tok not in top][:5 - len(top)]
            assert guesser.guesses(ids[pos - 1], ids[pos + 1]) == top
            hit1, hit5, seen, n = hit1 + (top[0] == y), hit5 + (y in top), seen + bool(counts), n + 1
    acc = guesser.accuracy(valid, mask)
    assert acc["positions"] == n > 0 and acc["k"] == 5
    assert (acc["top1"], acc["topk"], acc["seen"]) == pytest.approx((hit1 / n, hit5 / n, seen / n))
    assert 0 < acc["seen"] < 1, "some pairs were never seen (a neighbour that is itself [MASK])"
    # a pair never seen: the unigram guesser's answers
    assert guesser.guesses(mask, mask) == unigram and not guesser.seen(mask, mask)
    # a word its neighbours always surround is found every time
    a, b, c = 10, 11, 12
    fixed = pretrain.NeighbourGuesser([{"input_ids": [1, a, b, c, 2]}] * 3 + [{"input_ids": [1, a, 13, 14, 2]}], 20)
    assert fixed.guesses(a, c, k=2) == [b, a] and fixed.seen(a, c)
    with pytest.raises(ValueError, match="no \\[MASK\\] position"):
        guesser.accuracy([{"input_ids": [4, 9, 5], "labels": [-100, -100, -100]}], mask)
    with pytest.raises(ValueError, match="no training blocks"):
        pretrain.NeighbourGuesser([], vocab)


def test_fill_mask_hits_count_the_held_out_sentences_both_ways(sample_tokenizer):
    tok = sample_tokenizer
    docs = [corpora.split_sentences(d) for d in sample_documents(60, seed=9)]
    blocks = pretrain.encode_documents(tok, docs[:50], seq_len=64)
    counts = pretrain.token_counts(blocks, len(tok))
    examples = pretrain.fill_mask_examples(tok, docs[50:], counts, n=10, min_count=30, sentence_chars=(5, 60), seed=0)
    guesser = pretrain.NeighbourGuesser(blocks, len(tok))
    # a model that always ranks the first two examples' answers on top finds exactly the examples with those answers
    favourites = list(dict.fromkeys(ex["answer_id"] for ex in examples))[:2]
    model = _rigged(tok, favourites)
    hits = pretrain.fill_mask_hits(model, tok, examples, guesser, k=2)
    assert hits["sentences"] == len(examples) >= 5 and hits["k"] == 2
    assert hits["model"] == sum(ex["answer_id"] in favourites for ex in examples) >= 2
    by_hand = sum(ex["answer_id"] in guesser.guesses(ex["ids"][ex["position"] - 1], ex["ids"][ex["position"] + 1], k=2)
                  for ex in examples)
    assert hits["neighbour"] == by_hand
    assert pretrain.fill_mask_hits(model, tok, examples)["neighbour"] is None
    assert pretrain.fill_mask_hits(_rigged(tok, [tok.pad_token_id]), tok, examples, k=1)["model"] == 0
    with pytest.raises(ValueError, match="no held-out sentences"):
        pretrain.fill_mask_hits(model, tok, [])
