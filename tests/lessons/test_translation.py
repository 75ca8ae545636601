"""coursekit.lessons.translation: the tiny tokenizer, tokens per character, batched translation and
the BLEU tokenizer check. (Training is the notebook's own transformers code: tests/notebooks.)"""
from __future__ import annotations

import pytest

from coursekit.lessons import alt, translation
from .test_alt import write_parallel


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = write_parallel(tmp_path_factory.mktemp("toy"), sizes=(320, 32, 16))
    corpus, _ = alt.load_parallel(folder)
    tok = translation.build_tiny_tokenizer(corpus["train"], tmp_path_factory.mktemp("tok"), vocab_size=120)
    return corpus, tok


def random_bart(tok, seed: int = 0):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_position_embeddings=40, pad_token_id=tok.pad_token_id,
                        bos_token_id=2, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
                        forced_eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    return BartForConditionalGeneration(config)


# ---------------------------------------------------------------------------------- tokenizer
def test_tiny_tokenizer_encodes_both_languages_and_round_trips(toy, tmp_path):
    from transformers import AutoTokenizer

    corpus, tok = toy
    assert tok.pad_token_id == 0 and tok.eos_token_id == 3 and 50 < len(tok) <= 120
    en, ja = corpus["test"][0]["en"], corpus["test"][0]["ja"]
    enc = tok(en, text_target=ja, max_length=24, truncation=True)  # what the notebook's Dataset.map does
    for ids in (enc["input_ids"], enc["labels"]):
        assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert tok.decode(enc["labels"], skip_special_tokens=True) == ja
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == en
    assert len(tok(en, max_length=3, truncation=True)["input_ids"]) == 3
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(ja)["input_ids"] == tok(ja)["input_ids"]


def test_a_resumed_job_reuses_the_saved_tokenizer(toy, tmp_path, capsys):
    corpus, _ = toy
    first = translation.build_tiny_tokenizer(corpus["train"], tmp_path, vocab_size=120)
    assert (tmp_path / "spiece.model").is_file() and (tmp_path / "tokenizer_config.json").is_file()
    # whatever the data now, the vocabulary the checkpoints were trained with is kept
    other = alt.load_parallel(write_parallel(tmp_path / "other", sizes=(5, 1, 1)))[0]["train"]
    capsys.readouterr()
    again = translation.build_tiny_tokenizer(other, tmp_path, vocab_size=40)
    assert again.get_vocab() == first.get_vocab()
    assert capsys.readouterr().out == (f"reusing the tokenizer saved in {tmp_path} / "
                                       "前回保存したトークナイザを使います\n")
    fresh = translation.build_tiny_tokenizer(other, tmp_path / "fresh", vocab_size=60, reuse=False)
    assert fresh.get_vocab() != first.get_vocab()


def test_tokens_per_char(toy):
    corpus, tok = toy
    ja = list(corpus["train"]["ja"][:50])
    ratio = translation.tokens_per_char(tok, ja)
    chars = sum(len(t) for t in ja)
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in ja)
    assert ratio == pytest.approx(tokens / chars) and 0.1 < ratio < 1.5
    assert translation.tokens_per_char(tok, []) == 0.0


# -------------------------------------------------------------------------------- translation
def test_translate_batches_by_length_and_keeps_the_input_order(toy):
    import torch

    corpus, tok = toy
    model = random_bart(tok)
    texts = ["i see the dog .", "they want the small red car .", "we buy the new book .", "he likes the cat ."]
    outputs = translation.translate(model, tok, texts, batch_size=3, max_length=12, num_beams=1)
    assert len(outputs) == len(texts) and all(isinstance(o, str) for o in outputs)
    for text, out in zip(texts, outputs):  # the same as generating each sentence alone
        with torch.no_grad():
            ids = model.generate(**tok([text], return_tensors="pt"), num_beams=1, max_new_tokens=12)
        assert out == tok.decode(ids[0], skip_special_tokens=True).strip()
    assert translation.translate(model, tok, [], num_beams=1) == []


# --------------------------------------------------------------------------------------- BLEU
def test_bleu_tokenizer_check_names_the_fix(monkeypatch):
    import sacrebleu

    assert translation.require_bleu_tokenizer("char") == "char"
    with pytest.raises(ValueError, match="13a"):
        translation.require_bleu_tokenizer("13a")

    class NoMecab:
        def __init__(self, tokenize=None, **kwargs):
            if tokenize == "ja-mecab":
                raise ImportError("No module named 'MeCab'")

    monkeypatch.setattr(sacrebleu, "BLEU", NoMecab)
    assert "MeCab" in translation.ja_mecab_problem()
    with pytest.raises(RuntimeError) as err:
        translation.require_bleu_tokenizer("ja-mecab")
    message = str(err.value)
    assert "mecab-python3" in message and "ipadic" in message and "-p bleu_tokenize char" in message
    assert "使えません" in message, "the message is in Japanese and English"
    assert translation.require_bleu_tokenizer("char") == "char", "char needs nothing"


def test_ja_mecab_splits_words_where_installed():
    import sacrebleu

    if translation.ja_mecab_problem():
        pytest.skip(f"ja-mecab unavailable here: {translation.ja_mecab_problem()}")
    assert translation.require_bleu_tokenizer("ja-mecab") == "ja-mecab"
    refs = ["私は赤い車を買った。", "彼は古い本が好きだ。"]
    perfect = sacrebleu.corpus_bleu(refs, [refs], tokenize="ja-mecab")
    assert perfect.score == pytest.approx(100.0)
    # without a Japanese tokenizer each sentence is one "word": a one-character change scores 0
    hyp = ["私は赤い車を買った!", "彼は古い本が好きだ!"]
    assert sacrebleu.corpus_bleu(hyp, [refs], tokenize="13a").score < 1
    assert sacrebleu.corpus_bleu(hyp, [refs], tokenize="ja-mecab").score > 50
