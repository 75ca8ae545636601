"""Parameters: the cell's literals, profile files beside the notebook, one resolution with checks."""
import pytest

from coursekit.harness import params
from coursekit.harness.params import ParameterError

from ..conftest import write_notebook

CELL = 'profile = "full"   # which values\nsteps = 1000       # optimizer steps\nrate = 2e-5  # peak rate\nname = "big"\nuse_gpu = True'


@pytest.fixture
def nb(tmp_path):
    path = write_notebook(tmp_path / "demo.ipynb", CELL, "print(steps)")
    (tmp_path / "demo.tiny.yaml").write_text("profile: tiny\nsteps: 10   # minutes on a CPU\nuse_gpu: false\n")
    return path


def test_the_cell_declares_names_literals_types_and_comments(nb):
    table = params.declared(nb)
    assert list(table) == ["profile", "steps", "rate", "name", "use_gpu"]
    assert table["steps"].default == 1000 and table["steps"].type is int
    assert table["steps"].help == "optimizer steps"
    assert table["rate"].type is float and table["use_gpu"].type is bool
    assert table["name"].help == ""


def test_full_is_the_cell_and_a_profile_file_overrides_it(nb):
    full = params.resolve(nb)
    assert full == {"profile": "full", "steps": 1000, "rate": 2e-5, "name": "big", "use_gpu": True}
    tiny = params.resolve(nb, "tiny")
    assert tiny == {"profile": "tiny", "steps": 10, "rate": 2e-5, "name": "big", "use_gpu": False}
    given = params.resolve(nb, "tiny", [("steps", "7"), ("rate", "1")])
    assert given["steps"] == 7 and given["rate"] == 1.0 and isinstance(given["rate"], float)
    assert params.profiles(nb) == ["full", "tiny"]


def test_unknown_name_is_refused_with_a_suggestion(nb):
    with pytest.raises(ParameterError, match=r"unknown parameter 'step' for demo \(did you mean 'steps'\?\)"):
        params.resolve(nb, None, {"step": 3})
    with pytest.raises(ParameterError, match="--profile"):
        params.resolve(nb, None, {"profile": "tiny"})


@pytest.mark.parametrize("value", ["many", 2.5, True])
def test_wrong_type_is_refused_naming_the_parameter(nb, value):
    with pytest.raises(ParameterError, match="'steps' expects int"):
        params.resolve(nb, None, {"steps": value})


def test_a_bad_profile_file_is_named(nb, tmp_path):
    (tmp_path / "demo.small.yaml").write_text("profile: small\nsteps: lots\n")
    with pytest.raises(ParameterError, match=r"demo.small.yaml: parameter 'steps' expects int, got 'lots'"):
        params.resolve(nb, "small")
    (tmp_path / "demo.typo.yaml").write_text("stesp: 3\n")
    with pytest.raises(ParameterError, match=r"demo.typo.yaml: unknown parameter 'stesp'.*did you mean 'steps'"):
        params.resolve(nb, "typo")
    with pytest.raises(ParameterError, match=r"no profile 'medium' \(no demo.medium.yaml\); profiles: full, small, tiny, typo"):
        params.resolve(nb, "medium")


def test_the_cell_must_hold_plain_literals(tmp_path):
    bad = write_notebook(tmp_path / "bad.ipynb", 'profile = "full"\nsteps = 10 * 3', "pass")
    with pytest.raises(ParameterError, match="line 2: steps must be a literal value"):
        params.declared(bad)
    bad = write_notebook(tmp_path / "bad2.ipynb", 'profile = "full"\nimport os', "pass")
    with pytest.raises(ParameterError, match="only `name = literal` assignments"):
        params.declared(bad)


@pytest.mark.parametrize("text,expected", [("true", True), ("0", False), ("No", False), ("YES", True)])
def test_command_line_strings_are_converted(text, expected):
    assert params.coerce("flag", text, bool) is expected
    assert params.coerce("n", "12", int) == 12
    assert params.coerce("lr", "5e-5", float) == pytest.approx(5e-5)
    assert params.coerce("lr", 3, float) == 3.0


def test_bool_string_that_is_not_a_bool_is_refused():
    with pytest.raises(ParameterError, match="'flag' expects bool, got 'maybe'"):
        params.coerce("flag", "maybe", bool)
