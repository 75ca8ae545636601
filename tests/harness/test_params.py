"""Parameters: the cell's literals, profile files beside the notebook, one resolution with checks."""
import pytest

from ..conftest import ROOT

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
    with pytest.raises(ParameterError, match=r"パラメータ 'step' はありません\('steps' のことですか\?\); "
                                             r"known / 使える名前: name, rate, steps, use_gpu"):
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
    with pytest.raises(ParameterError, match=r"no profile 'medium' \(no demo.medium.yaml\) / プロファイル 'medium' "
                                             r"はありません; profiles / 使えるプロファイル: full, small, tiny, typo"):
        params.resolve(nb, "medium")


def test_the_cell_must_hold_plain_literals(tmp_path):
    bad = write_notebook(tmp_path / "bad.ipynb", 'profile = "full"\nsteps = 10 * 3', "pass")
    with pytest.raises(ParameterError, match="line 2: steps must be a literal value"):
        params.declared(bad)
    bad = write_notebook(tmp_path / "bad2.ipynb", 'profile = "full"\nimport os', "pass")
    with pytest.raises(ParameterError, match="only `name = literal` assignments"):
        params.declared(bad)


def test_a_syntax_error_in_the_cell_names_the_notebook_and_the_line(tmp_path, runs_dir):
    from ..conftest import coursekit_cli

    bad = write_notebook(tmp_path / "typo.ipynb", 'profile = "full"\nsteps = 10 +  # optimizer steps', "pass")
    with pytest.raises(ParameterError, match=r"typo.ipynb parameters cell, line 2: syntax error: .*steps = 10 \+"):
        params.resolve(bad)
    proc = coursekit_cli("run", str(bad))   # what `run` and `submit` both call: one message, no traceback
    assert proc.returncode == 2 and "typo.ipynb parameters cell, line 2: syntax error" in proc.stderr
    assert "Traceback" not in proc.stderr and "2 行目が Python として読めません" in proc.stderr


@pytest.mark.parametrize("text,expected", [("true", True), ("0", False), ("No", False), ("YES", True)])
def test_command_line_strings_are_converted(text, expected):
    assert params.coerce("flag", text, bool) is expected
    assert params.coerce("n", "12", int) == 12
    assert params.coerce("lr", "5e-5", float) == pytest.approx(5e-5)
    assert params.coerce("lr", 3, float) == 3.0


def test_bool_string_that_is_not_a_bool_is_refused():
    with pytest.raises(ParameterError, match="'flag' expects bool, got 'maybe'"):
        params.coerce("flag", "maybe", bool)


RANGED = """profile = "full"        # which values
steps = 1000            # [1, inf) optimizer steps
val_fraction = 0.1      # (0, 1) share for validation
test_fraction = 0.1     # (0, 1) share for the test
seq_len = 128           # [8, 512] tokens per example
framework = "torch"     # {torch, tensorflow} the framework
frameworks = "torch"    # {torch, tensorflow}+ comma-separated
note = "x"              # free text, no check
# check: val_fraction + test_fraction < 1
"""


@pytest.fixture
def ranged(tmp_path):
    return write_notebook(tmp_path / "ranged.ipynb", RANGED, "print(steps)")


def test_ranges_and_choices_come_from_the_comments(ranged):
    table = params.declared(ranged)
    assert table["seq_len"].check == "[8, 512]" and table["seq_len"].help == "tokens per example"
    assert table["frameworks"].check == "{torch, tensorflow}+" and table["note"].check == ""
    assert params.declared_relations(ranged) == ["val_fraction + test_fraction < 1"]
    ok = params.resolve(ranged, None, [("seq_len", "512"), ("frameworks", "tensorflow,torch"), ("steps", "1")])
    assert ok["seq_len"] == 512 and ok["frameworks"] == "tensorflow,torch"


