"""Notebook 04's library: corpus layout, tokenizer (slow == fast), bad inputs, masked-LM resume,
the export (fill-mask pipeline; keras-bert reads the same weights and fine-tunes a step)."""
import bz2

import numpy as np
import pytest

from coursekit.lessons import corpora
from coursekit.lessons import pretrain
from ..conftest import SHARED_DATA


# ----------------------------------------------------------------------------- corpus
def test_split_sentences_on_japanese_punctuation_and_newlines():
    text = "今日は晴れです。明日は雨！本当に？はい。\n「そうですか。」と彼は言った。\n\n見出し\n"
    assert corpora.split_sentences(text) == [
        "今日は晴れです。", "明日は雨！", "本当に？", "はい。", "「そうですか。」と彼は言った。", "見出し"]
    assert corpora.split_sentences("えっ！？ 本当。", min_chars=1) == ["えっ！？", "本当。"]
    assert corpora.split_sentences("歴史.\n江戸と呼ばれていた。", min_chars=5) == ["江戸と呼ばれていた。"]
    assert corpora.split_sentences("  \n\n ") == []


def test_layout_one_sentence_per_line_blank_line_between_documents_and_shards(tmp_path):
    docs = corpora.sample_documents(40, sentences=6, seed=1)
    layout = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0.1, test_fraction=0.1,
                                  shard_sentences=20, seed=0)
    assert layout.documents == {"train": 32, "valid": 4, "test": 4}
    assert layout.sentences["train"] == 32 * 7  # 6 sentences + the closing question
    assert len(layout.files["train"]) == 11 and all(p.name.startswith("train-") for p in layout.files["train"])
    first = layout.files["train"][0].read_text(encoding="utf-8")
    blocks = first.rstrip("\n").split("\n\n")
    assert len(blocks) == 3, "a shard ends after the document that reaches 20 sentences"
    assert all(len(b.split("\n")) == 7 for b in blocks)
    assert all(line.endswith(("。", "？")) for b in blocks for line in b.split("\n"))
    back = {split: corpora.read_layout(files) for split, files in layout.files.items()}
    assert [len(back[s]) for s in corpora.SPLITS] == [32, 4, 4]
    joined = {s: {"".join(d) for d in back[s]} for s in corpora.SPLITS}
    assert not (joined["train"] & joined["valid"]) and not (joined["train"] & joined["test"])
    assert joined["train"] | joined["valid"] | joined["test"] <= set(docs)
    again = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0.1, test_fraction=0.1,
                                 shard_sentences=1000, seed=0)
    assert len(again.files["train"]) == 1 and len(list((tmp_path / "c" / "train").iterdir())) == 1


