"""The workshop slides: `python -m coursekit slides` renders and exports every Marp deck.

Decks are Markdown templates in slides/decks/. Numbers from real runs are never typed by hand: a deck
writes a placeholder such as `{{bart.metrics.bleu:.1f}}`, and this module fills it from the metrics file
of a real tiny-profile run committed in benchmarks/results/ (SOURCES below); `{{bart.curves.loss|plot}}`
draws that training curve into slides/out/figures/ at build time and links it. Then marp-cli (pinned in
slides/package.json) exports every rendered deck to HTML, and to PDF plus a PNG of the title slide
where a Chromium is installed.

    python -m coursekit slides              # render + export into slides/out/
    python -m coursekit slides --no-pdf     # HTML only
    python -m coursekit slides --render-only

A placeholder whose metrics file is missing is rendered as a visible "not measured yet" note, and the
command prints which file is missing; a placeholder naming a key that the file does not have is an error.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runs import project_root

ROOT = project_root(Path(__file__).parent) or Path.cwd()  # the kit's checkout
SLIDES = ROOT / "slides"
DECKS = SLIDES / "decks"
THEMES = SLIDES / "themes"
OUT = SLIDES / "out"
THEME = "coursekit"
CELL_CHARS = 40          # longer table cells are cut (a slide has no room for them)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")

# Placeholder prefix -> metrics file of a real tiny-profile run (relative to the checkout).
SOURCES = {
    "livedoor": "benchmarks/results/livedoor_tiny_metrics.json",
    "bart": "benchmarks/results/bart_tiny_metrics.json",
    "pretrain": "benchmarks/results/pretrain_tiny_metrics.json",
    "livedoorbench": "benchmarks/results/livedoor.json",   # benchmarks/livedoor.py (all-article baseline)
    "pretrainlift": "benchmarks/results/pretrain_lift.json",   # benchmarks/pretrain_lift.py (04 -> 02)
    "pretraintransfer": "benchmarks/results/pretrain_transfer.json",   # benchmarks/pretrain_transfer.py
}

# {{source.key.path}}, {{source.key.path:FORMAT}}, {{source.key.path|table}} (|table:ROWS),
# {{source.curves.NAME|plot}} (|plot:KEY1,KEY2), {{source.key.path|name}} (a path's last part: a
# recorded data folder shown without the machine's path)
PLACEHOLDER = re.compile(
    r"\{\{\s*([a-z]+)((?:\.[\w-]+)+)\s*(?::([^}|]+)|\|(\w+)(?::([\w,]+))?)?\s*\}\}")
# Markdown images/links and HTML src/href (external URLs and anchors are not files).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)|(?:src|href)=\"([^\"]+)\"")


class SlidesError(RuntimeError):
    """A deck that cannot be rendered: unknown placeholder, key missing from its metrics file."""


@dataclass
class Rendered:
    deck: Path                       # the template in slides/decks/
    out: Path                        # the rendered Markdown in slides/out/
    missing: set[str] = field(default_factory=set)   # metrics files that were not there


def load_sources(root: Path = ROOT) -> dict[str, dict | None]:
    """Each source's metrics (None where its file does not exist yet)."""
    data: dict[str, dict | None] = {}
    for name, rel in SOURCES.items():
        path = root / rel
        if not path.exists():
            data[name] = None
            continue
        try:
            data[name] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SlidesError(f"{rel} is not valid JSON: {exc}") from None
    return data


def lookup(data: Any, keys: list[str], where: str) -> Any:
    """data[k1][k2]...; integer keys index lists. A missing key raises with the keys that exist."""
    for i, key in enumerate(keys):
        if isinstance(data, list) and key.lstrip("-").isdigit() and -len(data) <= int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            have = (", ".join(sorted(map(str, data))) if isinstance(data, dict)
                    else f"a list of {len(data)}" if isinstance(data, list) else repr(data))
            raise SlidesError(f"{where}: no key {'.'.join(keys[:i + 1])!r} (there: {have})")
    return data


