"""Notebook parameters: the values in the notebook's own `parameters` cell, plus override files.

A notebook's first code cell (tagged `parameters`) assigns plain literals, the values of the cluster
run (`profile = "full"`): what a student sees in JupyterLab is what runs. Another profile is a small
YAML file beside the notebook that overrides some of them, e.g. `notebooks/02_livedoor_bert.tiny.yaml`:

    profile: tiny
    per_category: 300       # a balanced subset: minutes on a laptop CPU

The runner resolves the values once (cell literals <- profile file <- `-p NAME VALUE`), checks names
and types against the cell's literals, and injects the result with papermill. Nothing else resolves.

Allowed values are declared in the cell too, so impossible values stop before any work (in `run` and
in `submit`, for every grid value). A parameter's comment may start with its range or choices:

    seq_len = 512            # [8, 8192] token ids per article         8 <= seq_len <= 8192
    val_fraction = 0.1       # (0, 1) share of articles for validation  0 < val_fraction < 1
    per_category = 0         # [0, inf) articles per genre; 0: all      no upper limit
    bleu_tokenize = "char"   # {ja-mecab, char} sacrebleu tokenizer      one of these
    frameworks = "torch"     # {torch, tensorflow}+ comma-separated      one or more of these, by commas

and a comment line `# check: EXPRESSION` states a relation between parameters (names, numbers,
+ - * / // %, comparisons, and/or/not), e.g. `# check: val_fraction + test_fraction < 1`.
"""
from __future__ import annotations

import ast
import difflib
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "full"  # the values written in the cells: the cluster run the workshop is for


class ParameterError(ValueError):
    """A parameter name, type, value or profile that the notebook does not accept."""


@dataclass(frozen=True)
class Parameter:
    """One assignment of a parameters cell: its name, literal value, type and comment."""

    name: str
    default: Any
    type: type
    help: str = ""
    check: str = ""   # the range or choices at the start of the comment, e.g. "[1, 4096]", "{a, b}"


# A range or a set of choices at the start of a parameter's comment.
_CHECK = re.compile(r"^\s*(?P<check>[\[(][^\])]*[\])]|\{[^}]*\}\+?)(?=\s|$)\s*(?P<rest>.*)$")
_RELATION = re.compile(r"^\s*#\s*check:\s*(?P<expr>.+?)\s*$")


def _cell_source(notebook: Path) -> str:
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "parameters" in cell.metadata.get("tags", []):
                return cell.source
            break
    raise ParameterError(f"{notebook.name}: the first code cell must be tagged `parameters` / "
                         "最初のコードセルに `parameters` タグを付けてください")