def test_empty_or_too_small_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(corpora.CorpusError, match="empty corpus"):
        corpora.write_layout(["", "  \n", "短い。"], tmp_path / "c", min_chars=5)
    with pytest.raises(corpora.CorpusError, match="too few for a training"):
        corpora.write_layout(["これは一つの文書です。"], tmp_path / "c", valid_fraction=0.1, test_fraction=0.1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(corpora.CorpusError, match="empty corpus"):
        corpora.write_layout(corpora.read_source(str(tmp_path / "empty"), tmp_path), tmp_path / "c")


def test_read_source_text_folder_missing_path_and_wrong_file(tmp_path):
    folder = corpora.write_sample_folder(tmp_path / "txt", n_documents=5)
    (folder / "LICENSE.txt").write_text("not a document\n", encoding="utf-8")
    docs = corpora.read_source(str(folder), tmp_path)
    assert len(docs) == 5 and not any("not a document" in d for d in docs)
    with pytest.raises(corpora.CorpusError, match=r"(?s)corpus not found.*wget.*dumps\.wikimedia\.org"):
        corpora.read_source(str(tmp_path / "nope"), tmp_path)
    with pytest.raises(corpora.CorpusError, match="Wikipedia dump not found"):
        corpora.read_source(str(tmp_path / "jawiki-pages-articles.xml.bz2"), tmp_path)
    with pytest.raises(corpora.CorpusError, match="got the file"):
        corpora.read_source(str(folder / "doc-00000.txt"), tmp_path)


def _write_dump(path):
    pages = [("東京", "'''東京'''は日本の首都である。人口は多い。\n\n== 歴史 ==\n江戸と呼ばれていた。"
                      "[[徳川家康]]が幕府を開いた！"),
             ("富士山", "'''富士山'''は日本で一番高い山です。標高は3776メートル。本当に？はい。"),
             ("転送", "#REDIRECT [[東京]]")]
    lines = ['<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="ja">',
             "  <siteinfo>", "    <sitename>Wikipedia</sitename>", "    <dbname>jawiki</dbname>",
             "    <base>https://ja.wikipedia.org/wiki/</base>", "    <namespaces>",
             '      <namespace key="0" case="first-letter" />',
             '      <namespace key="10" case="first-letter">Template</namespace>',
             "    </namespaces>", "  </siteinfo>"]
    for i, (title, text) in enumerate(pages, 1):
        redirect = [f'    <redirect title="{title}" />'] if text.startswith("#REDIRECT") else []
        lines += ["  <page>", f"    <title>{title}</title>", "    <ns>0</ns>", f"    <id>{i}</id>", *redirect,
                  "    <revision>", f"      <id>{100 + i}</id>",
                  f'      <text bytes="{len(text)}" xml:space="preserve">{text}</text>', "    </revision>",
                  "  </page>"]
    lines.append("</mediawiki>")
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def test_wikipedia_dump_goes_through_wikiextractor(tmp_path):
    dump = _write_dump(tmp_path / "jawiki-test-pages-articles.xml.bz2")
    docs = corpora.read_source(str(dump), tmp_path / "work", processes=1)
    assert len(docs) == 2, "the redirect page is not an article"
    assert docs[0].startswith("東京\n東京は日本の首都である。")
    assert "[[" not in docs[0] and "'''" not in docs[0] and "徳川家康が幕府を開いた！" in docs[0]
    assert (tmp_path / "work" / "wikiextractor" / "AA" / "wiki_00").is_file()
    layout = corpora.write_layout(docs, tmp_path / "c", valid_fraction=0, test_fraction=0, min_chars=5)
    sentences = [s for d in corpora.read_layout(layout.files["train"]) for s in d]
    assert "江戸と呼ばれていた。" in sentences and "歴史." not in sentences


def test_livedoor_folder_gives_the_training_split_of_notebook_02(tmp_path):
    from coursekit import livedoor

    text_dir = livedoor.write_sample_corpus(tmp_path / "ld", per_category=10)
    docs = corpora.read_source(str(text_dir), tmp_path)
    full = livedoor.load_corpus(text_dir, max_chars=0)
    train, _, test = livedoor.split(full, 0.1, 0.1, seed=0)
    assert sorted(docs) == sorted(train.texts) and len(docs) == 72
    assert not set(docs) & set(test.texts)
    assert not any(d.startswith("http") for d in docs), "URL and date lines are dropped"


# ----------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def sample_tokenizer(tmp_path_factory):
    docs = corpora.sample_documents(120, seed=2)
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
    texts = [s for d in corpora.sample_documents(50, seed=3) for s in corpora.split_sentences(d)] + MIXED
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
    sentences = corpora.split_sentences("".join(corpora.sample_documents(20)))
    with pytest.raises(ValueError, match=r"vocab_size=5000 is larger than this corpus supports: "
                                         r"SentencePiece found only \d+ pieces"):
        pretrain.train_tokenizer(sentences, tmp_path / "tok", vocab_size=5000)
    with pytest.raises(ValueError, match="empty corpus"):
        pretrain.train_tokenizer([], tmp_path / "tok2", vocab_size=100)
    many_chars = ["".join(chr(0x4E00 + (7 * k + j) % 3000) for j in range(30)) + "。" for k in range(400)]
    with pytest.raises(ValueError, match=r"vocab_size=100 is smaller than the \d+ distinct characters"):
        pretrain.train_tokenizer(many_chars, tmp_path / "tok3", vocab_size=100, character_coverage=0.9995)


def test_sequence_length_above_positions_and_bad_sizes_are_errors(sample_tokenizer):
    pretrain.check_lengths([128, 512], 512)
    with pytest.raises(ValueError, match="sequence length 1024 is above the model's max_position_embeddings=512"):
        pretrain.check_lengths([128, 1024], 512)
    with pytest.raises(ValueError, match="divisible"):
        pretrain.new_model(sample_tokenizer, hidden_size=30, num_layers=1, num_heads=4, intermediate_size=64)
    with pytest.raises(ValueError, match="no training examples"):
        pretrain.train_mlm(None, sample_tokenizer, [], [{}], "/tmp/unused", max_steps=1, batch_size=1)


def test_examples_are_blocks_of_a_document_with_cls_and_sep(sample_tokenizer):
    docs = [corpora.split_sentences(d) for d in corpora.sample_documents(3, sentences=30, seed=4)]
    examples = pretrain.encode_documents(sample_tokenizer, docs, seq_len=32)
    assert len(examples) >= 6
    assert all(ex["input_ids"][0] == 4 and ex["input_ids"][-1] == 5 and len(ex["input_ids"]) <= 32
               for ex in examples)
    masked = pretrain.fixed_masks(examples, sample_tokenizer, 0.15, seed=0)
    assert masked == pretrain.fixed_masks(examples, sample_tokenizer, 0.15, seed=0), "same masks every time"
    labelled = sum(l != -100 for ex in masked for l in ex["labels"])
    tokens = sum(len(ex["input_ids"]) - 2 for ex in examples)
    assert 0.08 < labelled / tokens < 0.25


# ----------------------------------------------------------------------------- training
def _tiny_setup(tokenizer, n_docs=60):
    docs = [corpora.split_sentences(d) for d in corpora.sample_documents(n_docs, seed=5)]
    train = pretrain.encode_documents(tokenizer, docs[:-6], seq_len=32)
    valid = pretrain.fixed_masks(pretrain.encode_documents(tokenizer, docs[-6:], seq_len=32), tokenizer)
    return train, valid


def _tiny_model(tokenizer):
    return pretrain.new_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                              max_positions=64, seed=0)