def markdown_table(rows: Any, where: str, limit: int | None = None) -> str:
    """A list of dicts (or a dict of scalars) as a Markdown table, its first `limit` rows."""
    if isinstance(rows, dict):
        rows = [{"項目": k, "値": v} for k, v in rows.items()]
    if not rows or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SlidesError(f"{where}: |table needs a non-empty list of objects")
    rows = rows[:limit]
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(value: Any) -> str:  # one line, at most CELL_CHARS characters, pipes escaped
        text = "(空)" if value == "" else str(value if value is not None else "").replace("\n", " ")
        text = text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def fill(text: str, sources: dict[str, dict | None], where: str = "deck",
         out: Path | None = None) -> tuple[str, set[str]]:
    """Replace every placeholder; return the text and the metrics files that were missing.

    `{{src.curves.NAME|plot}}` draws that training curve into out/figures/ and becomes the image
    link (`|plot:loss,eval_loss`: only those keys); `|table` makes a Markdown table (`|table:3`: its
    first 3 rows); `|name` keeps a path's last part (no machine paths on slides); `:FMT` formats a
    value (`:.2f`, `:.1%`)."""
    missing: set[str] = set()

    def one(match: re.Match) -> str:
        name, path, fmt, filt, arg = match.groups()
        here = f"{where}: {match.group(0)}"
        if name not in SOURCES:
            raise SlidesError(f"{here}: unknown source {name!r} (known: {', '.join(SOURCES)})")
        data = sources.get(name)
        if data is None:
            missing.add(SOURCES[name])
            return f"<span class=\"unmeasured\">未計測 ({SOURCES[name]} がまだありません)</span>"
        value = lookup(data, path.lstrip(".").split("."), f"{here} in {SOURCES[name]}")
        if filt == "table":
            if arg is not None and not arg.isdigit():
                raise SlidesError(f"{here}: |table:ROWS needs a number of rows")
            return markdown_table(value, here, int(arg) if arg else None)
        if filt == "plot":
            if not (isinstance(value, list) and value and all(isinstance(p, dict) for p in value)):
                raise SlidesError(f"{here}: |plot needs a non-empty list of points (dicts)")
            keys = arg.split(",") if arg else None
            unknown = [k for k in keys or [] if not any(k in p for p in value)]
            if unknown:
                have = sorted({k for p in value for k in p})
                raise SlidesError(f"{here}: no {', '.join(unknown)} in the curve (there: {', '.join(have)})")
            if out is None:
                raise SlidesError(f"{here}: |plot needs an output folder")
            curve = path.lstrip(".").split(".")[-1]
            rel = f"figures/{name}_{curve}{'_' + '_'.join(keys) if keys else ''}.png"
            (out / "figures").mkdir(parents=True, exist_ok=True)
            _curve_figure(name, curve, value, out / rel, keys)
            return f"![{name} {curve}]({rel})"
        if filt == "name":
            if not isinstance(value, str):
                raise SlidesError(f"{here}: |name needs a path (a string), not {value!r}")
            return value.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
        if filt:
            raise SlidesError(f"{here}: unknown filter {filt!r} (known: table, plot, name)")
        if fmt:
            try:
                return format(value, fmt.strip())
            except (ValueError, TypeError) as exc:
                raise SlidesError(f"{here}: cannot format {value!r} with {fmt!r}: {exc}") from None
        return str(value)

    return PLACEHOLDER.sub(one, text), missing


def placeholders(text: str) -> list[str]:
    """The placeholders of a template, as written."""
    return [m.group(0) for m in PLACEHOLDER.finditer(text)]


