import pytest

from coursekit.lessons import spm
TEXTS = ["今日は良い天気です。", "明日は雨が降るでしょう。", "機械学習で文章を分類します。",
         "東京の天気は晴れ。", "大阪は雨でした。"] * 20


def test_trains_a_small_vocabulary_with_fixed_special_ids(tmp_path):
    path = spm.train_sentencepiece(TEXTS, tmp_path / "sp" / "spiece", vocab_size=300)
    sp = spm.load(path)
    assert path.name == "spiece.model" and (tmp_path / "sp" / "spiece.vocab").is_file()
    assert 9 < sp.get_piece_size() <= 300  # shrunk to what the corpus supports, no error
    assert [sp.id_to_piece(i) for i in range(7)] == ["<pad>", "<unk>", "<s>", "</s>", "[CLS]", "[SEP]", "[MASK]"]
    ids = sp.encode("今日は雨です。")
    assert ids and sp.decode(ids) == "今日は雨です。"


def test_empty_corpus_and_tiny_vocab_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        spm.train_sentencepiece(["", "  ", "\n"], tmp_path / "x", vocab_size=100)
    with pytest.raises(ValueError, match="vocab_size=5 is too small"):
        spm.train_sentencepiece(TEXTS, tmp_path / "x", vocab_size=5)
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        spm.load(tmp_path / "missing.model")


def test_a_vocabulary_smaller_than_the_corpus_s_characters_is_refused_before_training(tmp_path):
    """SentencePiece itself would fail deep inside its trainer ("Vocabulary size is smaller than
    required_chars"); the check names vocab_size and the number needed, and nothing is written."""
    chars = [chr(0x4E00 + i) for i in range(300)]
    texts = ["".join(chars[(7 * k + j) % 300] for j in range(30)) for k in range(500)]
    with pytest.raises(ValueError, match=r"vocab_size=100 is smaller than the 301 distinct characters .* "
                                         r"\+ 7 special pieces this corpus needs: use vocab_size 308 or more"):
        spm.train_sentencepiece(texts, tmp_path / "sp" / "spiece", vocab_size=100)
    assert not list(tmp_path.rglob("*.model"))
    assert spm.train_sentencepiece(texts, tmp_path / "sp" / "spiece", vocab_size=308).is_file()
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == ["spiece.model", "spiece.vocab"], \
        "written under a temporary name, then renamed: nothing partial left"


def test_a_cut_off_model_file_is_named(tmp_path):
    path = spm.train_sentencepiece(TEXTS, tmp_path / "spiece", vocab_size=60)
    cut = tmp_path / "cut.model"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut.model is not a readable SentencePiece model.*interrupted"):
        spm.load(cut)
