"""The hands-on guides stay true to the kit: every command names files, sbatch scripts, notebooks,
`coursekit` subcommands, options and parameters that exist, and the blocks marked ```bash cpu-safe run.
The same command check covers the bash blocks of the slides."""
from __future__ import annotations

import functools
import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.harness import params
from coursekit.__main__ import COMMANDS

from .conftest import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"

HANDSON = ROOT / "handson"
GUIDES = sorted(HANDSON.glob("*.md"))
BLOCK = re.compile(r"^```bash([^\n]*)\n(.*?)^```", re.S | re.M)
REPO_DIRS = ("notebooks/", "sbatch/", "defs/", "lib/", "slides/", "handson/", "benchmarks/", "tests/",
             "tools/")
BUILT = (".sif",)            # made by the reader (containers), never in the checkout
PLACEHOLDER = re.compile(r"<[^<>\s]+>")          # <ジョブID>, <ログインノード>: the reader fills them in
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", "$", "`"}
REQUIRED_TOPICS = {  # guide -> words it must explain (the list)
    "01_login_clone.md": ["ssh", "git clone", "mkdir -p logs"],
    "02_data_models.md": ["livedoor", "bert_config.json", "ALT", "HF_HUB_OFFLINE", "hf download"],
    "03_containers.md": ["pull", "build --fakeroot", "--sandbox", "nvidia-smi", "coursekit gpu"],
    "04_run_notebook.md": ["coursekit run", "sbatch", "squeue", "tail -f", "scancel"],
    "05_sweep.md": ["sweep.sbatch", "--array"],
    "06_jupyterlab.md": ["127.0.0.1", "token", "ssh -N -L", "XDG_RUNTIME_DIR"],
    "07_cleanup.md": ["du -sh", "cache clean"],
    "99_troubleshooting.md": ["NoSuchKernel", "-k python3", "PYTHONNOUSERSITE", "--nv",
                              "CUDA_VISIBLE_DEVICES", "--fakeroot", "DeadKernelError", "--mem",
                              "XDG_RUNTIME_DIR", "Disk quota"],
}


@functools.lru_cache(maxsize=None)
def reader_made(path: str) -> bool:
    """A path the reader makes (an image, a sandbox folder): a .sif, or one the checkout's .gitignore
    ignores (defs/*/, models/ ...), so it is never in the checkout."""
    if path.endswith(BUILT):
        return True
    proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT,
                          capture_output=True, text=True)
    return proc.returncode == 0


def blocks(guide: Path) -> list[tuple[str, str]]:
    """(info string after ```bash, body) of every bash block."""
    return [(m.group(1).strip(), m.group(2)) for m in BLOCK.finditer(guide.read_text(encoding="utf-8"))]


def commands(body: str, assignments: bool = False) -> list[list[str]]:
    """Simple commands of a block as token lists: continuations joined, comments dropped, split at
    && || ; | and $( ), leading VAR=value assignments removed (kept with `assignments`)."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in SEPARATORS or set(token) <= set(";&|()`$"):
                out.append(current)
                current = []
            elif current or assignments or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
                current.append(token)
        out.append(current)
    return [c for c in out if c]


@functools.lru_cache(maxsize=None)
def help_text(subcommand: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "coursekit", subcommand, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"`coursekit {subcommand} --help` failed:\n{proc.stderr[-2000:]}"
    return proc.stdout


def notebooks_of(path: Path) -> set[str]:
    """Notebook stems a path stands for: the notebook itself, or those an sbatch script runs."""
    if path.suffix == ".ipynb":
        return {path.stem}
    if path.suffix == ".sbatch" and path.exists():
        code = "\n".join(l for l in path.read_text(encoding="utf-8").splitlines() if not l.startswith("#"))
        return set(re.findall(r"notebooks/(\d\d_\w+)\.ipynb", code))
    return set()


def check_parameters(pairs: list[str], stems: set[str], where: str) -> list[str]:
    errors = []
    tables = {s: params.declared(NOTEBOOK_DIR / f"{s}.ipynb") if (NOTEBOOK_DIR / f"{s}.ipynb").exists() else None
              for s in stems}
    for stem, table in tables.items():
        if table is None:
            errors.append(f"{where}: notebook {stem} does not exist")
    for name in pairs:
        if stems and not any(t is not None and name in t for t in tables.values()):
            errors.append(f"{where}: parameter {name!r} is not one of {sorted(stems)}'s parameters")
    return errors


def param_names(tokens: list[str]) -> list[str]:
    """NAMEs of -p NAME VALUE (a parameter) and -g NAME V1,V2 (a sweep's grid)."""
    return [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in ("-p", "--parameter", "-g", "--grid")]


def check_options(sub: str, args: list[str], where: str, extra: str = "") -> list[str]:
    """Every --long and -x option in args is in `coursekit SUB --help` (or in extra)."""
    text, errors = help_text(sub) + extra, []
    for opt in [t.split("=")[0] for t in args if t.startswith("--")] + \
               [t for t in args if re.fullmatch(r"-[A-Za-z]", t)]:
        if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text):
            errors.append(f"{where}: `coursekit {sub}` has no option {opt}")
    return errors


def check_script_args(script: str, args: list[str], where: str) -> list[str]:
    """Arguments after an sbatch script go to `coursekit run NOTEBOOK` (`coursekit sweep` for the
    sweep script, which also takes the notebook): check options and parameter names."""
    path = ROOT / script
    if not path.exists():
        return []                                 # reported as a missing path
    sweep = path.name == "sweep.sbatch"
    stems = notebooks_of(path) | set().union(*[notebooks_of(Path(t)) for t in args if t.endswith(".ipynb")])
    errors = check_options("sweep" if sweep else "run", args, where,
                           extra=help_text("run") + " -g" if sweep else "")
    return errors + check_parameters(param_names(args), stems, where)


def check_command(tokens: list[str], where: str) -> list[str]:
    """Problems with one command: missing repo paths, unknown subcommands, options, parameters."""
    errors = []
    where = f"{where}: `{' '.join(tokens)}`"
    for token in tokens:
        for part in token.split("="):
            part = part.rstrip("}\"'")             # ${CONTAINER:=defs/x.sif}
            if part.startswith(REPO_DIRS) and "PLACEHOLDER" not in part and not reader_made(part) \
                    and not glob.glob(str(ROOT / part)):
                errors.append(f"{where}: {part} does not exist")
    if "sbatch" in tokens:
        scripts = [t for t in tokens if t.endswith(".sbatch")]
        if not scripts:
            errors.append(f"{where}: sbatch without a script")
        for script in scripts:
            if script.startswith("sbatch/"):      # else the reader's own (the minimal example)
                errors += check_script_args(script, tokens[tokens.index(script) + 1:], where)
    if "coursekit" in tokens:
        i = tokens.index("coursekit")
        if i + 1 >= len(tokens):
            return errors
        sub, rest = tokens[i + 1], tokens[i + 2:]
        if sub.startswith("-"):
            return errors
        if sub not in COMMANDS:
            return errors + [f"{where}: no subcommand {sub!r} (known: {', '.join(COMMANDS)})"]
        script = next((t for t in rest if t.endswith(".sbatch")), None)
        if sub == "submit" and script:            # what follows the script goes to the script
            i = rest.index(script)
            errors += check_options(sub, rest[:i], where) + check_script_args(script, rest[i + 1:], where)
            return errors
        # sweep passes what it does not know on to `coursekit run`
        errors += check_options(sub, rest, where, extra=help_text("run") + " -g" if sub == "sweep" else "")
        stems = set().union(set(), *[notebooks_of(Path(t)) for t in rest if t.endswith(".ipynb")])
        errors += check_parameters(param_names(rest), stems, where)
        if "--profile" in rest and rest.index("--profile") + 1 < len(rest):
            known = set().union(*[params.profiles(NOTEBOOK_DIR / f"{s}.ipynb") for s in stems
                                  if (NOTEBOOK_DIR / f"{s}.ipynb").exists()]) or {"full", "tiny"}
            if rest[rest.index("--profile") + 1] not in known:
                errors.append(f"{where}: unknown profile")
    return errors


def checker_errors(text: str) -> list[str]:
    """What the command checker says about every command in `text`."""
    return [e for tokens in commands(text) for e in check_command(tokens, "t")]


def test_the_checker_catches_mistakes():
    bad = {
        "python -m coursekit run notebooks/00_gpu_check.ipynb -p matmul_sise 3": "'matmul_sise'",
        "python -m coursekit run notebooks/99_nothing.ipynb": "99_nothing.ipynb does not exist",
        "python -m coursekit run notebooks/00_gpu_check.ipynb --profil tiny": "no option --profil",
        "python -m coursekit frobnicate": "no subcommand 'frobnicate'",
        "mkdir -p logs && sbatch sbatch/no_such.sbatch": "sbatch/no_such.sbatch does not exist",
        "X=1 cat defs/none.def | head": "defs/none.def does not exist",
    }
    for command, message in bad.items():
        errors = checker_errors(command)
        assert any(message in e for e in errors), (command, errors)
    good = "HF_HUB_OFFLINE=1 python -m coursekit run notebooks/00_gpu_check.ipynb --profile tiny " \
           "-p matmul_size 256   # a comment with sbatch/none.sbatch"
    assert checker_errors(good) == []
    assert commands("tail -f logs/x-<ジョブID>.out") == [["tail", "-f", "logs/x-PLACEHOLDER.out"]]


def test_the_checker_follows_arguments_into_sbatch_scripts():
    if not (ROOT / "sbatch" / "gpu_check.sbatch").exists():
        pytest.skip("sbatch/gpu_check.sbatch not found")
    bad = {
        "sbatch sbatch/gpu_check.sbatch -p matmul_sise 3": "'matmul_sise'",
        "sbatch sbatch/gpu_check.sbatch --profil tiny": "`coursekit run` has no option --profil",
        "python -m coursekit submit --dry-run sbatch/gpu_check.sbatch -p matmul_sise 3": "'matmul_sise'",
        "python -m coursekit submit --dryrun sbatch/gpu_check.sbatch": "`coursekit submit` has no option --dryrun",
    }
    for command, message in bad.items():
        errors = checker_errors(command)
        assert any(message in e for e in errors), (command, errors)
    good = "sbatch --time=00:05:00 sbatch/gpu_check.sbatch --profile tiny -p matmul_size 256"
    assert checker_errors(good) == []


def test_guides_cover_the_workshop():
    names = [g.name for g in GUIDES]
    assert set(REQUIRED_TOPICS) <= set(names), set(REQUIRED_TOPICS) - set(names)
    for name, words in REQUIRED_TOPICS.items():
        text = (HANDSON / name).read_text(encoding="utf-8")
        missing = [w for w in words if w not in text]
        assert not missing, f"{name} does not mention {missing}"
        assert re.search(r"[\u3040-\u30ff]", text), f"{name} is not written in Japanese"


@pytest.mark.parametrize("guide", GUIDES + sorted((ROOT / "slides" / "decks").glob("*.md")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_command_refers_to_what_exists(guide):
    """The guides' commands, and the slides' (which show the same kit)."""
    errors = []
    for n, (_, body) in enumerate(blocks(guide), 1):
        for tokens in commands(body):
            errors += check_command(tokens, f"{guide.name} block {n}")
    assert not errors, "\n".join(dict.fromkeys(errors))


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_link_exists(guide):
    text = guide.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"^[a-z]+:", target):
            assert (guide.parent / target.split("#")[0]).exists(), f"{guide.name} links to {target}"


def test_cpu_safe_blocks_run(tmp_path):
    """Run every ```bash cpu-safe block, in guide order, from the checkout with this Python first."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COURSEKIT_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    ran = 0
    for guide in GUIDES:
        for n, (info, body) in enumerate(blocks(guide), 1):
            if "cpu-safe" not in info.split():
                continue
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (f"{guide.name} block {n} failed ({proc.returncode}):\n{body}\n"
                                          f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            ran += 1
    assert ran >= 5
    assert list((tmp_path / "runs").glob("00_gpu_check/*/metrics.json")), "the guide's run left no record"


# ----------------------------------------------------------------------------- names the kit writes
# Every file name and log pattern a guide or deck mentions must be one the kit really writes.
DECKS = sorted((ROOT / "slides" / "decks").glob("*.md"))
TEXTS = GUIDES + DECKS
ID = r"(?:\d+|<[^<>\s]+>|\*)"                    # a job or task id: 12345, <ジョブID>, *
LOG_MENTION = re.compile(r"(?<![\w./-])logs/(?:[A-Za-z0-9_%*.-]|<[^<>\s]+>)*")
RUN_MENTION = re.compile(r"(?<![\w./-])runs/([^\s`'\"|)(,、。]*)")
FILE_MENTION = re.compile(r"`([\w<>*.-]+\.(?:png|keras|ipynb|html))`")
STATUS_MENTION = re.compile(r"`(completed|failed|killed|preempted|incomplete|running|cancelled|canceled|"
                            r"timeout|finished|error)`")


def sbatch_scripts() -> dict[str, dict[str, str]]:
    """script name -> its #SBATCH directives."""
    out = {}
    for script in sorted((ROOT / "sbatch").glob("*.sbatch")):
        directives = {}
        for line in script.read_text(encoding="utf-8").splitlines():
            m = re.match(r"#SBATCH\s+(--[\w-]+)(?:[= ](\S+))?", line)
            if m:
                directives[m.group(1)] = m.group(2) or ""
        out[script.name] = directives
    return out


def log_patterns() -> list[re.Pattern]:
    """What a log file of the kit's scripts may be called in prose: the --output/--error pattern itself
    (logs/%x-%j.log), or filled in with the job name (or <ジョブ名>) and ids (or <ジョブID>, *)."""
    names = "|".join(re.escape(d["--job-name"]) for d in sbatch_scripts().values()) + r"|<[^<>\s]+>"
    pats = []
    for d in sbatch_scripts().values():
        for key in ("--output", "--error"):
            rx = re.escape(d[key])
            rx = rx.replace("%x", f"(?:%x|{names})")
            for spec in ("%j", "%A", "%a"):
                rx = rx.replace(re.escape(spec) if re.escape(spec) != spec else spec, f"(?:{spec}|{ID})")
            pats.append(re.compile(rx + "$"))
    return pats


def notebook_writes(stem: str) -> set[str]:
    """File names a run of this notebook leaves in its run folder: the runner's (executed notebook,
    HTML, metrics.json, an earlier attempt's copies) and the notebook's own (run.save_figure,
    run.plot_phases, run.file), as globs where the name is computed."""
    nb = NOTEBOOK_DIR / f"{stem}.ipynb"
    code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]
                     if c["cell_type"] == "code")
    names = {f"{stem}.ipynb", f"{stem}.html", "metrics.json", "*.attempt1.*"}

    def glob_of(literal: str) -> str:
        return re.sub(r"\{[^}]*\}", "*", literal)

    for m in re.finditer(r"save_figure\(\s*\w+\s*,\s*f?[\"']([^\"']+)[\"']", code):
        name = glob_of(m.group(1))
        names.add(name if name.endswith(".png") else name + ".png")
    for m in re.finditer(r"plot_phases\(\s*(?:[\"']([^\"']+)[\"'])?", code):
        names.add((m.group(1) or "phases") + ".png")
    for m in re.finditer(r"\.file\(\s*f?[\"']([^\"']+)[\"']", code):
        names.add(glob_of(m.group(1)))
    return names


