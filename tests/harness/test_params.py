import pytest

from coursekit.harness import params as profiles
from coursekit.harness.params import Param, ParameterError


def test_none_takes_the_profile_value_and_given_values_win():
    tiny = profiles.resolve("00_gpu_check", "tiny")
    full = profiles.resolve("00_gpu_check", "full", matmul_repeats=None)
    table = profiles.spec("00_gpu_check")
    assert tiny.profile == "tiny" and full.profile == "full"
    assert tiny.matmul_size == table["matmul_size"].tiny
    assert full.matmul_size == table["matmul_size"].full
    assert full.matmul_size > tiny.matmul_size  # the tiny profile really is smaller
    given = profiles.resolve("00_gpu_check", "tiny", matmul_size=64)
    assert given.matmul_size == 64 and given.matmul_repeats == table["matmul_repeats"].tiny


def test_unknown_name_is_refused_with_its_name_and_a_suggestion():
    with pytest.raises(ParameterError, match=r"unknown parameter 'matmul_sise'.*did you mean 'matmul_size'"):
        profiles.resolve("00_gpu_check", "tiny", matmul_sise=3)


@pytest.mark.parametrize("value", ["big", 2.5, True])
def test_wrong_type_is_refused_with_the_name(value):
    with pytest.raises(ParameterError, match="'matmul_size' expects int"):
        profiles.resolve("00_gpu_check", "tiny", matmul_size=value)


def test_bad_profile_and_unknown_notebook():
    with pytest.raises(ParameterError, match="profile must be one of"):
        profiles.resolve("00_gpu_check", "medium")
    with pytest.raises(ParameterError, match="no profile table for notebook '99_nothing'"):
        profiles.resolve("99_nothing", "tiny")


@pytest.mark.parametrize("text,expected", [("true", True), ("0", False), ("No", False), ("YES", True)])
def test_command_line_strings_are_converted(text, expected):
    assert profiles.coerce("flag", text, Param(bool, False, True)) is expected
    assert profiles.coerce("n", "12", Param(int, 1, 2)) == 12
    assert profiles.coerce("lr", "5e-5", Param(float, 1.0, 2.0)) == pytest.approx(5e-5)
    assert profiles.coerce("lr", 3, Param(float, 1.0, 2.0)) == 3.0


def test_bool_string_that_is_not_a_bool_is_refused():
    with pytest.raises(ParameterError, match="'flag' expects bool, got 'maybe'"):
        profiles.coerce("flag", "maybe", Param(bool, False, True))
