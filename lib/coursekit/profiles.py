"""Profiles: one switch between the full cluster run and a tiny CPU run.

Every notebook's `parameters` cell has `profile = "full"` (real data, real pretrained model, GPU) or
`"tiny"` (a CPU run of a few minutes on small data and a tiny model), plus its other parameters with
the value `None`, which means "take the profile's value". The values of both profiles live here, in
one table per notebook, so no notebook copies them and the runner can check names and types.

    cfg = resolve("00_gpu_check", profile, matmul_size=matmul_size)
    cfg.matmul_size   # the value given, or the profile's
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

PROFILE_NAMES = ("tiny", "full")


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its type, its value in each profile, and what it means."""

    type: type
    tiny: Any
    full: Any
    help: str = ""


# Notebook stem -> parameter table. Every notebook's parameters cell declares exactly these names
# (plus `profile`); tests/test_notebooks.py checks that they agree.
NOTEBOOKS: dict[str, dict[str, Param]] = {
    "00_gpu_check": {
        "matmul_size": Param(int, 512, 8192, "side of the square matrices multiplied in the timing test"),
        "matmul_repeats": Param(int, 3, 20, "timed repetitions (after one warm-up)"),
        "frameworks": Param(str, "torch,tensorflow", "torch,tensorflow",
                            "comma-separated frameworks to check: torch, tensorflow"),
        "require_gpu": Param(bool, False, True, "fail the notebook when no GPU is visible"),
    },
    "05_results": {
        "runs_dir": Param(str, "", "", "folder of run folders; empty: $COURSEKIT_RUNS or runs/ of the kit"),
        "notebook_glob": Param(str, "*", "*", "glob on notebook names, e.g. 02_*"),
        "run_glob": Param(str, "*", "*", "glob on run folder names, e.g. a sweep job id like 4711_*"),
        "metric": Param(str, "", "", "metric to plot per run; empty: the first headline metric found"),
        "param": Param(str, "", "", "parameter on the x axis; empty: the first parameter that differs"),
    },
}


class ParameterError(ValueError):
    """A parameter name, type or profile that the notebook does not accept."""


def spec(notebook: str) -> dict[str, Param]:
    """The parameter table of a notebook (by stem, e.g. "00_gpu_check")."""
    try:
        return NOTEBOOKS[notebook]
    except KeyError:
        raise ParameterError(
            f"no profile table for notebook {notebook!r}; known: {', '.join(sorted(NOTEBOOKS))}"
        ) from None


def check_profile(profile: str) -> str:
    if profile not in PROFILE_NAMES:
        raise ParameterError(f"profile must be one of {PROFILE_NAMES}, got {profile!r}")
    return profile


def unknown_name_message(name: str, known: list[str], notebook: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown parameter {name!r} for {notebook}{hint}; "
            f"known: {', '.join(sorted(known))}")


def coerce(name: str, value: Any, param: Param) -> Any:
    """Check (and for strings from a command line, convert) one value to the declared type."""
    if value is None:
        return None
    want = param.type
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
            raise ParameterError(
                f"parameter {name!r} expects {want.__name__}, got {value!r}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not bool and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} expects {want.__name__}, got a bool ({value!r})")
    if not isinstance(value, want):
        raise ParameterError(
            f"parameter {name!r} expects {want.__name__}, got {type(value).__name__} ({value!r})")
    return value


def resolve(notebook: str, profile: str, /, **given: Any) -> SimpleNamespace:
    """Merge the parameters a notebook was given over its profile's values.

    A given value of None means "use the profile's value". Unknown names and wrong types raise
    ParameterError with the name in the message.
    """
    check_profile(profile)
    table = spec(notebook)
    values: dict[str, Any] = {"profile": profile}
    for name in given:
        if name not in table:
            raise ParameterError(unknown_name_message(name, list(table), notebook))
    for name, param in table.items():
        value = coerce(name, given.get(name), param)
        values[name] = getattr(param, profile) if value is None else value
    return SimpleNamespace(**values)