def parse_cell(source: str, where: str = "parameters cell") -> dict[str, Parameter]:
    """Every `name = literal  # comment` line of a parameters cell, in order.

    Anything else (a computed value, a call) is refused: the cell must show plain values; a syntax
    error is a ParameterError naming `where` and the line."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        raise ParameterError(f"{where}, line {exc.lineno}: syntax error: {exc.msg}" + (f": {text}" if text else "")
                             + f" / パラメータのセルの {exc.lineno} 行目が Python として読めません({exc.msg})"
                             ) from None
    lines = source.splitlines()
    out: dict[str, Parameter] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{where}, line {node.lineno}: only `name = literal` assignments belong here / "
                                 "このセルには `名前 = 値` の行だけを書きます")
        name = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{where}, line {node.lineno}: {name} must be a literal value / "
                                 f"{name} には計算ではなく値そのものを書きます") from None
        rest = lines[node.lineno - 1].encode("utf-8")[node.value.end_col_offset:].decode("utf-8")
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""  # ast's offsets count bytes
        check, match = "", _CHECK.match(comment)
        if match:
            check, comment = match["check"], match["rest"]
            try:
                check_value(name, value, check)  # a malformed range, or a literal outside its own range
            except ParameterError as exc:
                raise ParameterError(f"{where}, line {node.lineno}: {exc}") from None
        out[name] = Parameter(name, value, type(value), comment, check)
    return out


def relations(source: str) -> list[str]:
    """The `# check: EXPRESSION` lines of a parameters cell."""
    return [m["expr"] for line in source.splitlines() if (m := _RELATION.match(line))]


def _number(text: str, name: str, check: str) -> float:
    text = text.strip()
    if text in ("inf", "+inf", "-inf", ""):
        return -math.inf if text == "-inf" else math.inf
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"parameter {name!r}: cannot read the range {check} (bounds are numbers "
                             "or inf)") from None


def check_value(name: str, value: Any, check: str) -> None:
    """Raise ParameterError when `value` is outside `check` ("[1, 4096]", "(0, 1)", "[0, inf)",
    "{torch, tensorflow}", "{torch, tensorflow}+" for a comma-separated list of them)."""
    if not check:
        return
    if check.startswith("{"):
        multi = check.endswith("+")
        choices = [c.strip() for c in check.rstrip("+")[1:-1].split(",") if c.strip()]
        items = [v.strip() for v in str(value).split(",")] if multi else [str(value)]
        bad = [v for v in items if v not in choices] or ([] if items and any(items) else [""])
        if bad:
            what = "a comma-separated list of" if multi else "one of"
            ja = "から選んでカンマ区切りで" if multi else "のどれかに"
            raise ParameterError(f"parameter {name!r} = {value!r}: {bad[0]!r} is not allowed; "
                                 f"expected {what} {', '.join(choices)} / パラメータ {name} に "
                                 f"{bad[0]!r} は使えません。{', '.join(choices)} {ja}してください")
        return
    lo_text, sep, hi_text = check[1:-1].partition(",")
    if not sep:
        raise ParameterError(f"parameter {name!r}: cannot read the range {check} (write [low, high])")
    lo, hi = _number(lo_text, name, check), _number(hi_text, name, check)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"parameter {name!r}: a range {check} needs a number, the cell has {value!r} / "
                             f"範囲 {check} には数の値が要ります")
    low_ok = value > lo if check[0] == "(" else value >= lo
    high_ok = value < hi if check[-1] == ")" else value <= hi
    if not (low_ok and high_ok) or (isinstance(value, float) and math.isnan(value)):
        raise ParameterError(f"parameter {name!r} = {value!r} is out of range: it must be in {check} / "
                             f"パラメータ {name} = {value!r} は範囲の外です。{check} の値にしてください")


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
        ast.USub: operator.neg, ast.Not: operator.not_}


def _evaluate(node: ast.AST, values: dict[str, Any], expr: str) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values, expr)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise ParameterError(f"check {expr!r} names {node.id!r}, which is not a parameter")
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left, values, expr), _evaluate(node.right, values, expr))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand, values, expr))
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, values, expr) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values, expr)
        for op, comparator in zip(node.ops, node.comparators):
            right = _evaluate(comparator, values, expr)
            if type(op) not in _OPS or not _OPS[type(op)](left, right):
                return False
            left = right
        return True
    raise ParameterError(f"check {expr!r}: only parameter names, numbers, arithmetic, comparisons and "
                         "and/or/not are allowed")


def check_relations(exprs: list[str], values: dict[str, Any], where: str = "") -> None:
    """Raise ParameterError for the first relation that the values break, naming the values."""
    for expr in exprs:
        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError:
            raise ParameterError(f"{where}check {expr!r} is not a valid expression") from None
        if not _evaluate(tree, values, expr):
            names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
            given = ", ".join(f"{n} = {values[n]!r}" for n in names)
            raise ParameterError(f"parameters break the check {expr}: {given} / "
                                 f"パラメータが条件 {expr} を満たしていません({given})")


def declared(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook declares, from its parameters cell."""
    notebook = Path(notebook)
    return parse_cell(_cell_source(notebook), f"{notebook.name} parameters cell")


def declared_relations(notebook: str | Path) -> list[str]:
    """The `# check:` relations of a notebook's parameters cell."""
    return relations(_cell_source(Path(notebook)))


def profile_file(notebook: Path, profile: str) -> Path:
    return notebook.with_name(f"{notebook.stem}.{profile}.yaml")


