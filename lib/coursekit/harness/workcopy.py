"""`python -m coursekit open`: a notebook's parameterised copy to open in JupyterLab.

    python -m coursekit open notebooks/02_livedoor_bert.ipynb --profile tiny [-p NAME VALUE ...] [--to DIR]
    python -m coursekit open --profile tiny          # every lesson notebook of the kit

A lesson's parameters cell holds the values of the full profile (the cluster run). Opened as it is, a
notebook runs those. `open` writes a copy whose values are a profile's (and the -p values), the way
papermill's `--prepare-only` makes one: the parameters are resolved once with `params.resolve` (the same
checks and values as `coursekit run`) and injected by papermill as a cell tagged `injected-parameters`
right after the parameters cell; nothing is executed. Run from the top in JupyterLab, the copy does what
`coursekit run NOTEBOOK --profile P -p ...` does.

The copy is `<stem>.<profile>.ipynb` in the work folder: `work/` of the kit's checkout by default
(git-ignored; inside the kit, so the copy's kernel finds the kit's runs/ folder and the exercises'
solutions like the original), or --to DIR. An existing copy is kept (a student's edits are never
overwritten) unless --force is given.

Relative paths in the values (`models/bert-japanese/...`, `defs/keras-bert.def`) are relative to the
kit, where `coursekit run` works; the copy's kernel works in the copy's folder. So a relative path value
that names an existing file or folder becomes absolute in the copy: values of the notebook and its
profile relative to the kit, -p values relative to the folder the command was typed in (where
`coursekit run` would read them). Other values (hub ids, keywords, missing files) stay as they are.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from . import params as params_mod
from .params import ParameterError
from .runs import project_root

WORK_FOLDER = "work"        # in the kit's checkout (git-ignored)
INJECTED_TAG = "injected-parameters"
_NOT_A_PATH = re.compile(r"^(~|[A-Za-z][\w+.-]*:)")    # ~/..., URLs, hf:NAME


class OpenError(ValueError):
    """A notebook or a folder that `open` cannot use; the message says what to do."""


def kit_root(notebook: Path | None = None) -> Path | None:
    """The kit's checkout: the one the notebook lies in, else the one around the current folder."""
    for start in ([notebook.resolve().parent] if notebook else []) + [Path.cwd()]:
        root = project_root(start)
        if root is not None:
            return root
    return None


def default_folder(notebook: Path | None = None) -> Path:
    """work/ of the kit's checkout (of the notebook, else of the current folder), else ./work."""
    root = kit_root(notebook)
    return (root if root else Path.cwd()) / WORK_FOLDER


def lesson_notebooks(root: Path | None = None) -> list[Path]:
    """Every lesson notebook of the kit (notebooks/NN_*.ipynb)."""
    root = root or kit_root()
    if root is None or not (root / "notebooks").is_dir():
        raise OpenError("no kit checkout here: run `coursekit open` in the kit's folder, or name the notebooks / "
                        "教材のフォルダの中で実行するか、ノートブックを指定してください")
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def copy_name(notebook: Path, profile: str) -> str:
    return f"{notebook.stem}.{profile}.ipynb"


def _absolute_if_present(value: Any, base: Path) -> Any:
    """A relative path string that exists under `base`, made absolute; anything else unchanged."""
    if not isinstance(value, str) or not value.strip() or _NOT_A_PATH.match(value) or "\n" in value:
        return value
    path = Path(value)
    if path.is_absolute():
        return value
    try:
        return str((base / path).absolute()) if (base / path).exists() else value
    except OSError:   # a name too long for the file system: not a path
        return value


def copy_values(notebook: Path, profile: str | None, given: list[tuple[str, Any]] | None = None,
                cwd: Path | None = None) -> dict[str, Any]:
    """What the copy's injected cell assigns: every value that differs from the parameters cell's
    literal (and `profile`), resolved and checked as `coursekit run` does; relative paths that exist
    made absolute (see the module's text). Raises ParameterError naming the parameter."""
    values = params_mod.resolve(notebook, profile, given)
    table = params_mod.declared(notebook)
    kit = kit_root(notebook) or notebook.resolve().parent
    from_user = {name for name, _ in (given or [])}
    out: dict[str, Any] = {"profile": values["profile"]}
    for name, value in values.items():
        if name == "profile":
            continue
        value = _absolute_if_present(value, (cwd or Path.cwd()) if name in from_user else kit)
        if value != table[name].default or type(value) is not type(table[name].default):
            out[name] = value
    return out


def _label(profile: str, given: list[tuple[str, Any]]) -> str:
    extra = "".join(f" -p {name} {value}" for name, value in given)
    return (f"Parameters of profile {profile}{extra} (python -m coursekit open), overriding the cell above.\n"
            f"# プロファイル {profile}{extra} の値です。上の parameters セルの値をこのセルが上書きします"
            f"(書き換えてから上から順に実行できます)。")