def all_writes() -> set[str]:
    return set().union(*[notebook_writes(nb.stem) for nb in NOTEBOOK_DIR.glob("*.ipynb")])


def matches(name: str, written: set[str]) -> bool:
    import fnmatch
    name = PLACEHOLDER.sub("*", name)
    return any(fnmatch.fnmatch(name, w) or fnmatch.fnmatch(w, name) for w in written)


def test_log_names_match_the_sbatch_scripts():
    """logs/... in any guide or deck is what an sbatch/*.sbatch --output/--error pattern writes."""
    scripts = sbatch_scripts()
    assert scripts and all("--output" in d and "--error" in d for d in scripts.values())
    pats, errors, seen = log_patterns(), [], 0
    for path in TEXTS:
        for m in LOG_MENTION.finditer(path.read_text(encoding="utf-8")):
            mention = m.group(0).rstrip(".:")
            seen += 1
            if mention in ("logs", "logs/") or any(p.match(mention) for p in pats):
                continue
            errors.append(f"{path.parent.name}/{path.name}: {mention} is not a log name the kit's scripts "
                          f"write (their --output/--error: "
                          f"{sorted({d[k] for d in scripts.values() for k in ('--output', '--error')})})")
    assert seen >= 10
    assert not errors, "\n".join(dict.fromkeys(errors))


