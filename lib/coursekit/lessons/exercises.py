"""Exercises (演習) at the end of a lesson: a student's answer checked, in Japanese, never an error.

In a lesson notebook (its parameters cell has `solutions = False`):

    from coursekit.lessons import exercises
    ex = exercises.Exercises("00_gpu_check", globals(), solutions=solutions)

    answer_1 = None  # ここに書きます        <- the student's cell
    ex.check(1)                              <- 「正解です」/「違います」/「まだです」; never raises
    ex.discuss(4)                            <- an open-ended task: nothing to check
    run.log(exercises=ex.summary())          <- one status per exercise into metrics.json

Reference solutions live outside the notebook, in `notebooks/solutions/<notebook>.py`, so a student
does not see them while scrolling: one `# %% 演習 N` section per exercise, written as a student would
write the answer cell (it may read the notebook's variables and must not change them; an open-ended
task's section assigns an example answer as text). `check` runs the section in a copy of the notebook's
namespace to get the expected answer for THIS run (the GPU count, the measured speed, ...), so the
expected value never appears in the notebook. With `solutions=True` (teachers, tests) the section runs
in the notebook itself first: `answer_N` then holds the reference answer and the check says 正解です.

Statuses: correct, wrong, todo (left undone), skipped (cannot be checked in this environment, e.g. the
framework is not installed), open (open-ended, no check).
"""
from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import Any, Callable

SECTION = re.compile(r"^# %% 演習 (\d+)\b.*$", re.M)
STATUSES = ("correct", "wrong", "todo", "skipped", "open")
MARK = {"correct": "○", "wrong": "×", "todo": "…", "skipped": "－", "open": "◇"}
LABEL = {"correct": "正解", "wrong": "違う", "todo": "まだ", "skipped": "確かめられない", "open": "自由課題"}


class SolutionsNotFound(FileNotFoundError):
    """No notebooks/solutions/<notebook>.py where the helper looked."""


def find_solutions(notebook: str, start: Path | None = None) -> Path:
    """notebooks/solutions/<notebook>.py: above the current folder (the kit's folder under the runner,
    notebooks/ in JupyterLab), else beside this package in the kit's checkout."""
    name = f"{notebook}.py"
    here = (start or Path.cwd()).resolve()
    candidates = []
    for folder in (here, *here.parents):
        candidates += [folder / "notebooks" / "solutions" / name, folder / "solutions" / name]
    candidates.append(Path(__file__).resolve().parents[3] / "notebooks" / "solutions" / name)
    for path in candidates:
        if path.is_file():
            return path
    raise SolutionsNotFound(f"notebooks/solutions/{name} が見つかりません (not found above {here})")


def read_solutions(path: str | Path) -> dict[int, str]:
    """Exercise number -> the code of its `# %% 演習 N` section."""
    text = Path(path).read_text(encoding="utf-8")
    marks = list(SECTION.finditer(text))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        number = int(m.group(1))
        if number in out:
            raise ValueError(f"{path}: 演習 {number} appears twice")
        out[number] = text[m.end():end].strip("\n") + "\n"
    return out


def _kind(value: Any) -> str:
    """The kind of a value in the words a student knows."""
    if isinstance(value, bool):
        return "True か False"
    if isinstance(value, numbers.Real):
        return "数"
    if isinstance(value, str):
        return '文字列("..." で囲みます)'
    if isinstance(value, (list, tuple)):
        return "リスト [...]"
    if isinstance(value, (set, frozenset)):
        return "集合 {...}"
    if isinstance(value, dict):
        return "辞書 {...: ...}"
    return type(value).__name__


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare(answer: Any, expected: Any, tolerance: float | None = None) -> tuple[bool, str]:
    """(same?, why not in Japanese). Numbers within a relative `tolerance` (default: 1e-9) are the same;
    True/False must be bools (1 is not True here); strings are compared without surrounding spaces."""
    if isinstance(expected, bool) or isinstance(answer, bool):
        if not (isinstance(answer, bool) and isinstance(expected, bool)):
            return False, f"答えの種類が違います: {_kind(expected)} で書きます(いまの答えは {_kind(answer)}: {_short(answer)})"
        return answer == expected, ""
    if isinstance(expected, numbers.Real):
        if not isinstance(answer, numbers.Real):
            return False, f"答えの種類が違います: {_kind(expected)} で書きます(いまの答えは {_kind(answer)}: {_short(answer)})"
        rel = tolerance if tolerance is not None else 1e-9
        if math.isclose(float(answer), float(expected), rel_tol=rel, abs_tol=1e-12):
            return True, ""
        side = "大きすぎます" if answer > expected else "小さすぎます"
        return False, f"{_short(answer)} では{side}"
    if isinstance(expected, str):
        if not isinstance(answer, str):
            return False, f"答えの種類が違います: {_kind(expected)} で書きます(いまの答えは {_kind(answer)}: {_short(answer)})"
        return answer.strip() == expected.strip(), ""
    if isinstance(expected, (list, tuple)) and isinstance(answer, (list, tuple)):
        if len(answer) != len(expected):
            return False, f"要素の数が違います(いまは {len(answer)} 個)"
        pairs = [compare(a, e, tolerance) for a, e in zip(answer, expected)]
        return all(ok for ok, _ in pairs), ""
    try:
        return bool(answer == expected), ""
    except Exception as exc:  # an answer whose == raises (e.g. an array) is not the same
        return False, f"比べられませんでした({type(exc).__name__})"


