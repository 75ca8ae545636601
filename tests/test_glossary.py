"""One term per concept: what students read uses the words of handson/00_glossary.md's 「使う」 column, never those
of its 「使わない」 column.

Read: the notebooks (markdown, code: comments and printed text), their profile files and reference solutions,
the guides, the decks (speaker notes included: the instructor says them), the README (its Japanese quick
start) and the library (printed messages, errors, plot labels). An English word of the 「使わない」 column
(warm-up, accuracy, ...) is checked only in Japanese prose, outside code, commands and deck placeholders,
where an identifier such as `val_accuracy` is not prose.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "handson" / "00_glossary.md"
# Terms of the 「使わない」 column that no pattern can judge: they stay with the reader.
NOT_CHECKED = {
    "クラス": "also a Python class (notebook 02 writes one)",
    "引数": "also the arguments of a function or of a command",
    "(モデルの)パラメータ": "「パラメータ」 alone is the notebook's parameter, the glossary's own term",
}
# Where a term is part of a longer right word, the pattern leaves that word out.
PATTERNS = {
    "ユーザ": "ユーザ(?!ー)",        # ユーザー is the glossary's word
    "精度": "(?<!混合)精度",          # 混合精度 (mixed precision) is not accuracy
    "ロス": "(?<!ク)ロス(?!ト)",      # クロスエントロピー
}


def glossary_terms(text: str) -> list[tuple[str, str]]:
    """(word to use, word not to use) for every word of every table's 「使わない」 column."""
    terms = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("|") or cells[0] in ("使う", "---") or not cells[1]:
            continue
        for word in cells[1].split("、"):
            word = word.replace("(地の文では)", "").strip()
            if word and word not in NOT_CHECKED:
                terms.append((cells[0], word))
    return terms


TERMS = glossary_terms(GLOSSARY.read_text(encoding="utf-8"))


def _prose(markdown: str) -> str:
    """Markdown without fenced code, inline code and the decks' {{placeholders}}."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    markdown = re.sub(r"\{\{.*?\}\}", " ", markdown, flags=re.S)
    return re.sub(r"`[^`\n]*`", " ", markdown)


def breaches(text: str, terms: list[tuple[str, str]], *, prose: bool) -> list[str]:
    """「word → right word: ...context...」 for each word of `terms` in `text`. English words only when `prose`."""
    found = []
    checked = _prose(text) if prose else text
    for right, wrong in terms:
        if wrong.isascii():
            if not prose:
                continue
            pattern = rf"(?<![A-Za-z_]){re.escape(wrong)}(?![A-Za-z_])"
        else:
            pattern = PATTERNS.get(wrong, re.escape(wrong))
        for m in re.finditer(pattern, checked, flags=re.I if wrong.isascii() else 0):
            context = checked[max(0, m.start() - 20):m.end() + 20].replace("\n", " ")
            found.append(f"{wrong} → {right}: …{context}…")
    return found


def student_files() -> list[Path]:
    """Everything a student or the instructor reads."""
    files = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for pattern in ("notebooks/*.yaml", "notebooks/solutions/*.py", "lib/coursekit/**/*.py", "handson/*.md",
                    "slides/decks/*.md", "README.md"):
        files += sorted(p for p in ROOT.glob(pattern) if p != GLOSSARY)
    return files


def texts_of(path: Path) -> list[tuple[str, str, bool]]:
    """(where, text, is Japanese prose): a notebook's cells (markdown is prose), or the whole file (guides and
    decks are prose; the README's prose is English, code is code)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return [(f"cell {k}", "".join(c["source"]), c["cell_type"] == "markdown") for k, c in enumerate(cells)]
    return [("", path.read_text(encoding="utf-8"), path.suffix == ".md" and path.name != "README.md")]


def test_the_glossary_lists_the_words_to_avoid():
    terms = dict((wrong, right) for right, wrong in TERMS)
    assert terms["キット"] == terms["コースキット"] == "教材"
    assert terms["訓練"] == "学習" and terms["warmup"] == "ウォームアップ" and terms["元のワークショップ"] == "元の講習"
    assert not set(NOT_CHECKED) & set(terms)
    assert len(terms) >= 35, sorted(terms)


def test_the_check_finds_a_wrong_word_and_spares_right_ones():
    wrong = "キットの訓練データで warm-up をします。ユーザ名"
    assert sorted(b.split(":")[0] for b in breaches(wrong, TERMS, prose=True)) == sorted([
        "訓練 → 学習", "訓練データ → 学習データ / 検証データ / テストデータ", "キット → 教材", "warm-up → ウォームアップ",
        "ユーザ → ユーザー"])
    right = ("教材の学習データでウォームアップをします。ユーザー名、混合精度、クロスエントロピー、クラスタ、"
             "`val_accuracy` と {{livedoor.metrics.accuracy}}\n```\nwarmup_steps = 30\n```")
    assert breaches(right, TERMS, prose=True) == []
    assert breaches("print('warm-up')  # warm-up, not timed", TERMS, prose=False) == []


@pytest.mark.parametrize("path", student_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_students_read_the_glossarys_words(path):
    found = [f"{where}: {b}" for where, text, prose in texts_of(path) for b in breaches(text, TERMS, prose=prose)]
    assert found == []
