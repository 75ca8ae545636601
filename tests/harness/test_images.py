"""Each notebook's image holds what it imports.

For every notebook, the third-party modules it needs are DERIVED from the code: the imports of its code
cells, plus, through the coursekit modules it uses, the imports of the functions and classes it reaches
(a function-level call graph inside coursekit: `livedoor.report_table` reaches `import pandas`, the
runner that executes every notebook reaches papermill/nbconvert), plus `python -m MODULE` subprocesses
(wikiextractor) and sacrebleu's ja-mecab tokenizer (MeCab + ipadic). Then the .def that the notebook's
sbatch script runs it in (slurm.notebook_image) must install each one: pinned in its %post as in
requirements.txt, or pulled in by a package pinned there (numpy by TensorFlow, pandas by datasets).
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit.harness import containers, slurm
from ..conftest import ROOT

LIB = ROOT / "lib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQ = ROOT / "requirements.txt"
# Imports a notebook makes only where the image has the module, on purpose (said in its text).
_WHERE_PRESENT = "checks the frameworks the current image holds (find_spec), whichever they are"
OPTIONAL = {"00_gpu_check": {"torch": _WHERE_PRESENT, "tensorflow": _WHERE_PRESENT, "tf_keras": _WHERE_PRESENT}}
# Modules every notebook needs without importing them: the kernel papermill starts.
KERNEL = {"ipykernel"}
# What every base image has with its Python (the official GPU images and Debian's python3-pip alike).
BASE_PROVIDED = {"pip"}


# ----------------------------------------------------------------------------- derivation
def _module_file(name: str) -> Path | None:
    base = LIB.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """Absolute name of a (possibly relative) `from X import` inside coursekit module `module`."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    is_pkg = _module_file(module) is not None and _module_file(module).name == "__init__.py"
    base = parts if is_pkg else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Scope:
    """What one function/class (or a module's top level) needs: external top-level modules, coursekit
    (module, name) pairs it refers to, and strings (for `-m MODULE` and `ja-mecab`)."""

    def __init__(self):
        self.external: set[str] = set()
        self.refs: set[tuple[str, str | None]] = set()
        self.strings: list[str] = []


def _collect(module: str, tree: ast.AST, scope: _Scope, names: dict[str, tuple[str, str | None]],
             local_defs: set[str]) -> None:
    """Walk `tree` (without descending into nested defs at module level) filling `scope`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "coursekit":
                    target = alias.name
                    scope.refs.add((target, None))
                    names[(alias.asname or alias.name).split(".")[0]] = (target, None)
                else:
                    scope.external.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(module, node)
            if mod.split(".")[0] != "coursekit":
                if mod and mod != "__future__":
                    scope.external.add(mod.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                ref = (sub, None) if _module_file(sub) else (mod, alias.name)
                scope.refs.add(ref)
                names[alias.asname or alias.name] = ref
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in names and names[node.value.id][1] is None:
                scope.refs.add((names[node.value.id][0], node.attr))
        elif isinstance(node, ast.Name):
            if node.id in local_defs:
                scope.refs.add((module, node.id))
            elif node.id in names:
                scope.refs.add(names[node.id])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            scope.strings.append(node.value)
        elif isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for a, b in zip(items, items[1:]):
                if a == "-m" and isinstance(b, str):
                    scope.external.add(b.split(".")[0])  # python -m MODULE in a subprocess


_MODULES: dict[str, tuple[_Scope, dict[str, _Scope]]] = {}


def _analyse(module: str) -> tuple[_Scope, dict[str, _Scope]]:
    """A coursekit module's top-level scope and one scope per top-level function/class."""
    if module in _MODULES:
        return _MODULES[module]
    path = _module_file(module)
    assert path, f"coursekit module {module} not found under lib/"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names: dict[str, tuple[str, str | None]] = {}
    top = _Scope()
    top_only = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                            ast.ClassDef))], type_ignores=[])
    _collect(module, top_only, top, names, set(defs))
    # decorators and base classes are evaluated at import time too
    for node in defs.values():
        for expr in [*node.decorator_list, *getattr(node, "bases", [])]:
            _collect(module, expr, top, names, set(defs))
    scopes = {}
    for name, node in defs.items():
        scope = _Scope()
        _collect(module, node, scope, dict(names), set(defs) - {name})
        scopes[name] = scope
    _MODULES[module] = (top, scopes)
    return top, scopes


def _reach(start: _Scope) -> _Scope:
    """Everything a scope needs, following coursekit references to a fixed point."""
    total = _Scope()
    todo = [start]
    seen: set[tuple[str, str | None]] = set()
    while todo:
        scope = todo.pop()
        total.external |= scope.external
        total.strings += scope.strings
        for module, name in scope.refs:
            if _module_file(module) is None and "." in module:  # `pkg.attr` where attr is not a module
                module, name = module.rsplit(".", 1)[0], module.rsplit(".", 1)[1]
            for key in ((module, None), (module, name)):
                if key in seen or key[0].split(".")[0] != "coursekit" or _module_file(key[0]) is None:
                    continue
                seen.add(key)
                top, scopes = _analyse(key[0])
                if key[1] is None:
                    todo.append(top)
                    # a package's __init__ plus its parents are imported too
                    parent = key[0].rsplit(".", 1)[0]
                    if parent != key[0]:
                        todo.append(_ref_scope((parent, None)))
                elif key[1] in scopes:
                    todo.append(scopes[key[1]])
    return total