class Exercises:
    """The exercises of one notebook: `check(n)`, `discuss(n)`, `summary()`.

    `namespace` is the notebook's `globals()`: the answers are read from it, and with `solutions=True`
    the reference solutions are written into it. `folder`: where <notebook>.py is (default: found by
    `find_solutions`)."""

    def __init__(self, notebook: str, namespace: dict, solutions: bool = False,
                 folder: str | Path | None = None, echo: bool = True):
        self.notebook = notebook
        self.ns = namespace
        self.solutions = bool(solutions)
        self.echo = echo
        self.results: dict[int, str] = {}
        self.messages: dict[int, str] = {}
        self.problem: str | None = None
        try:
            self.path = Path(folder) / f"{notebook}.py" if folder else find_solutions(notebook)
            self.sections = read_solutions(self.path)
        except (OSError, ValueError) as exc:  # without solutions nothing can be checked; still no error
            self.path, self.sections = None, {}
            self.problem = str(exc)
        if self.echo:
            if self.problem:
                print(f"解答例のファイルが読めないので、答えを確かめられません: {self.problem}")
            elif self.solutions:
                print(f"solutions=True: 解答例({self._where()})を入れて確かめます(講師用・テスト用)")

    def _where(self) -> str:
        if self.path is None:
            return f"notebooks/solutions/{self.notebook}.py"
        parts = self.path.parts
        return "/".join(parts[-3:]) if len(parts) >= 3 else str(self.path)

    def _say(self, number: int, status: str, text: str) -> str:
        self.results[number] = status
        self.messages[number] = text
        line = f"{MARK[status]} 演習 {number}: {text}"
        if self.echo:
            print(line)
        return status

    def _run_section(self, number: int, namespace: dict) -> Any:
        """Run the reference solution of exercise `number` in `namespace`; return its answer_N."""
        if number not in self.sections:
            raise LookupError(f"{self._where()} に「# %% 演習 {number}」がありません")
        exec(compile(self.sections[number], f"{self._where()} (演習 {number})", "exec"), namespace)
        name = f"answer_{number}"
        if name not in namespace:
            raise LookupError(f"解答例が {name} を決めていません")
        return namespace[name]

    def expected(self, number: int) -> Any:
        """The reference answer of this run, computed in a copy of the notebook's namespace."""
        return self._run_section(number, dict(self.ns))

    def check(self, number: int, *, tolerance: float | None = None,
              normalize: Callable[[Any], Any] | None = None) -> None:
        """Say whether `answer_<number>` is right. `tolerance`: relative, for numbers; `normalize`:
        applied to the answer and to the reference before comparing (e.g. a parser of a line)."""
        name = f"answer_{number}"
        if self.solutions:
            try:
                self._run_section(number, self.ns)
            except Exception as exc:
                self._say(number, "skipped", f"この環境では確かめられません(解答例が {type(exc).__name__}: {exc} で止まりました)")
                return
        answer = self.ns.get(name)
        if answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip()):
            self._say(number, "todo", f"まだです — `{name}` に答えを書いてから、このセルをもう一度実行します")
            return
        try:
            reference = self.expected(number)
            if normalize is not None:
                reference = normalize(reference)
        except Exception as exc:
            self._say(number, "skipped", f"この環境では確かめられません({type(exc).__name__}: {exc})")
            return
        if normalize is not None:
            try:
                answer = normalize(answer)
            except Exception as exc:
                self._say(number, "wrong", f"答えを読めませんでした: {exc}")
                return
        ok, why = compare(answer, reference, tolerance)
        if ok:
            extra = ""
            if self.solutions:
                code = self.sections[number].strip()
                extra = "(解答例):\n" + "\n".join("    " + line for line in code.splitlines())
            self._say(number, "correct", f"正解です{extra}")
        else:
            self._say(number, "wrong", f"違います{'。' + why if why else ''}。ヒントを開いて、もう一度考えてみましょう")

    def discuss(self, number: int) -> None:
        """An open-ended exercise: nothing to check. With solutions=True, the example answer."""
        text = "自由課題です(正解は一つではないので、確かめるセルはありません)。考えたことをメモして、講師や隣の人と話してみましょう"
        if self.solutions:
            try:
                example = self.expected(number)
                text += "\n解答例:\n" + "\n".join("    " + line for line in str(example).strip().splitlines())
            except Exception as exc:
                text += f"\n(解答例を読めませんでした: {type(exc).__name__}: {exc})"
        self._say(number, "open", text)

    def summary(self) -> dict[str, str]:
        """Print one line of counts and return {"1": status, ...} (for `run.log(exercises=...)`)."""
        counts = {s: sum(v == s for v in self.results.values()) for s in STATUSES}
        if self.echo:
            shown = " / ".join(f"{LABEL[s]} {n}" for s, n in counts.items() if n)
            print(f"演習のまとめ({len(self.results)} 問): {shown or 'まだ一つも確かめていません'}")
        return {str(n): self.results[n] for n in sorted(self.results)}