def test_log_checker_catches_wrong_names():
    pats = log_patterns()
    for good in ("logs/%x-%j.log", "logs/livedoor-12345.err", "logs/gpu_check-<ジョブID>.log",
                 "logs/sweep-<ジョブID>_<タスク番号>.log", "logs/<ジョブ名>-<ジョブID>.log", "logs/%x-%A_%a.err"):
        assert any(p.match(good) for p in pats), good
    for bad in ("logs/%x-%j.out", "logs/livedoor-12345.out", "logs/hello-12345.log",
                "logs/sweep-12345-3.log", "logs/slurm-12345.out"):
        assert not any(p.match(bad) for p in pats), bad


def test_run_folder_files_match_what_the_notebooks_write():
    """runs/<notebook>/<run>/<file> and file names like `confusion.png` or `classifier.keras` in any
    guide or deck are files a run of that notebook (or of some notebook) really writes."""
    errors, seen = [], 0
    written = all_writes()
    stems = {nb.stem for nb in NOTEBOOK_DIR.glob("*.ipynb")}
    for path in TEXTS:
        text = path.read_text(encoding="utf-8")
        where = f"{path.parent.name}/{path.name}"
        for m in RUN_MENTION.finditer(text):
            parts = [p for p in m.group(1).rstrip(".:").split("/")]
            if not parts or not parts[0] or parts[0].startswith(("<", "*")) or parts[0] in ("report.md", "report.csv"):
                continue
            seen += 1
            if parts[0] not in stems:
                errors.append(f"{where}: runs/{m.group(1)}: no notebook {parts[0]}")
                continue
            if len(parts) >= 3 and parts[2] and not matches(parts[2], notebook_writes(parts[0])):
                errors.append(f"{where}: runs/{m.group(1)}: {parts[0]} writes no {parts[2]} "
                              f"(it writes {sorted(notebook_writes(parts[0]))})")
        for m in FILE_MENTION.finditer(text):
            name = m.group(1)
            seen += 1
            if "/" in name or matches(name, written) or name.startswith(("<", "tf.", "torch.")):
                continue
            errors.append(f"{where}: `{name}` is not a file any notebook's run writes")
    assert seen >= 5
    assert not errors, "\n".join(dict.fromkeys(errors))