@pytest.mark.parametrize("name, value, message", [
    ("steps", "0", r"parameter 'steps' = 0 is out of range: it must be in \[1, inf\)"),
    ("val_fraction", "1", r"'val_fraction' = 1.0 is out of range: it must be in \(0, 1\)"),
    ("val_fraction", "0", r"'val_fraction' = 0.0 is out of range"),
    ("seq_len", "513", r"'seq_len' = 513 is out of range: it must be in \[8, 512\]"),
    ("seq_len", "4", r"'seq_len' = 4 is out of range"),
    ("framework", "tensorfow", r"'framework' = 'tensorfow': 'tensorfow' is not allowed; expected one of torch, tensorflow"),
    ("frameworks", "torch,jax", r"'jax' is not allowed; expected a comma-separated list of torch, tensorflow"),
    ("frameworks", "", r"'' is not allowed"),
    ("val_fraction", "nan", r"out of range"),
])
def test_impossible_values_stop_naming_parameter_value_and_limit(ranged, name, value, message):
    with pytest.raises(ParameterError, match=message):
        params.resolve(ranged, None, [(name, value)])


def test_range_and_choice_refusals_say_it_in_japanese_too(ranged):
    with pytest.raises(ParameterError, match=r"'seq_len' = 513 is out of range.* / パラメータ seq_len = 513 "
                                             r"は範囲の外です。\[8, 512\] の値にしてください"):
        params.resolve(ranged, None, [("seq_len", "513")])
    with pytest.raises(ParameterError, match=r"パラメータ framework に 'tensorfow' は使えません。torch, "
                                             r"tensorflow のどれかにしてください"):
        params.resolve(ranged, None, [("framework", "tensorfow")])
    with pytest.raises(ParameterError, match=r"パラメータが条件 val_fraction \+ test_fraction < 1 を満たしていません"):
        params.resolve(ranged, None, [("val_fraction", "0.6"), ("test_fraction", "0.5")])
    with pytest.raises(ParameterError, match="パラメータ seq_len には 整数 \\(int\\) を渡してください"):
        params.resolve(ranged, None, [("seq_len", "long")])


def test_relations_between_parameters_are_checked(ranged, tmp_path):
    with pytest.raises(ParameterError, match=r"break the check val_fraction \+ test_fraction < 1: "
                                             r"test_fraction = 0.5, val_fraction = 0.6"):
        params.resolve(ranged, None, [("val_fraction", "0.6"), ("test_fraction", "0.5")])
    (tmp_path / "ranged.big.yaml").write_text("profile: big\nseq_len: 1024\n")
    with pytest.raises(ParameterError, match=r"ranged.big.yaml: parameter 'seq_len' = 1024 is out of range"):
        params.resolve(ranged, "big")


def test_a_cell_whose_own_literal_breaks_its_range_or_a_bad_range_is_refused(tmp_path):
    bad = write_notebook(tmp_path / "bad.ipynb", 'profile = "full"  # p\nsteps = 0  # [1, 10] steps')
    with pytest.raises(ParameterError, match=r"bad.ipynb parameters cell, line 2: parameter 'steps' = 0"):
        params.declared(bad)
    odd = write_notebook(tmp_path / "odd.ipynb", 'profile = "full"  # p\nsteps = 3  # [one, 10] steps')
    with pytest.raises(ParameterError, match="cannot read the range"):
        params.declared(odd)
    rel = write_notebook(tmp_path / "rel.ipynb", 'profile = "full"  # p\nsteps = 3  # s\n# check: stepz > 0')
    with pytest.raises(ParameterError, match="names 'stepz', which is not a parameter"):
        params.resolve(rel)
    call = write_notebook(tmp_path / "call.ipynb", 'profile = "full"  # p\nsteps = 3  # s\n# check: __import__("os")')
    with pytest.raises(ParameterError, match="only parameter names"):
        params.resolve(call)


def test_submit_checks_ranges_of_every_grid_value_before_sbatch(ranged):
    from coursekit.harness import slurm

    sweep = ROOT / "sbatch" / "sweep.sbatch"
    assert slurm.check_job_arguments(sweep, [str(ranged), "-g", "seq_len", "64,128"], ROOT) == (ranged, 2)
    with pytest.raises(slurm.SubmitError, match=r"'seq_len' = 1024 is out of range"):
        slurm.check_job_arguments(sweep, [str(ranged), "-g", "seq_len", "64,1024"], ROOT)