def plan_copy(notebook: str | Path, profile: str | None = None, given: list[tuple[str, Any]] | None = None,
              to: str | Path | None = None) -> tuple[Path, Path, dict[str, Any]]:
    """Check a copy before anything is written: (notebook, copy path, injected values).
    Raises ParameterError or OpenError."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise OpenError(f"notebook not found: {notebook} / ノートブックが見つかりません")
    values = copy_values(notebook, profile, list(given or []))
    folder = Path(to).expanduser() if to else default_folder(notebook)
    return notebook, folder / copy_name(notebook, values["profile"]), values


def write_copy(notebook: str | Path, profile: str | None = None, given: list[tuple[str, Any]] | None = None,
               to: str | Path | None = None, force: bool = False) -> tuple[Path, bool]:
    """Write the parameterised copy of `notebook`; returns (path, written). An existing copy is kept
    (written=False) unless `force`. Raises ParameterError or OpenError."""
    notebook, out, values = plan_copy(notebook, profile, given, to)
    return _write(notebook, out, values, list(given or []), force)


def _write(notebook: Path, out: Path, values: dict[str, Any], given: list, force: bool) -> tuple[Path, bool]:
    import nbformat
    import papermill

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpenError(f"cannot create the work folder {out.parent} ({exc.strerror or exc}); pass a writable "
                        f"one with --to / 作業フォルダ {out.parent} を作れません。--to で書き込めるフォルダを"
                        "指定してください") from None
    if out.exists() and not force:
        return out, False
    tmp = out.with_name(f".{out.stem}.tmp.ipynb")
    papermill.execute_notebook(str(notebook), str(tmp), parameters=values, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    nb = nbformat.read(str(tmp), as_version=4)
    for cell in nb.cells:   # papermill's comment "# Parameters" says little to a student: say what the cell is
        if INJECTED_TAG in cell.metadata.get("tags", []):
            cell.source = re.sub(r"^# Parameters\s*$", "# " + _label(values["profile"], given),
                                 cell.source, count=1, flags=re.M)
    nb.metadata.get("papermill", {})["output_path"] = str(out)
    nb.metadata.setdefault("coursekit", {})["open"] = {
        "source": notebook.name, "profile": values["profile"], "parameters": [list(p) for p in given]}
    nbformat.write(nb, str(tmp))
    tmp.replace(out)
    return out, True


def injected_values(copy: str | Path) -> dict[str, Any]:
    """The values the injected cell of a copy assigns (literals only)."""
    import nbformat

    nb = nbformat.read(str(copy), as_version=4)
    for cell in nb.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            return {name: p.default for name, p in params_mod.parse_cell(cell.source, "injected cell").items()}
    return {}


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit open", allow_abbrev=False,
        description="Write a copy of notebooks whose parameters are a profile's (papermill --prepare-only), "
                    "to open in JupyterLab: <stem>.<profile>.ipynb in work/ of the kit. "
                    "Nothing is executed. / プロファイルの値を入れたノートブックのコピーを作ります(JupyterLab で開く用)。")
    parser.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                        help="notebooks to copy (default: every lesson notebook, notebooks/NN_*.ipynb)")
    parser.add_argument("--profile", default=None,
                        help="tiny: <notebook>.tiny.yaml, a CPU run in minutes; full: the cell's own values "
                             "(default: full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a notebook parameter (repeatable), as in `coursekit run`")
    parser.add_argument("--to", type=Path, default=None, metavar="DIR",
                        help="folder of the copies (default: work/ in the kit's checkout)")
    parser.add_argument("--force", action="store_true", help="replace an existing copy (your edits in it are lost)")
    return parser


def check_command_line(argv: list[str], cwd: Path | None = None) -> list[tuple[Path, Path, dict[str, Any]]]:
    """Everything `open ARGV` checks, typed in `cwd` (default: here), without writing: [(notebook, copy,
    injected values)]. Raises OpenError (also for a usage error) or ParameterError with the message `open`
    would print; for `coursekit submit` of sbatch/jupyter.sbatch, whose job gives its arguments to `open`
    in the kit's folder."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit:
        last = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "usage"
        raise OpenError(last.split("error: ", 1)[-1]) from None
    with contextlib.chdir(cwd or Path.cwd()):
        return _plans(args)


def _plans(args) -> list[tuple[Path, Path, dict[str, Any]]]:
    given = [tuple(p) for p in args.parameter]
    notebooks = args.notebooks or lesson_notebooks()
    return [plan_copy(nb, args.profile, given, args.to) for nb in notebooks]   # all checked before any write


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = [tuple(p) for p in args.parameter]
    try:
        written = [_write(nb, out, values, given, args.force) for nb, out, values in _plans(args)]
    except (ParameterError, OpenError) as exc:
        print(f"coursekit open: error: {exc}", file=sys.stderr)
        return 2
    for path, new in written:
        if new:
            print(f"coursekit open: wrote {path} / コピーを作りました", file=sys.stderr)
        else:
            print(f"coursekit open: kept {path}: it exists (your edits stay); --force replaces it / "
                  "コピーはもうあるので残しました(--force で作り直します)", file=sys.stderr)
        print(path)
    return 0