def test_notebook_writes_finds_the_known_files():
    assert {"confusion.png", "curves.png", "phases.png", "classifier.keras", "metrics.json",
            "02_livedoor_bert.ipynb", "02_livedoor_bert.html"} <= notebook_writes("02_livedoor_bert")
    assert "matmul.png" in notebook_writes("00_gpu_check")
    assert not matches("confusion.png", notebook_writes("00_gpu_check"))


def test_status_words_are_the_runners():
    """A run status a guide or deck names (`killed`, ...) is one the runner or the record writes."""
    code = "".join((ROOT / "lib" / "coursekit" / "harness" / f).read_text(encoding="utf-8")
                   for f in ("runner.py", "record.py", "report.py"))
    errors = [f"{p.name}: `{w}`" for p in TEXTS
              for w in STATUS_MENTION.findall(p.read_text(encoding="utf-8")) if f'"{w}"' not in code]
    assert not errors, "status words the kit never writes: " + ", ".join(errors)


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_gpu_requests_use_the_scripts_syntax(path):
    """One way to ask for GPUs everywhere: the scripts' --gpus-per-node=COUNT (the site file names the type;
    TYPE:COUNT where a line types one by hand); no --gres, no job-wide --gpus (it does not put COUNT on
    each node), no --gpus-per-task."""
    forms = {name: d.get("--gpus-per-node") for name, d in sbatch_scripts().items()}
    assert forms.pop("notebook.sbatch") is None, "notebook 05 is a report: no GPU"
    assert set(forms.values()) == {"1"}, forms
    errors = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for m in re.finditer(r"--gres[= ]gpu\S*|--gpus[= ]\S+|--gpus-per-(?!node)\w+|--gpus-per-node[= ]([\w<>]+(?::\w+)?)",
                             line):
            if m.group(1) and re.fullmatch(r"(?:(?:\w+|<[^<>\s]+>):)?(?:\d+|枚数|N)", m.group(1)):
                continue
            errors.append(line.strip())
    assert not errors, f"{path.name}: GPU requests in another syntax than --gpus-per-node=COUNT:\n" + "\n".join(errors)


