"""Sources for `python -m coursekit prepare` without the internet: one folder holding every file the
notebooks' profiles name, in their real formats (served over loopback by tests/fileserver.py as the
COURSEKIT_MIRROR), and a tiny BART repo `facebook/bart-base` served by tests/hubserver.py (HF_ENDPOINT).
Used by tests/test_prepare.py and tests/harness/test_doctor.py."""
from __future__ import annotations

import tarfile
from pathlib import Path

from coursekit.lessons import corpora, livedoor

from .conftest import coursekit_cli
from .corpora import write_sample_corpus
from .lessons.test_alt import write_alt, write_parallel
from .lessons.test_corpora import _write_dump

HUB_REPO = "facebook/bart-base"   # notebook 03's full model_name
BERT_FILES = ("model.ckpt-1400000.index", "model.ckpt-1400000.meta", "model.ckpt-1400000.data-00000-of-00001",
              "wiki-ja.model", "wiki-ja.vocab")
PARALLEL_SIZES = (320, 32, 24)


def write_sources(root: Path) -> tuple[Path, Path]:
    """(mirror folder, hub folder): every file prepare fetches, generated in its release's format."""
    mirror = root / "mirror"
    mirror.mkdir(parents=True)
    sample = write_sample_corpus(root / "ldcc", per_category=6, seed=2)
    with tarfile.open(mirror / livedoor.ARCHIVE, "w:gz") as tar:
        tar.add(sample, arcname="text")
    write_parallel(mirror, sizes=PARALLEL_SIZES)
    write_alt(mirror, as_zip=True)
    _write_dump(mirror / Path(corpora.WIKI_DUMP_URL).name)
    for i, name in enumerate(BERT_FILES):  # stand-ins: prepare checks sizes and checksums, not TensorFlow
        (mirror / name).write_bytes(bytes(range(256)) * (4 + i))
    hub = root / "hub"
    write_tiny_bart(hub / HUB_REPO, mirror)
    return mirror, hub


def write_tiny_bart(folder: Path, parallel: Path) -> Path:
    """A tiny BART and its SentencePiece tokenizer, saved as a hub repo is (config, safetensors, tokenizer)."""
    import datasets
    from transformers import BartConfig, BartForConditionalGeneration

    from coursekit.lessons import translation

    lines = {lang: (parallel / f"train.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("en", "ja")}
    tokenizer = translation.build_tiny_tokenizer(datasets.Dataset.from_dict(lines), folder, vocab_size=120,
                                                 reuse=False)
    config = BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_position_embeddings=40, pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id)
    BartForConditionalGeneration(config).save_pretrained(folder)
    for leftover in (folder / "sp").glob("*"):
        leftover.unlink()
    (folder / "sp").rmdir()
    (folder / "tf_model.h5").write_bytes(b"\0" * 3000)  # a file of the repo that prepare must not fetch
    return folder


def prepare(shared: Path, mirror_url: str, hub_endpoint: str, *args: str, env: dict | None = None):
    """`python -m coursekit prepare SHARED ARGS` with the loopback mirror and hub."""
    return coursekit_cli("prepare", str(shared), *args,
                         env={"COURSEKIT_MIRROR": mirror_url, "HF_ENDPOINT": hub_endpoint, "HF_HUB_OFFLINE": "",
                              "COURSEKIT_OFFLINE": "", "COURSEKIT_SHARED": "", **(env or {})})
