"""The Marp decks: placeholders filled from real runs' metrics, export to HTML (PDF/PNG with Chromium)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from coursekit.harness import slides
from ..conftest import ROOT

SOURCES = {
    "bart": {"profile": "tiny", "metrics": {"bleu": 3.14159, "samples": [{"src": "a|b", "hyp": "x"}]},
             "curves": {"loss": [{"step": 1, "loss": 2.0, "eval_loss": 2.5}, {"step": 2, "loss": 1.5}]}},
    "livedoor": None,
}


def test_fill_formats_values_tables_and_plots(tmp_path):
    text = ("BLEU {{bart.metrics.bleu:.2f}} / {{ bart.profile }}\n{{bart.metrics.samples|table}}\n"
            "{{bart.curves.loss|plot}}\n{{bart.curves.loss|plot:eval_loss}}\n{{bart.metrics.samples|table:0}}\n"
            "{{bart.metrics.samples.0.hyp}}")
    out, missing = slides.fill(text, SOURCES, "t.md", tmp_path)
    assert "BLEU 3.14 / tiny" in out
    assert "| src | hyp |" in out and "| a\\|b | x |" in out   # a pipe in a cell is escaped
    assert "![bart loss](figures/bart_loss.png)" in out
    assert (tmp_path / "figures" / "bart_loss.png").stat().st_size > 5000
    assert "![bart loss](figures/bart_loss_eval_loss.png)" in out
    assert (tmp_path / "figures" / "bart_loss_eval_loss.png").exists()
    assert out.count("| a\\|b | x |") == 1                     # |table:0 has no rows
    assert out.endswith("x") and missing == set()
    long, _ = slides.fill("{{bart.metrics.samples|table}}",
                          {"bart": {"metrics": {"samples": [{"hyp": "。" * 200}]}}}, "t.md")
    assert "| " + "。" * (slides.CELL_CHARS - 1) + "… |" in long                # cut to fit a slide


def test_missing_source_file_is_shown_and_named():
    out, missing = slides.fill("acc {{livedoor.metrics.accuracy}}", SOURCES, "t.md")
    assert missing == {"benchmarks/results/livedoor_tiny_metrics.json"}
    assert "未計測" in out and "livedoor_tiny_metrics.json" in out


@pytest.mark.parametrize("text, message", [
    ("{{bart.metrics.chrf}}", "no key 'metrics.chrf' (there: bleu, samples)"),
    ("{{bart.metrics.samples.5}}", "no key 'metrics.samples.5' (there: a list of 1)"),
    ("{{nosuch.metrics.x}}", "unknown source 'nosuch'"),
    ("{{bart.metrics.bleu|upper}}", "unknown filter 'upper'"),
    ("{{bart.profile:.2f}}", "cannot format 'tiny'"),
    ("{{bart.curves.loss|plot:bleu}}", "no bleu in the curve (there: eval_loss, loss, step)"),
    ("{{bart.metrics.samples|table:x}}", "|table:ROWS needs a number"),
])
def test_bad_placeholders_raise_with_the_reason(text, message):
    with pytest.raises(slides.SlidesError, match="t.md") as err:
        slides.fill(text, SOURCES, "t.md")
    assert message in str(err.value)


def test_cli_names_a_missing_metrics_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(slides.SOURCES, "bart", "benchmarks/results/no_such_run.json")
    assert slides.main(["--render-only", "--out", str(tmp_path)]) == 0
    assert "benchmarks/results/no_such_run.json not found" in capsys.readouterr().err
    assert "no_such_run.json がまだありません" in (tmp_path / "07_bart.md").read_text(encoding="utf-8")


def test_every_placeholder_resolves_where_its_metrics_file_exists(tmp_path):
    sources = slides.load_sources()
    present = {name for name, data in sources.items() if data is not None}
    checked = 0
    for deck in slides.deck_files():
        for ph in slides.placeholders(deck.read_text(encoding="utf-8")):
            source = ph.strip("{} ").split(".")[0]
            assert source in slides.SOURCES, f"{deck.name}: {ph} names an unknown source"
            if source in present:
                slides.fill(ph, sources, deck.name, tmp_path)   # raises naming the missing key
                checked += 1
    if not present:
        pytest.skip("no metrics file committed yet: " + ", ".join(slides.SOURCES.values()))
    assert checked > 0


def test_decks_are_marp_decks_with_the_kit_theme():
    theme = (ROOT / "slides" / "themes" / f"{slides.THEME}.css").read_text(encoding="utf-8")
    assert f"/* @theme {slides.THEME} */" in theme
    for deck in slides.deck_files():
        head = deck.read_text(encoding="utf-8").split("---")[1]
        for line in ("marp: true", f"theme: {slides.THEME}", "paginate: true", "header:"):
            assert line in head, f"{deck.name}: front matter lacks {line!r}"


LEFT_OVER = re.compile(r"\{\{")
MACHINE_PATH = re.compile(r"(?<![\w.~$-])/(?:work|tmp|root|home)(?:/|\b)")


def leftovers(text: str) -> list[str]:
    """Unfilled placeholders and machine paths in rendered text (lines, for the message)."""
    return [line.strip()[:120] for line in text.splitlines() if LEFT_OVER.search(line) or MACHINE_PATH.search(line)]


def test_leftover_check_catches_placeholders_and_paths():
    assert leftovers("BLEU {{bart.metrics.bleu}}") and leftovers("data: /work/shared/data/x")
    assert leftovers("see /tmp/x.png") and leftovers("/home/alice") and leftovers("cd /root")
    assert not leftovers("~/.cache/huggingface, /scratch/$USER, $HOME/x, runs/02/<ジョブID>/, 1/2")


def test_every_deck_renders_without_placeholders_or_machine_paths(tmp_path):
    """Render every deck with the committed metrics: no `{{` left and no path of this machine (the
    metrics files record where their data lay; a slide must never show that)."""
    rendered = slides.render(out=tmp_path)
    assert [r.deck.name for r in rendered] == [d.name for d in slides.deck_files()]
    problems = {r.out.name: leftovers(r.out.read_text(encoding="utf-8")) for r in rendered}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems
    for r in rendered:
        assert slides.broken_links(r.out) == [], r.out.name


def test_decks_cover_every_lesson_and_the_cluster_topics():
    """One deck per lesson notebook, plus the cluster topics the workshop teaches."""
    text = {d.name: d.read_text(encoding="utf-8") for d in slides.deck_files()}
    everything = "\n".join(text.values())
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert any(f"ノートブック {nb.name[:2]}" in t.split("---")[1] or nb.stem in t.split("---")[1]
                   for t in text.values()), f"no deck has notebook {nb.stem} in its header"
    for words in (["torch.cuda.is_available", "tf.config.list_physical_devices", "TF_USE_LEGACY_KERAS"],
                  ["build --fakeroot", "Bootstrap: localimage", "--writable", "conda", "pip freeze"],
                  ["--signal=B:USR1@300", "--requeue", "--open-mode=append", "mkdir -p logs"],
                  ["--array", "%A_%a", "squeue", "scancel", "tail -f", "nvidia-smi"],
                  ["all-reduce", "MirroredStrategy", "DistributedDataParallel"]):
        missing = [w for w in words if w not in everything]
        assert not missing, f"no deck explains {missing}"


def test_the_sbatch_deck_shows_the_real_script():
    """Every #SBATCH line of sbatch/livedoor.sbatch is on a slide, and every #SBATCH line on the
    slides is one some real script has (the same GPU syntax, log names, ...)."""
    real = {l.strip() for s in (ROOT / "sbatch").glob("*.sbatch")
            for l in s.read_text(encoding="utf-8").splitlines() if l.startswith("#SBATCH")}
    livedoor = [l.strip() for l in (ROOT / "sbatch" / "livedoor.sbatch").read_text(encoding="utf-8").splitlines()
                if l.startswith(("#SBATCH", ": \"${CONTAINER", "source "))]
    decks = "\n".join(d.read_text(encoding="utf-8") for d in slides.deck_files())
    missing = [l for l in livedoor if l not in decks]
    assert not missing, f"the decks do not show these lines of sbatch/livedoor.sbatch: {missing}"
    shown = {re.sub(r"\s+#.*", "", l.strip()) for l in decks.splitlines() if l.startswith("#SBATCH")}
    generic = {"#SBATCH --mem=32G"}              # an example of a line the kit's scripts leave out
    unknown = sorted(l for l in shown - real - generic
                     if not any(l.split("=")[0] == r.split("=")[0] and l.startswith("#SBATCH --gpus=")
                                for r in real))
    assert not unknown, f"#SBATCH lines on slides that no script has: {unknown}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not (ROOT / "slides" / "node_modules" / ".bin" / "marp").exists():
        pytest.skip("marp-cli not installed: run `npm ci` in slides/ (needs node and npm)")
    out = tmp_path_factory.mktemp("slides_out")
    rendered = slides.render(out=out)
    return out, rendered, slides.export(rendered)


def test_every_deck_exports_to_html_with_the_kit_theme(exported):
    out, rendered, results = exported
    assert len(results["html"]) == len(rendered) >= 8
    for html in results["html"]:
        text = html.read_text(encoding="utf-8")
        assert f'data-theme="{slides.THEME}"' in text, f"{html.name} fell back to another theme"
        assert "<section" in text
        body = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S)   # marp's own code
        assert not leftovers(re.sub(r"<[^>]+>", " ", body)), f"{html.name}: {leftovers(body)[:3]}"


def test_every_linked_file_exists(exported):
    out, rendered, _ = exported
    for r in rendered:
        assert slides.broken_links(r.out) == [], r.out.name


def test_pdf_first_page_is_not_blank(exported):
    out, rendered, results = exported
    if not results["pdf"]:
        pytest.skip("no Chromium (Debian package `chromium`): PDF and PNG export skipped")
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm not found (Debian package poppler-utils)")
    from PIL import Image, ImageStat

    assert len(results["pdf"]) == len(results["png"]) == len(rendered)
    for pdf, png in zip(results["pdf"], results["png"]):
        prefix = out / f"page1_{pdf.stem}"
        subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "1", "-singlefile",
                        str(pdf), str(prefix)], check=True, timeout=60)
        for image in (prefix.with_suffix(".png"), png):
            gray = Image.open(image).convert("L")
            assert ImageStat.Stat(gray).stddev[0] > 5, f"{image.name} is blank"
            assert gray.getextrema()[0] < 100, f"{image.name} has no dark text"


# ----------------------------------------------------------------------------- speaker notes
# Marp's presenter notes are the HTML comments of a slide that are not directives (`<!-- _class: lead -->`).
DIRECTIVE_COMMENT = re.compile(r"^\s*(?:_?[A-Za-z][\w-]*\s*:[^\n]*\s*)+$")


def deck_slides(text: str) -> list[str]:
    """A deck's slides as Marp splits them: at `---` lines after the front matter, outside code fences."""
    lines = text.split("\n")
    body = lines[lines.index("---", 1) + 1:]
    slides, current, fence = [], [], False
    for line in body:
        if line.startswith("```"):
            fence = not fence
        if line.strip() == "---" and not fence:
            slides.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return slides + ["\n".join(current)]