def test_training_resumes_after_a_kill_and_after_a_slurm_warning(sample_tokenizer, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    from coursekit import jobs

    monkeypatch.setenv("COURSEKIT_RUN_DIR", str(tmp_path))  # where the runner writes the PREEMPT file

    class Killed(Exception):
        pass

    class At(TrainerCallback):
        def __init__(self, step, action):
            self.step, self.action, self.seen = step, action, []

        def on_step_end(self, args, state, control, **kwargs):
            self.seen.append(state.global_step)
            if state.global_step == self.step:
                self.action()

    def kill():
        raise Killed("job killed")

    train, valid = _tiny_setup(sample_tokenizer)
    out = tmp_path / "phase1"
    args = dict(max_steps=40, batch_size=8, learning_rate=2e-3, warmup_steps=4, eval_every=10, save_every=10)
    # 1. killed hard at step 15: the periodic checkpoint of step 10 is what is left
    with pytest.raises(Killed):
        pretrain.train_mlm(_tiny_model(sample_tokenizer), sample_tokenizer, train, valid, out,
                           callbacks=[At(15, kill)], **args)
    assert pretrain.last_checkpoint(out).endswith("checkpoint-10")
    # 2. resumed at step 11; Slurm's warning arrives during step 25: checkpoint at the next step
    #    end (26, not a multiple of save_every), stop for requeue
    warned = At(25, lambda: jobs.request_stop(tmp_path))
    with pytest.raises(jobs.Preempted, match="after step 26"):
        pretrain.train_mlm(_tiny_model(sample_tokenizer), sample_tokenizer, train, valid, out,
                           callbacks=[warned], **args)
    assert warned.seen[0] == 11, "resumed after the checkpoint, not from step 0"
    assert pretrain.last_checkpoint(out).endswith("checkpoint-26")
    # 3. the requeued job finishes from step 27
    jobs.clear_stop(tmp_path)
    steps = At(0, None)
    trainer = pretrain.train_mlm(_tiny_model(sample_tokenizer), sample_tokenizer, train, valid, out,
                                 callbacks=[steps], **args)
    assert steps.seen == list(range(27, 41)) and trainer.state.global_step == 40
    evals = [row["step"] for row in trainer.state.log_history if "eval_loss" in row]
    assert evals == [10, 20, 30, 40], "the log of the earlier jobs travels with the checkpoint"


@pytest.fixture(scope="module")
def exported(sample_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    train, valid = _tiny_setup(sample_tokenizer)
    model = _tiny_model(sample_tokenizer)
    before = pretrain.evaluate_loss(model, sample_tokenizer, valid)
    model, curve = pretrain.train_phase("phase1", model, sample_tokenizer, train, valid, out, max_steps=60,
                                        batch_size=8, learning_rate=3e-3, warmup_steps=5, eval_every=30,
                                        save_every=30)
    after = pretrain.evaluate_loss(model, sample_tokenizer, valid)
    return {"paths": pretrain.export(model, sample_tokenizer, out / "export"), "model": model,
            "before": before, "after": after, "curve": curve, "out": out, "tokenizer": sample_tokenizer}


def test_masked_lm_training_lowers_the_validation_loss(exported):
    assert exported["after"] < exported["before"] - 0.3
    evals = [p["eval_loss"] for p in exported["curve"] if "eval_loss" in p]
    # the Trainer averages per batch, evaluate_loss per masked token: close, not equal
    assert len(evals) == 2 and evals[-1] == pytest.approx(exported["after"], rel=0.05)
    # a finished phase is loaded, not trained again
    model, curve = pretrain.train_phase("phase1", None, exported["tokenizer"], [], [], exported["out"])
    assert curve == exported["curve"] and model.config.hidden_size == 32


def test_export_loads_in_the_fill_mask_pipeline(exported):
    hf = exported["paths"]["hf"]
    assert (hf / "spiece.model").is_file() and (hf / "config.json").is_file()
    result = pretrain.fill_mask(hf, ["太郎は東京で[MASK]を読みました。", "今日の天気は[MASK]です。"], top_k=5)
    assert [r["sentence"] for r in result] == ["太郎は東京で[MASK]を読みました。", "今日の天気は[MASK]です。"]
    for r in result:
        scores = [p["score"] for p in r["predictions"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
        assert all(p["token"] for p in r["predictions"])
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        pretrain.fill_mask(hf, ["マスクのない文。"])


def test_keras_bert_reads_the_same_weights_and_fine_tunes_a_step(exported):
    import torch

    from coursekit import kerasbert
    from keras_bert import load_trained_model_from_checkpoint

    paths = exported["paths"]
    assert (paths["spm_model"]).is_file()
    encoder = kerasbert.SentencePieceEncoder(paths["spm_model"], seq_len=64)
    texts = ["太郎は東京で本を読みました。", "今日の天気は雨です。明日も雨でしょうか？"]
    x = encoder.encode(texts)
    assert [list(r[r != 0]) for r in x[0]] == [exported["tokenizer"](t)["input_ids"] for t in texts]

    bert = load_trained_model_from_checkpoint(str(paths["tf_config"]), str(paths["tf_checkpoint"]),
                                              training=False, seq_len=None)
    keras_out = np.asarray(bert.predict_on_batch(x))
    model = exported["model"].eval()
    with torch.no_grad():
        ids = torch.tensor(x[0], dtype=torch.long)
        torch_out = model.bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state.numpy()
    real = x[0] != 0
    np.testing.assert_allclose(keras_out[real], torch_out[real], atol=1e-4)

    classifier = kerasbert.build_classifier(paths["tf_config"], paths["tf_checkpoint"], num_labels=2)
    kerasbert.compile_classifier(classifier, 1e-3, total_steps=1)
    before = [w.copy() for w in classifier.get_layer("Embedding-Token").get_weights()]
    history = classifier.fit(x, np.array([0, 1]), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = classifier.get_layer("Embedding-Token").get_weights()
    assert not np.allclose(before[0], after[0]), "the pre-trained embeddings were fine-tuned"


# ----------------------------------------------------------------------------- notebook 04
@pytest.mark.notebook
def test_notebook_04_runs_on_generated_text(runs_dir, tmp_path):
    import json

    from ..conftest import coursekit_cli

    folder = corpora.write_sample_folder(tmp_path / "text", n_documents=240)
    proc = coursekit_cli("run", "notebooks/04_bert_pretraining.ipynb", "--profile", "tiny", "--name", "t1",
                         "-p", "corpus", str(folder), "-p", "valid_fraction", "0.05", "-p", "test_fraction", "0.05",
                         "-p", "vocab_size", "150", "-p", "hidden_size", "64",
                         "-p", "intermediate_size", "128", "-p", "batch_size", "16", "-p", "steps", "80",
                         "-p", "learning_rate", "0.003", "-p", "warmup_steps", "8", "-p", "eval_every", "40",
                         "-p", "save_every", "40", "-p", "phase2_steps", "6", "-p", "phase2_seq_len", "128",
                         "-p", "fill_mask_sentences", "太郎は東京で本を[MASK]。|今日の天気は[MASK]です。")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = runs_dir / "04_bert_pretraining" / "t1"
    data = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    m = data["metrics"]
    assert data["status"] == "completed" and data["params"]["steps"] == 80
    assert m["corpus"]["train"]["documents"] == 216 and m["corpus"]["valid"]["documents"] == 12
    assert m["tokenizer_vocab"] == 150 and m["tokenizer_differences"] == 0
    assert m["valid_loss_before"] == pytest.approx(np.log(150), abs=0.5)
    assert m["valid_loss_after"] < m["valid_loss_before"] - 0.5, "pre-training lowers the validation loss"
    assert m["perplexity_after"] < m["perplexity_before"]
    assert "valid_loss_after_phase2" in m and np.isfinite(m["valid_loss_after_phase2"])
    assert [f["sentence"] for f in m["fill_mask"]] == ["太郎は東京で本を[MASK]。", "今日の天気は[MASK]です。"]
    assert all(len(f["predictions"]) == 5 for f in m["fill_mask"])
    assert m["keras_bert_parameters"] > 0
    evals = [p["eval_loss"] for p in data["curves"]["loss"] if "eval_loss" in p]
    assert len(evals) == 2 and evals[-1] < evals[0]
    assert {"corpus", "tokenizer", "encode", "pretrain-phase1", "pretrain-phase2", "export",
            "fill-mask"} <= set(data["phases"])
    assert (run / "loss.png").stat().st_size > 10_000
    for name in ("export/hf/config.json", "export/hf/spiece.model", "export/tf/bert_config.json",
                 "export/tf/bert_model.ckpt.index", "export/tf/spiece.model",
                 "work/corpus/train/train-00000.txt", "work/phase1/final/config.json"):
        assert (run / name).is_file(), name


@pytest.mark.notebook
def test_notebook_04_stops_before_training_when_the_sequence_exceeds_the_positions(runs_dir, tmp_path):
    import json

    from ..conftest import coursekit_cli

    folder = corpora.write_sample_folder(tmp_path / "text", n_documents=20)
    proc = coursekit_cli("run", "notebooks/04_bert_pretraining.ipynb", "--profile", "tiny", "--name", "bad",
                         "-p", "corpus", str(folder), "-p", "seq_len", "1024")
    assert proc.returncode == 1
    assert "sequence length 1024 is above the model's max_position_embeddings=512" in proc.stdout + proc.stderr
    data = json.loads((runs_dir / "04_bert_pretraining" / "bad" / "metrics.json").read_text(encoding="utf-8"))
    assert data["status"] == "failed" and data["phases"] == {}