# ----------------------------------------------------------------------------- figures
def _curve_figure(source: str, name: str, points: list[dict], path: Path,
                  keys: list[str] | None = None) -> None:
    """Line plot of a recorded curve against step (or epoch): the given keys, else every numeric
    key with "loss" in its name, else every numeric key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..jpfont import use_japanese_font

    use_japanese_font()
    xkey = next((k for k in ("step", "epoch") if any(k in p for p in points)), None)
    if keys is None:
        numeric = [k for k in dict.fromkeys(k for p in points for k in p) if k not in ("step", "epoch")
                   and any(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                           for p in points)]
        keys = [k for k in numeric if "loss" in k] or numeric
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key in keys:
        pts = [(p.get(xkey, i) if xkey else i, p[key]) for i, p in enumerate(points)
               if isinstance(p.get(key), (int, float))]
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3, label=key)
    ax.set_xlabel(xkey or "記録の順番")
    ax.set_title(f"{source}: {name}(実際の tiny 実行)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------- render and export
def deck_files(decks: Path = DECKS) -> list[Path]:
    files = sorted(decks.glob("*.md"))
    if not files:
        raise SlidesError(f"no decks (*.md) in {decks}")
    return files


def render(decks: Path = DECKS, out: Path = OUT, root: Path = ROOT) -> list[Rendered]:
    """Fill every deck's placeholders into out/ (drawing the plots), copy the decks' assets."""
    sources = load_sources(root)
    out.mkdir(parents=True, exist_ok=True)
    if (decks / "assets").is_dir():
        shutil.copytree(decks / "assets", out / "assets", dirs_exist_ok=True)
    done = []
    for deck in deck_files(decks):
        text, missing = fill(deck.read_text(encoding="utf-8"), sources, deck.name, out)
        target = out / deck.name
        target.write_text(text, encoding="utf-8")
        done.append(Rendered(deck, target, missing))
    return done


def broken_links(md: Path) -> list[str]:
    """Local files an (already rendered) deck links to that do not exist beside it."""
    bad = []
    for m in LINK.finditer(md.read_text(encoding="utf-8")):
        target = (m.group(1) or m.group(2)).split("#")[0].split("?")[0]
        if not target or re.match(r"^[a-z]+:", target):
            continue
        if not (md.parent / target).exists():
            bad.append(target)
    return bad


def marp_command(root: Path = ROOT) -> list[str]:
    """How to call marp-cli: the pinned one in slides/node_modules (`npm ci` in slides/)."""
    local = root / "slides" / "node_modules" / ".bin" / "marp"
    if local.exists():
        return [str(local)]
    raise SlidesError("marp-cli is not installed: run `npm ci` in slides/ (needs node and npm)")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM) if p), None)


def export(rendered: list[Rendered], themes: Path = THEMES, pdf: bool | None = None,
           root: Path = ROOT) -> dict[str, list[Path]]:
    """marp-cli: HTML for every deck; PDF and a PNG of the title slide where Chromium exists."""
    if pdf is None:
        pdf = find_chromium() is not None
    marp = marp_command(root)
    files = [str(r.out) for r in rendered]
    base = [*marp, "--no-stdin", "--theme-set", str(themes), "--allow-local-files"]
    results: dict[str, list[Path]] = {"html": [], "pdf": [], "png": []}
    kinds = [("html", ["--html"])] + ([("pdf", ["--pdf"]), ("png", ["--image", "png"])] if pdf else [])
    for kind, flags in kinds:
        proc = subprocess.run([*base, *flags, *files], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "CHROME_PATH": find_chromium() or ""}
                              if kind != "html" else None)
        if proc.returncode != 0:
            raise SlidesError(f"marp --{kind} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        results[kind] = [r.out.with_suffix(f".{kind}") for r in rendered]
        lost = [p.name for p in results[kind] if not p.exists()]
        if lost:
            raise SlidesError(f"marp --{kind} wrote no {', '.join(lost)}:\n{proc.stderr[-3000:]}")
    return results


def build(out: Path = OUT, pdf: bool | None = None, render_only: bool = False) -> int:
    rendered = render(out=out)
    for r in rendered:
        for rel in sorted(r.missing):
            print(f"coursekit slides: {r.deck.name}: {rel} not found; its numbers are shown as "
                  f"'未計測' (commit a real tiny run's metrics.json there)", file=sys.stderr)
    bad = {r.out.name: broken_links(r.out) for r in rendered}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise SlidesError("decks link to missing files: " +
                          "; ".join(f"{k}: {', '.join(v)}" for k, v in bad.items()))
    if render_only:
        print(f"{len(rendered)} decks rendered into {out}")
        return 0
    if pdf is not False and find_chromium() is None:
        print("coursekit slides: no Chromium found (Debian package `chromium`): HTML only",
              file=sys.stderr)
    results = export(rendered, pdf=pdf)
    for kind, paths in results.items():
        if paths:
            print(f"{kind:>4}: {len(paths)} files in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit slides",
        description="Render the Marp decks in slides/decks/ with numbers from benchmarks/results/ "
                    "and export them (HTML; PDF and PNG where Chromium exists) into slides/out/.")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: slides/out)")
    parser.add_argument("--no-pdf", action="store_true", help="HTML only, even where Chromium exists")
    parser.add_argument("--render-only", action="store_true",
                        help="fill the placeholders and draw the figures, do not call marp")
    args = parser.parse_args(argv)
    try:
        return build(args.out.resolve(), pdf=False if args.no_pdf else None,
                     render_only=args.render_only)
    except SlidesError as exc:
        print(f"coursekit slides: error: {exc}", file=sys.stderr)
        return 1
