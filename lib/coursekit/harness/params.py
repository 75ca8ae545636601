"""Notebook parameters: the values in the notebook's own `parameters` cell, plus override files.

A notebook's first code cell (tagged `parameters`) assigns plain literals, the values of the cluster
run (`profile = "full"`): what a student sees in JupyterLab is what runs. Another profile is a small
YAML file beside the notebook that overrides some of them, e.g. `notebooks/02_livedoor_bert.tiny.yaml`:

    profile: tiny
    per_category: 300       # a balanced subset: minutes on a laptop CPU

The runner resolves the values once (cell literals <- profile file <- `-p NAME VALUE`), checks names
and types against the cell's literals, and injects the result with papermill. Nothing else resolves.
"""
from __future__ import annotations

import ast
import difflib
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


def _cell_source(notebook: Path) -> str:
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "parameters" in cell.metadata.get("tags", []):
                return cell.source
            break
    raise ParameterError(f"{notebook.name}: the first code cell must be tagged `parameters`")


def parse_cell(source: str, where: str = "parameters cell") -> dict[str, Parameter]:
    """Every `name = literal  # comment` line of a parameters cell, in order.

    Anything else (a computed value, a call) is refused: the cell must show plain values."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: dict[str, Parameter] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{where}, line {node.lineno}: only `name = literal` assignments belong here")
        name = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{where}, line {node.lineno}: {name} must be a literal value") from None
        rest = lines[node.lineno - 1].encode("utf-8")[node.value.end_col_offset:].decode("utf-8")
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""  # ast's offsets count bytes
        out[name] = Parameter(name, value, type(value), comment)
    return out


def declared(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook declares, from its parameters cell."""
    notebook = Path(notebook)
    return parse_cell(_cell_source(notebook), f"{notebook.name} parameters cell")


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
    return f"unknown parameter {name!r} for {notebook}{hint}; known: {', '.join(sorted(known))}"


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
            raise ParameterError(f"parameter {name!r} expects {want.__name__}, got {value!r}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not bool and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} expects {want.__name__}, got a bool ({value!r})")
    if not isinstance(value, want):
        raise ParameterError(
            f"parameter {name!r} expects {want.__name__}, got {type(value).__name__} ({value!r})")
    return value


def read_profile(notebook: Path, profile: str) -> dict[str, Any]:
    """The overrides of a profile file (empty for "full", the cell's own values)."""
    if profile == DEFAULT_PROFILE:
        return {}
    path = profile_file(notebook, profile)
    if not path.is_file():
        raise ParameterError(f"{notebook.name} has no profile {profile!r} (no {path.name}); "
                             f"profiles: {', '.join(profiles(notebook))}")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path.name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path.name} must map parameter names to values")
    return data


def resolve(notebook: str | Path, profile: str | None = None,
            given: list[tuple[str, Any]] | dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value for this run: the cell's literals, then the profile file, then `given`.

    Unknown names and wrong types raise ParameterError naming the parameter (and the file)."""
    notebook = Path(notebook)
    table = declared(notebook)
    if "profile" not in table:
        raise ParameterError(f"{notebook.name} has no `profile` in its parameters cell")
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
                raise ParameterError("set the profile with --profile NAME, not -p profile")
            if name not in known:
                message = unknown_name_message(name, known, notebook.stem)
                raise ParameterError(f"{source}: {message}" if source else message)
            try:
                values[name] = coerce(name, value, table[name].type)
            except ParameterError as exc:
                raise ParameterError(f"{source}: {exc}" if source else str(exc)) from None
    values["profile"] = profile or table["profile"].default
    return values