def test_the_run_guides_sbatch_table_has_the_scripts_values():
    """Guide 04 explains gpu_check.sbatch line by line: each `--option=value` it names has that value."""
    directives = sbatch_scripts()["gpu_check.sbatch"]
    text = (HANDSON / "04_run_notebook.md").read_text(encoding="utf-8")
    named = re.findall(r"`(--[\w-]+)=([^`\s]+)`", text)
    wrong = [f"{o}={v} (script: {directives[o]})" for o, v in named if o in directives and directives[o] != v
             and o != "--gpus-per-node"]          # --gpus-per-node=<種類>:1 shows how to type a GPU type
    assert len([o for o, _ in named if o in directives]) >= 8
    assert not wrong, wrong


# ----------------------------------------------------------------------------- downloads
DATA_GUIDE = HANDSON / "02_data_models.md"


def test_every_file_a_full_run_needs_has_a_download_step():
    """Each full-profile path or hub model a notebook reads, and each URL the kit downloads from, is in
    the data guide; so is the bert_config.json that yoheikikuta/bert-japanese does not publish."""
    from coursekit.lessons import alt, corpora, livedoor

    text = DATA_GUIDE.read_text(encoding="utf-8")
    needed = []
    for nb in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        for p in params.declared(nb).values():
            if isinstance(p.default, str) and re.match(r"^(models/|data/|~/|[\w-]+/[\w.-]+$)", p.default) \
                    and not p.default.startswith(("notebooks/", "defs/")):
                needed.append((nb.stem, p.name, p.default))
    assert any(n == "bert_config" for _, n, _ in needed), needed
    missing = [f"{s}: {n} = {d}" for s, n, d in needed if d not in text]
    urls = [livedoor.URL, corpora.WIKI_DUMP_URL, *alt.ALT_URLS.values()]
    missing += [u for u in urls if u not in text]
    assert not missing, f"{DATA_GUIDE.name} has no download step for: " + "; ".join(missing)
    checkpoint = params.declared(NOTEBOOK_DIR / "02_livedoor_bert.ipynb")["bert_checkpoint"].default
    for suffix in (".index", ".data-00000-of-00001"):
        assert Path(checkpoint).name + suffix in text


def test_the_guides_bert_config_command_writes_what_notebook_02_reads(tmp_path):
    from coursekit.lessons import kerasbert

    line = next(l for b in blocks(DATA_GUIDE) for l in b[1].splitlines() if "write_config" in l)
    proc = subprocess.run(["bash", "-c", line.replace("python ", f"{sys.executable} ", 1)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = tmp_path / params.declared(NOTEBOOK_DIR / "02_livedoor_bert.ipynb")["bert_config"].default
    assert json.loads(path.read_text(encoding="utf-8")) == kerasbert.BERT_JAPANESE_CONFIG