def _ref_scope(ref) -> _Scope:
    s = _Scope()
    s.refs.add(ref)
    return s


def _notebook_code(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def needed_modules(notebook: Path) -> set[str]:
    """Top-level third-party modules the notebook needs (stdlib and coursekit left out)."""
    scope = _Scope()
    _collect("__notebook__", ast.parse(_notebook_code(notebook)), scope, {}, set())
    scope.refs.add(("coursekit.harness.runner", "main"))  # `python -m coursekit run` executes it
    total = _reach(scope)
    modules = {m for m in total.external
               if m not in sys.stdlib_module_names and m not in ("coursekit", "__main__")}
    if "sacrebleu" in modules and any("ja-mecab" in s for s in total.strings):
        modules |= {"MeCab", "ipadic"}  # sacrebleu's ja-mecab tokenizer imports them when scoring
    return modules | KERNEL


def distribution(module: str) -> str:
    dists = md.packages_distributions().get(module)
    assert dists, f"no installed distribution provides the module {module!r} (.venv lacks it?)"
    return containers.normalise(dists[0])


def installed_by(pinned: set[str]) -> set[str]:
    """The distributions a pip install of `pinned` brings (Requires-Dist, transitively, this venv's
    metadata; extras left out)."""
    out, todo = set(), list(pinned)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            marker = req.split(";", 1)[1] if ";" in req else ""
            if "sys_platform == \"win32\"" in marker or "platform_system == \"Windows\"" in marker:
                continue
            todo.append(containers.normalise(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0]))
    return out


def image_def(notebook: Path) -> Path:
    # a notebook without a script of its own runs through sbatch/notebook.sbatch, in the default image
    return ROOT / "defs" / f"{slurm.notebook_image(notebook, ROOT)}.def"


# ----------------------------------------------------------------------------- tests
def test_the_derivation_finds_what_the_code_imports():
    """The analysis on what is known by hand: direct cell imports, a library function's local import,
    a `python -m` subprocess, the runner's own imports and sacrebleu's ja-mecab."""
    nb02 = needed_modules(ROOT / "notebooks/02_livedoor_bert.ipynb")
    assert {"tensorflow", "keras_bert", "numpy"} <= nb02, "imported in the cells"
    assert {"pandas", "sklearn", "sentencepiece"} <= nb02, "livedoor.report_table / baseline / kerasbert"
    assert {"papermill", "nbconvert", "yaml", "ipykernel"} <= nb02, "the runner and its kernel"
    assert "torch" not in nb02 and "transformers" not in nb02
    nb03 = needed_modules(ROOT / "notebooks/03_bart_translation.ipynb")
    assert {"torch", "transformers", "sacrebleu", "MeCab", "ipadic", "datasets"} <= nb03
    nb04 = needed_modules(ROOT / "notebooks/04_bert_pretraining.ipynb")
    assert "wikiextractor" in nb04, "corpora.extract_wikipedia runs python -m wikiextractor.WikiExtractor"


def test_every_notebook_runs_in_the_image_of_its_own_sbatch_script(monkeypatch):
    monkeypatch.delenv("CONTAINER", raising=False)
    images = {nb.stem: image_def(nb).name for nb in NOTEBOOKS}
    assert images["02_livedoor_bert"] == "keras-bert.def"
    assert images["03_bart_translation"] == images["04_bert_pretraining"] == "transformers.def"
    assert all((ROOT / "defs" / name).is_file() for name in images.values())


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebooks_image_installs_what_it_imports(notebook, monkeypatch):
    monkeypatch.delenv("CONTAINER", raising=False)
    definition = image_def(notebook)
    pins = containers.read_pins(REQ)
    pinned = {}
    for arg in containers.parse_def(definition).pip_packages():
        name, _, version = arg.partition("==")
        pinned[containers.normalise(name)] = version
    for name, version in pinned.items():
        assert pins.get(name) == version, f"{definition.name}: {name}=={version}, requirements.txt: {pins.get(name)}"
    brought = installed_by(set(pinned))
    optional = OPTIONAL.get(notebook.stem, {})
    missing = sorted(f"{m} ({distribution(m)})" for m in needed_modules(notebook) - set(optional) - BASE_PROVIDED
                     if distribution(m) not in brought)
    assert not missing, (f"{notebook.name} runs in {definition.name} (its sbatch script's image), which "
                         f"does not install: {', '.join(missing)}. Pin them in its %post as in requirements.txt.")
