"""kerasbert: the Google-format checkpoint writer, keras-bert's loader, encoding, warm-up Adam, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from coursekit.lessons import kerasbert, spm
from ..conftest import SHARED_DATA

KB_TEST_CKPT = SHARED_DATA / "keras-bert-test-checkpoint"
SMALL = kerasbert.tiny_config(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2,
                              intermediate_size=32, max_position_embeddings=32)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    weights = {
        "bert/embeddings/word_embeddings": np.arange(40 * 16, dtype=np.float32).reshape(40, 16) / 1000,
        "bert/encoder/layer_1/attention/self/query/kernel": np.eye(16, dtype=np.float32),
    }
    prefix = kerasbert.write_checkpoint(tmp_path_factory.mktemp("ckpt"), SMALL, weights, seed=3)
    return prefix, weights


def test_checkpoint_round_trip(tiny_ckpt):
    prefix, weights = tiny_ckpt
    assert prefix.name == "bert_model.ckpt" and (prefix.parent / "bert_config.json").is_file()
    assert kerasbert.read_config(prefix.parent / "bert_config.json") == SMALL
    stored = kerasbert.read_checkpoint(prefix)
    assert {k: v.shape for k, v in stored.items()} == kerasbert.checkpoint_shapes(SMALL)
    for name, value in weights.items():
        np.testing.assert_array_equal(stored[name], value)
    np.testing.assert_array_equal(stored["bert/encoder/layer_0/output/LayerNorm/gamma"], np.ones(16))
    random_part = stored["bert/encoder/layer_0/attention/self/key/kernel"]
    assert 0.005 < random_part.std() < 0.03 and np.abs(random_part).max() <= 0.04  # truncated normal


def test_checkpoint_rejects_bad_weights(tmp_path):
    with pytest.raises(ValueError, match="unknown BERT checkpoint variable.*bert/nope"):
        kerasbert.write_checkpoint(tmp_path, SMALL, {"bert/nope": np.zeros(3)})
    with pytest.raises(ValueError, match=r"pooler/dense/bias: shape \(3,\).*expected \(16,\)"):
        kerasbert.write_checkpoint(tmp_path, SMALL, {"bert/pooler/dense/bias": np.zeros(3)})


def test_classifier_loads_the_written_weights(tiny_ckpt):
    prefix, weights = tiny_ckpt
    model = kerasbert.build_classifier(prefix.parent / "bert_config.json", prefix, num_labels=3)
    np.testing.assert_allclose(model.get_layer("Embedding-Token").get_weights()[0],
                               weights["bert/embeddings/word_embeddings"])
    query_kernel = model.get_layer("Encoder-2-MultiHeadSelfAttention").get_weights()[0]
    np.testing.assert_allclose(query_kernel, np.eye(16))
    assert model.output_shape == (None, 3)
    x = [np.array([[4, 9, 11, 5, 0, 0]], np.int32), np.zeros((1, 6), np.int32)]
    p = model.predict_on_batch(x)
    assert p.shape == (1, 3) and abs(float(p.sum()) - 1) < 1e-5


@pytest.mark.skipif(not (KB_TEST_CKPT / "bert_model.ckpt.index").is_file(),
                    reason=f"keras-bert test checkpoint not found at {KB_TEST_CKPT}")
def test_keras_bert_authors_checkpoint_loads_through_the_same_path():
    model = kerasbert.build_classifier(KB_TEST_CKPT / "bert_config.json",
                                       KB_TEST_CKPT / "bert_model.ckpt", num_labels=2)
    stored = kerasbert.read_checkpoint(KB_TEST_CKPT / "bert_model.ckpt")
    np.testing.assert_allclose(model.get_layer("Embedding-Token").get_weights()[0],
                               stored["bert/embeddings/word_embeddings"])
    p = model.predict_on_batch([np.array([[2, 5, 6, 3]]), np.zeros((1, 4), np.int32)])
    assert p.shape == (1, 2)


def test_missing_pretrained_files_say_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)bert_config.*yoheikikuta/bert-japanese"):
        kerasbert.prepare_model(tmp_path, ["x"], bert_config=str(tmp_path / "bert_config.json"),
                                bert_checkpoint=str(tmp_path / "model.ckpt-1400000"),
                                spm_model=str(tmp_path / "wiki-ja.model"))
    assert kerasbert.BERT_JAPANESE_CONFIG["vocab_size"] == 32000  # the full profile's model
    with pytest.raises(ValueError, match="all three"):
        kerasbert.prepare_model(tmp_path, ["x"], bert_config="a.json")
    with pytest.raises(FileNotFoundError, match="saved model not found"):
        kerasbert.load(tmp_path / "none.h5")


def test_prepare_model_accepts_given_files(tiny_ckpt, encoder):
    prefix, _ = tiny_ckpt
    files = kerasbert.prepare_model("unused", [], bert_config=str(prefix.parent / "bert_config.json"),
                                    bert_checkpoint=str(prefix), spm_model=str(encoder.sp_path))
    assert files["pretrained"] is True and files["checkpoint"] == prefix


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    texts = [f"スマートフォンの新機種{i}が発売された。映画の公開日{i}も決まった。" for i in range(60)]
    model = spm.train_sentencepiece(texts, tmp_path_factory.mktemp("spm") / "sp", vocab_size=120)
    return kerasbert.SentencePieceEncoder(model, seq_len=48, multiple=8)


def test_encoder_pads_each_batch_to_its_longest(encoder):
    short = encoder.encode(["映画", "スマートフォン"])
    tokens, segments = short
    longest = max(len(r) for r in encoder.ids(["映画", "スマートフォン"]))
    assert tokens.shape[1] == -(-longest // 8) * 8 < encoder.seq_len  # not padded to seq_len
    assert (tokens[:, 0] == encoder.cls_id).all() and (segments == 0).all()
    assert encoder.cls_id == encoder.sp.piece_to_id("[CLS]") and encoder.sep_id == encoder.sp.piece_to_id("[SEP]")
    row = encoder.ids(["映画"])[0]
    assert row[-1] == encoder.sep_id and tokens[0, len(row):].sum() == 0  # padding is id 0
    long = encoder.encode(["映画の公開日が決まった。" * 30])[0]
    assert long.shape[1] == 48 and long[0, -1] == encoder.sep_id  # truncated to seq_len, [SEP] kept


def test_warmup_schedule_shape():
    sched = kerasbert.warmup_schedule(1e-3, total_steps=100, warmup_steps=10)
    lr = [float(sched(s)) for s in (0, 4, 9, 50, 99, 150)]
    assert lr[0] < lr[1] < lr[2] == pytest.approx(1e-3)
    assert lr[2] > lr[3] > lr[4] >= 0 and lr[5] == 0


def test_fit_one_step_save_and_reload_with_optimizer_state(tiny_ckpt, encoder, tmp_path):
    prefix, _ = tiny_ckpt
    model = kerasbert.build_classifier(prefix.parent / "bert_config.json", prefix, num_labels=2)
    texts = ["スマートフォンの新機種", "映画の公開日", "スマートフォンが発売", "映画が公開"]
    labels = [0, 1, 0, 1]
    rows = [[min(t, 39) for t in r] for r in encoder.ids(texts)]  # ids within this tiny vocabulary
    before = model.get_layer("Classifier").get_weights()[0].copy()
    history = kerasbert.fit(model, encoder, rows, labels, rows, labels, epochs=1, batch_size=4,
                            learning_rate=1e-2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
    assert not np.allclose(before, model.get_layer("Classifier").get_weights()[0])
    assert int(model.optimizer.iterations.numpy()) == 1
    path = kerasbert.save(model, tmp_path / "clf.h5")
    again = kerasbert.load(path)
    x = encoder.pad(rows)
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    assert int(again.optimizer.iterations.numpy()) == 1  # optimizer state came back
    again.fit(x, np.array(labels), epochs=1, verbose=0)   # and training resumes
    assert int(again.optimizer.iterations.numpy()) == 2