def presenter_notes(slide: str) -> list[str]:
    outside_code = re.sub(r"^```.*?^```", "", slide, flags=re.S | re.M)
    return [c.strip() for c in re.findall(r"<!--(.*?)-->", outside_code, re.S) if not DIRECTIVE_COMMENT.match(c)]


def test_the_note_finder_tells_notes_from_directives():
    slides = deck_slides("---\nmarp: true\n---\n\n<!-- _class: lead -->\n# A\n\n<!--\n【話す】a\n【時間】1 分\n-->\n\n---\n\n"
                         "## B\n\n```bash\n<!-- in code -->\n---\n```\n<!-- paginate: false -->\n")
    assert len(slides) == 2
    assert presenter_notes(slides[0]) == ["【話す】a\n【時間】1 分"]
    assert presenter_notes(slides[1]) == []


def test_every_slide_has_a_presenter_note_with_its_timing():
    """Each slide of each deck carries a note for the speaker: what to say and show, and how long (N 分)."""
    missing = []
    for deck in slides.deck_files():
        for i, slide in enumerate(deck_slides(deck.read_text(encoding="utf-8")), 1):
            notes = presenter_notes(slide)
            if not notes or not re.search(r"\d+(?:\.\d+)? 分", "\n".join(notes)):
                heading = next((l for l in slide.splitlines() if l.startswith("#")), "?")
                missing.append(f"{deck.name} slide {i} ({heading})")
    assert not missing, "slides without a presenter note (<!-- ... N 分 -->): " + "; ".join(missing)


def test_marp_shows_every_slides_note_in_the_presenter_view(exported):
    """In the exported HTML every slide has its note (bespoke's presenter view shows them)."""
    out, rendered, results = exported
    for html in results["html"]:
        text = html.read_text(encoding="utf-8")
        pages = len(re.findall(r'<section\b[^>]*\bid="\d+"', text))
        noted = {int(i) for i in re.findall(r'class="bespoke-marp-note" data-index="(\d+)"', text)}
        assert pages > 0 and noted == set(range(pages)), f"{html.name}: notes on {sorted(noted)} of {pages} slides"
