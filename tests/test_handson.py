"""The hands-on guides stay true to the kit: every command names files, sbatch scripts, notebooks,
`coursekit` subcommands, options and parameters that exist, and the blocks marked ```bash cpu-safe run.
The same command check covers the bash blocks of the slides."""
from __future__ import annotations

import functools
import glob
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


def blocks(guide: Path) -> list[tuple[str, str]]:
    """(info string after ```bash, body) of every bash block."""
    return [(m.group(1).strip(), m.group(2)) for m in BLOCK.finditer(guide.read_text(encoding="utf-8"))]


def commands(body: str) -> list[list[str]]:
    """Simple commands of a block as token lists: continuations joined, comments dropped, split at
    && || ; | and $( ), leading VAR=value assignments removed."""
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
            elif current or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
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
            if part.startswith(REPO_DIRS) and "PLACEHOLDER" not in part and not part.endswith(BUILT) \
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