def profiles(notebook: str | Path) -> list[str]:
    """The profiles a notebook has: "full" (its cell) and one per `<stem>.<name>.yaml` beside it."""
    notebook = Path(notebook)
    found = {p.name[len(notebook.stem) + 1:-len(".yaml")] for p in notebook.parent.glob(f"{notebook.stem}.*.yaml")}
    return [DEFAULT_PROFILE, *sorted(found - {DEFAULT_PROFILE})]


def unknown_name_message(name: str, known: list[str], notebook: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    hint_ja = f"({close[0]!r} のことですか?)" if close else ""
    return (f"unknown parameter {name!r} for {notebook}{hint} / {notebook} にパラメータ {name!r} は"
            f"ありません{hint_ja}; known / 使える名前: {', '.join(sorted(known))}")


_TYPE_JA = {int: "整数 (int) ", float: "数 (float) ", bool: "True か False ", str: "文字列 (str) "}


def coerce(name: str, value: Any, want: type) -> Any:
    """Check one value against the type of the cell's literal; strings from a command line are converted."""
    if isinstance(value, str) and want is not str:
        text = value.strip()
        try:
            if want is bool:
                low = text.lower()
                if low in ("true", "1", "yes"):
                    return True
                if low in ("false", "0", "no"):
                    return False
                raise ValueError(text)
            return want(text)
        except ValueError:
            raise ParameterError(f"parameter {name!r} expects {want.__name__}, got {value!r} / "
                                 f"パラメータ {name} には {_TYPE_JA.get(want, want.__name__)}を渡してください") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not bool and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} expects {want.__name__}, got a bool ({value!r}) / "
                             f"パラメータ {name} には {_TYPE_JA.get(want, want.__name__)}を渡してください")
    if not isinstance(value, want):
        raise ParameterError(
            f"parameter {name!r} expects {want.__name__}, got {type(value).__name__} ({value!r}) / "
            f"パラメータ {name} には {_TYPE_JA.get(want, want.__name__)}を渡してください")
    return value


def read_profile(notebook: Path, profile: str) -> dict[str, Any]:
    """The overrides of a profile file (empty for "full", the cell's own values)."""
    if profile == DEFAULT_PROFILE:
        return {}
    path = profile_file(notebook, profile)
    if not path.is_file():
        raise ParameterError(f"{notebook.name} has no profile {profile!r} (no {path.name}) / "
                             f"プロファイル {profile!r} はありません; profiles / 使えるプロファイル: "
                             f"{', '.join(profiles(notebook))}")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path.name} is not valid YAML / YAML として読めません: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path.name} must map parameter names to values / "
                             "`名前: 値` の行だけを書きます")
    return data


def resolve(notebook: str | Path, profile: str | None = None,
            given: list[tuple[str, Any]] | dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value for this run: the cell's literals, then the profile file, then `given`.

    Unknown names, wrong types, values outside their declared range or choices and broken `# check:`
    relations raise ParameterError naming the parameter, the value and the limit (and the file)."""
    notebook = Path(notebook)
    table = declared(notebook)
    if "profile" not in table:
        raise ParameterError(f"{notebook.name} has no `profile` in its parameters cell / "
                             "parameters セルに `profile` がありません")
    values = {name: p.default for name, p in table.items()}
    known = [n for n in table if n != "profile"]
    layers = [(profile_file(notebook, profile).name if profile and profile != DEFAULT_PROFILE else "",
               read_profile(notebook, profile or DEFAULT_PROFILE))]
    items = list(given.items()) if isinstance(given, dict) else list(given or [])
    layers.append(("", dict(items)))
    for source, layer in layers:
        for name, value in layer.items():
            if name == "profile":
                if source:  # a profile file names itself
                    continue
                raise ParameterError("set the profile with --profile NAME, not -p profile / "
                                     "プロファイルは -p ではなく --profile 名前 で選びます")
            if name not in known:
                message = unknown_name_message(name, known, notebook.stem)
                raise ParameterError(f"{source}: {message}" if source else message)
            try:
                values[name] = coerce(name, value, table[name].type)
                check_value(name, values[name], table[name].check)
            except ParameterError as exc:
                raise ParameterError(f"{source}: {exc}" if source else str(exc)) from None
    values["profile"] = profile or table["profile"].default
    check_relations(declared_relations(notebook), values)
    return values
