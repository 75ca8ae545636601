"""The exercise helper: answers checked in Japanese without ever raising, reference solutions kept
outside the notebooks, and every lesson notebook's exercise cells matching its solutions file."""
from __future__ import annotations

import re

import nbformat
import pytest

from coursekit.lessons import exercises
from coursekit.lessons.exercises import Exercises, compare

from ..conftest import NOTEBOOKS

SOLUTIONS = NOTEBOOKS / "solutions"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "demo.py").write_text(
        "# Reference solutions of a demo notebook.\n\n"
        "# %% 演習 1\nanswer_1 = len(items)\n\n"
        "# %% 演習 2 — a number from the notebook's state\nanswer_2 = sum(items) / 3\n\n"
        "# %% 演習 3\nanswer_3 = missing_name + 1\n\n"
        "# %% 演習 4\nanswer_4 = '''Look at the logs first.'''\n",
        encoding="utf-8")
    return tmp_path


def make(folder, solutions=False, **ns):
    namespace = {"items": [1, 2, 3], "answer_1": None, "answer_2": None, "answer_3": None, **ns}
    return Exercises("demo", namespace, solutions=solutions, folder=folder), namespace


def test_read_solutions_splits_sections(folder):
    sections = exercises.read_solutions(folder / "demo.py")
    assert sorted(sections) == [1, 2, 3, 4]
    assert sections[1].strip() == "answer_1 = len(items)"


def test_undone_is_todo_not_an_error(folder, capsys):
    ex, _ = make(folder)
    for n in (1, 2, 3):
        ex.check(n)
    out = capsys.readouterr().out
    assert out.count("まだです") == 3 and "Traceback" not in out
    assert ex.summary() == {"1": "todo", "2": "todo", "3": "todo"}
    assert "まだ 3" in capsys.readouterr().out


def test_right_and_wrong_answers(folder, capsys):
    ex, ns = make(folder, answer_1=3, answer_2=2.0000001)
    ex.check(1)
    ex.check(2, tolerance=1e-3)
    ns["answer_1"] = 4
    ex.check(1)
    out = capsys.readouterr().out
    assert "○ 演習 1: 正解です" in out and "○ 演習 2: 正解です" in out
    assert "× 演習 1: 違います。4 では大きすぎます" in out
    assert ex.results == {1: "wrong", 2: "correct"}
    assert ns["answer_1"] == 4, "checking never changes the student's answer"


def test_a_solution_that_fails_here_is_skipped(folder, capsys):
    ex, _ = make(folder, answer_3=1)
    ex.check(3)
    assert ex.results[3] == "skipped"
    assert "この環境では確かめられません" in capsys.readouterr().out


def test_solutions_fill_the_namespace_and_are_shown(folder, capsys):
    ex, ns = make(folder, solutions=True)
    for n in (1, 2, 3):
        ex.check(n)
    ex.discuss(4)
    assert ns["answer_1"] == 3 and ns["answer_2"] == 2.0
    assert ex.summary() == {"1": "correct", "2": "correct", "3": "skipped", "4": "open"}
    out = capsys.readouterr().out
    assert "解答例" in out and "answer_1 = len(items)" in out and "Look at the logs first." in out


def test_discuss_without_solutions_shows_no_example(folder, capsys):
    ex, _ = make(folder)
    ex.discuss(4)
    out = capsys.readouterr().out
    assert "自由課題です" in out and "Look at the logs" not in out
    assert ex.results == {4: "open"}


def test_normalize_and_unreadable_answers(folder, capsys):
    def number_in(text):
        m = re.search(r"\d+", str(text))
        if not m:
            raise ValueError("数が見つかりません")
        return int(m.group())

    ex, ns = make(folder, answer_1="three: 3")
    ex.check(1, normalize=number_in)
    ns["answer_1"] = "three"
    ex.check(1, normalize=number_in)
    out = capsys.readouterr().out
    assert "○ 演習 1: 正解です" in out and "答えを読めませんでした: 数が見つかりません" in out


def test_missing_solutions_file_never_raises(tmp_path, capsys):
    ex = Exercises("nothing", {"answer_1": 1}, folder=tmp_path)
    ex.check(1)
    assert ex.results == {1: "skipped"}
    assert "解答例のファイルが読めない" in capsys.readouterr().out


@pytest.mark.parametrize("answer, expected, ok", [
    (True, True, True), (1, True, False), ("True", True, False), (False, True, False),
    (8, 8, True), (8.0, 8, True), (8.1, 8, False), ("8", 8, False),
    (" 2.21.0 ", "2.21.0", True), ("2.21", "2.21.0", False),
    ([1, 2.0], [1, 2], True), ([1], [1, 2], False),
])
def test_compare(answer, expected, ok):
    assert compare(answer, expected)[0] is ok


def test_compare_tolerance_and_messages():
    assert compare(101.0, 100.0, tolerance=0.02) == (True, "")
    same, why = compare(90.0, 100.0, tolerance=0.02)
    assert not same and "小さすぎます" in why
    same, why = compare("yes", True)
    assert not same and "True か False" in why


def test_find_solutions_from_the_kit_and_from_notebooks(monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)  # JupyterLab's working folder
    assert exercises.find_solutions("00_gpu_check") == SOLUTIONS / "00_gpu_check.py"
    monkeypatch.chdir(NOTEBOOKS.parent)  # the runner's
    assert exercises.find_solutions("00_gpu_check") == SOLUTIONS / "00_gpu_check.py"


def exercise_cells(path):
    """(checked, open) exercise numbers of a notebook, and its answer placeholders."""
    nb = nbformat.read(str(path), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    checked = {int(n) for n in re.findall(r"^ex\.check\((\d+)", code, re.M)}
    opened = {int(n) for n in re.findall(r"^ex\.discuss\((\d+)\)", code, re.M)}
    answers = {int(n) for n in re.findall(r"^answer_(\d+) = None  # ここに書きます", code, re.M)}
    headings = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("### 演習 ")]
    return checked, opened, answers, headings, nb


WITH_EXERCISES = [p for p in LESSONS if (SOLUTIONS / f"{p.stem}.py").exists()]


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_notebook_exercises_match_their_solutions(path):
    checked, opened, answers, headings, nb = exercise_cells(path)
    sections = exercises.read_solutions(SOLUTIONS / f"{path.stem}.py")
    assert 2 <= len(checked | opened) <= 4, "2-4 exercises per lesson"
    assert checked | opened == set(sections) == set(range(1, len(sections) + 1))
    assert answers == checked, "every checked exercise has an `answer_N = None` cell"
    assert opened, "the last exercise is open-ended"
    assert max(opened) == len(sections), "open-ended last"
    assert len(headings) == len(sections) and all("<summary>ヒント</summary>" in h for h in headings)
    sources = [c.source for c in nb.cells]
    assert any(s.startswith("## 演習") for s in sources)
    assert f'exercises.Exercises("{path.stem}", globals(), solutions=solutions)' in "\n".join(sources)
    assert "exercises=ex.summary()" in sources[-1], "the last cell records the exercises"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_solutions_parameter_is_false_by_default(path):
    from coursekit.harness import params  # tests may use both layers

    table = params.declared(path)
    assert table["solutions"].default is False and table["solutions"].help
