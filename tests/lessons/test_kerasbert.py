"""kerasbert: the Google-format checkpoint writer, the files of a run, the length check, SentencePiece ids."""
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


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    texts = [f"スマートフォンの新機種{i}が発売された。映画の公開日{i}も決まった。" for i in range(60)]
    model = spm.train_sentencepiece(texts, tmp_path_factory.mktemp("spm") / "sp", vocab_size=120)
    return kerasbert.SentencePieceEncoder(model, seq_len=12)


def read_checkpoint(prefix) -> dict[str, np.ndarray]:
    """Every variable of a TF checkpoint as numpy arrays (TensorFlow's own reader)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tiny_ckpt):
    prefix, weights = tiny_ckpt
    assert prefix.name == "bert_model.ckpt" and (prefix.parent / "bert_config.json").is_file()
    assert kerasbert.read_config(prefix.parent / "bert_config.json") == SMALL
    stored = read_checkpoint(prefix)
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
    with pytest.raises(ValueError, match="divisible"):
        kerasbert.tiny_config(vocab_size=40, hidden_size=10, num_heads=4)


def test_keras_bert_loader_reads_the_written_weights(tiny_ckpt):
    """What notebook 02 calls: keras-bert's own loader on the checkpoint the kit wrote."""
    from keras_bert import load_trained_model_from_checkpoint

    prefix, weights = tiny_ckpt
    bert = load_trained_model_from_checkpoint(str(prefix.parent / "bert_config.json"), str(prefix),
                                              training=False, trainable=True, seq_len=8)
    np.testing.assert_allclose(bert.get_layer("Embedding-Token").get_weights()[0],
                               weights["bert/embeddings/word_embeddings"])
    query_kernel = bert.get_layer("Encoder-2-MultiHeadSelfAttention").get_weights()[0]
    np.testing.assert_allclose(query_kernel, np.eye(16))
    assert bert.output_shape == (None, 8, 16)


def test_build_classifier_for_notebook_04_fine_tunes(tiny_ckpt):
    import tensorflow as tf

    prefix, _ = tiny_ckpt
    model = kerasbert.build_classifier(prefix.parent / "bert_config.json", prefix, num_labels=3)
    assert model.output_shape == (None, 3)
    x = [np.array([[4, 9, 11, 5, 0, 0], [4, 7, 5, 0, 0, 0]], np.int32), np.zeros((2, 6), np.int32)]
    p = model.predict_on_batch(x)
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = model.get_layer("Classifier").get_weights()[0].copy()
    history = model.fit(x, np.array([0, 2]), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(before, model.get_layer("Classifier").get_weights()[0])
    with pytest.raises(ValueError, match="seq_len=40.*max_position_embeddings=32"):
        kerasbert.build_classifier(prefix.parent / "bert_config.json", prefix, num_labels=3, seq_len=40)


@pytest.mark.skipif(not (KB_TEST_CKPT / "bert_model.ckpt.index").is_file(),
                    reason=f"keras-bert test checkpoint not found at {KB_TEST_CKPT}")
def test_keras_bert_authors_checkpoint_loads_through_the_same_path():
    model = kerasbert.build_classifier(KB_TEST_CKPT / "bert_config.json",
                                       KB_TEST_CKPT / "bert_model.ckpt", num_labels=2)
    stored = read_checkpoint(KB_TEST_CKPT / "bert_model.ckpt")
    np.testing.assert_allclose(model.get_layer("Embedding-Token").get_weights()[0],
                               stored["bert/embeddings/word_embeddings"])
    p = model.predict_on_batch([np.array([[2, 5, 6, 3]]), np.zeros((1, 4), np.int32)])
    assert p.shape == (1, 2)


# ----------------------------------------------------------------------------- the files of a run
def test_missing_pretrained_files_say_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)bert_config.*yoheikikuta/bert-japanese"):
        kerasbert.prepare_model(tmp_path, ["x"], bert_config=str(tmp_path / "bert_config.json"),
                                bert_checkpoint=str(tmp_path / "model.ckpt-1400000"),
                                spm_model=str(tmp_path / "wiki-ja.model"))
    assert kerasbert.BERT_JAPANESE_CONFIG["vocab_size"] == 32000  # the full profile's model
    with pytest.raises(ValueError, match="all three"):
        kerasbert.prepare_model(tmp_path, ["x"], bert_config="a.json")
    assert "from coursekit.lessons import kerasbert" in kerasbert.PRETRAINED_HINT


def test_prepare_model_accepts_given_files(tiny_ckpt, encoder):
    prefix, _ = tiny_ckpt
    files = kerasbert.prepare_model("unused", [], bert_config=str(prefix.parent / "bert_config.json"),
                                    bert_checkpoint=str(prefix), spm_model=str(encoder.sp_path))
    assert files["pretrained"] is True and files["checkpoint"] == prefix


def test_prepare_model_writes_a_tiny_bert_with_pad_at_id_0(tmp_path):
    texts = [f"映画の公開日{i}が決まった。新しい端末{i}が発売された。" for i in range(40)]
    files = kerasbert.prepare_model(tmp_path, texts, vocab_size=100, seq_len=24)
    assert files["pretrained"] is False and (tmp_path / "bert_config.json").is_file()
    assert files["spm_model"].is_file() and (tmp_path / "bert_model.ckpt.index").is_file()
    sp = spm.load(files["spm_model"])
    assert sp.id_to_piece(0) == "<pad>"  # keras-bert masks id 0: it is padding, never a real piece
    config = kerasbert.read_config(files["config"])
    assert config["vocab_size"] == sp.get_piece_size() and config["max_position_embeddings"] == 24
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 128


# ----------------------------------------------------------------------------- the length check
def test_seq_len_longer_than_the_position_embeddings_is_refused(tiny_ckpt):
    prefix, _ = tiny_ckpt
    config_path = prefix.parent / "bert_config.json"
    assert kerasbert.check_seq_len(32, config_path) == SMALL
    assert kerasbert.check_seq_len(8, SMALL) == SMALL
    with pytest.raises(ValueError, match=r"seq_len=33 is longer than max_position_embeddings=32") as err:
        kerasbert.check_seq_len(33, config_path)
    assert str(config_path) in str(err.value)
    assert "seq_len を 32 以下にしてください" in str(err.value)
    with pytest.raises(ValueError, match="seq_len=512 is longer than max_position_embeddings=32"):
        kerasbert.check_seq_len(512, SMALL)
    with pytest.raises(ValueError, match="too short"):
        kerasbert.check_seq_len(2, SMALL)


# ----------------------------------------------------------------------------- SentencePiece ids
def test_ids_are_cls_pieces_sep_cut_to_seq_len(encoder):
    assert encoder.cls_id == encoder.sp.piece_to_id("[CLS]") and encoder.sep_id == encoder.sp.piece_to_id("[SEP]")
    assert 0 not in (encoder.cls_id, encoder.sep_id)
    short, long = encoder.ids(["映画", "映画の公開日が決まった。" * 10])
    assert short[0] == encoder.cls_id and short[-1] == encoder.sep_id and len(short) < 12
    assert short[1:-1] == encoder.sp.encode("映画")
    assert len(long) == 12 and long[-1] == encoder.sep_id  # cut to seq_len, [SEP] kept
    assert 0 not in short + long  # id 0 is left for padding


def test_lowercase_for_the_wiki_ja_model(encoder):
    lower = kerasbert.SentencePieceEncoder(encoder.sp_path, seq_len=12, lowercase=True)
    assert lower.ids(["ABC映画"]) == encoder.ids(["abc映画"])
