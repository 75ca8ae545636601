"""handson/10_instructor.md: the timetable's CPU times are the results files' figures, its GPU times are marked as
estimates, the capacity table's arithmetic holds, and it covers what an instructor must check."""
from __future__ import annotations

import re

from .conftest import ROOT

GUIDE = ROOT / "handson" / "10_instructor.md"
RESULTS = ROOT / "benchmarks" / "results"


def text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title_start: str) -> str:
    body = text()
    start = body.index(f"## {title_start}")
    end = body.find("\n## ", start + 1)
    return body[start:end if end >= 0 else None]


def table_rows(part: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in part.splitlines()
            if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)]


def test_cpu_times_are_the_results_files_figures():
    quoted = re.findall(r"CPU ([\d.]+ (?:s|min))\(`benchmarks/results/([\w.-]+)`\)", text())
    assert len(quoted) >= 4
    for figure, name in quoted:
        source = (RESULTS / name).read_text(encoding="utf-8")
        assert figure in source, f"{figure} is not in {name}"


def test_gpu_times_are_marked_as_estimates_until_measured():
    rows = table_rows(section("1."))
    assert rows[0][-1].startswith("時間")
    for row in rows[1:]:
        cell = row[-1]
        if "GPU" in cell:
            assert "推定" in cell, f"a GPU time without 推定: {row}"
        assert not re.search(r"CPU [^(/]*\d", cell) or "benchmarks/results/" in cell, f"a CPU time without its source: {row}"
    capacity = section("3.")
    assert "すべて推定" in capacity


def test_the_capacity_table_adds_up():
    """per student x 30 = the 30 column; the total row sums the rows; time until everyone is done =
    max(one job, per student x 30 / GPUs)."""
    rows = [r for r in table_rows(section("3.")) if r[0] != "ジョブ"]
    total = next(r for r in rows if "合計" in r[0])
    jobs = [r for r in rows if r is not total]
    assert len(jobs) >= 6
    per_student = 0.0
    for name, gpus, per, thirty, until in jobs:
        per, thirty = float(per), float(thirty)
        per_student += per
        assert abs(per * 30 - thirty) < 1e-6, name
        count = 1
        for n in re.findall(r"\d+", gpus):
            count *= int(n)
        one_job = per / count
        minutes = [int(m) for m in re.findall(r"\d+", until)]
        expected = [round(max(one_job, per * 30 / g) * 60) for g in (8, 16, 32)]
        assert minutes == expected, (name, minutes, expected)
    assert abs(float(total[2].strip("*")) - per_student) < 1e-6
    assert abs(float(total[3].strip("*")) - per_student * 30) < 1e-6


def test_the_guide_covers_the_checklist_and_the_etiquette():
    body = text()
    for words in (["fakeroot", "予約", "GPU の種類", "Python 3.11", "coursekit prepare", "site.env", "クォータ",
                   "coursekit doctor"],
                  ["ログインノードで計算しない", "scancel", "--time", "Disk quota exceeded"]):
        missing = [w for w in words if w not in body]
        assert not missing, f"10_instructor.md does not mention {missing}"
    decks = sorted(p.stem for p in (ROOT / "slides" / "decks").glob("*.md"))
    timetable = section("1.")
    assert [d for d in decks if d not in timetable] == [], "every deck has its slot"
    for script in ("gpu_check", "livedoor", "bart", "jupyter", "sweep", "pretrain"):
        assert f"sbatch/{script}.sbatch" in body, script
