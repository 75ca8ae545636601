"""The library's two layers: the harness never imports lesson code, lesson code never imports the
harness, neither names a notebook, and no module imports another in a cycle."""
import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "coursekit"
MODULES = sorted(p for p in LIB.rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Absolute names of the coursekit modules a file imports (at any depth of its code)."""
    package = ".".join(path.relative_to(LIB.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    base = package.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("coursekit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base.split(".")[: len(base.split(".")) - node.level + 1]
                module = ".".join(parent + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("coursekit"):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names
                          if (LIB.parent / module.replace(".", "/") / f"{a.name}.py").exists()}
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("harness", "lessons") else "top"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIB)))
def test_layers_do_not_reach_into_each_other(path):
    own = layer(".".join(path.relative_to(LIB.parent).with_suffix("").parts))
    other = {"harness": "lessons", "lessons": "harness"}.get(own)
    if other is None:
        return
    crossing = sorted(m for m in imports(path) if layer(m) == other)
    assert not crossing, f"{path.name} ({own}) imports {crossing}"


@pytest.mark.parametrize("path", sorted((LIB / "harness").glob("*.py")), ids=lambda p: p.name)
def test_the_harness_names_no_notebook(path):
    import re

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
               and id(n) not in docstrings]  # code, not the examples in docstrings and comments
    named = [m for s in strings for m in re.findall(r"\b0\d_[a-z_]+\b", s)]
    assert not named, f"{path.name} names notebooks: {sorted(set(named))}"


def test_no_import_cycles():
    graph = {}
    for path in MODULES:
        name = ".".join(path.relative_to(LIB.parent).with_suffix("").parts)
        graph[name] = {m for m in imports(path) if m != name and m.rsplit(".", 1)[-1] != "__init__"}
    graph = {k: {m for m in v if m in graph} for k, v in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, cycles


def test_the_report_s_headline_metrics_are_logged_by_a_notebook():
    """contracts.HEADLINE_METRICS names metrics the notebooks log: a metric renamed in a notebook fails
    here instead of silently dropping out of `coursekit report`'s table."""
    import json

    from IPython.core.inputtransformer2 import TransformerManager

    from coursekit.contracts import HEADLINE_METRICS

    logged = set()
    for path in sorted((LIB.parents[1] / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = TransformerManager().transform_cell("".join(cell["source"]))  # %magics, !commands
            try:
                tree = ast.parse(source)
            except SyntaxError:  # an exercise's answer cell, for the student to complete
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "log":
                    logged |= {k.arg for k in node.keywords if k.arg}
    assert not set(HEADLINE_METRICS) - logged, f"no notebook logs {sorted(set(HEADLINE_METRICS) - logged)}"
