"""Every committed notebook is clean (each notebook's own run test is tests/notebooks/test_<stem>.py)."""
import re

import nbformat
import papermill
import pytest

from coursekit.harness import params

from ..conftest import NOTEBOOKS

ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in ALL][:1] == ["00_gpu_check.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs_with_parameters_cell_and_kernelspec(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs are committed"
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], "exactly one parameters cell, the first code cell"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert len({c.id for c in nb.cells}) == len(nb.cells), "stable, unique cell ids"
    assert 'profile = "full"' in code[0].source


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parameters_cell_shows_every_value_with_a_comment(path):
    table = params.declared(path)  # fails on anything but `name = literal` lines
    assert table["profile"].default == "full" and list(table)[0] == "profile"
    assert set(papermill.inspect_notebook(str(path))) == set(table), "papermill reads the same names"
    missing = [name for name, p in table.items() if not p.help]
    assert not missing, f"parameters without a comment: {missing}"
    english = [name for name, p in table.items() if not JAPANESE.search(p.help)]
    assert not english, f"a student reads each parameter's meaning in Japanese (handson/04): {english}"


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.*.yaml")), ids=lambda p: p.name)
def test_profile_files_say_why_in_japanese(path):
    """A profile's comments say why it differs from the cell, in Japanese like the cell (commented lines only)."""
    comments = [line.split("#", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if "#" in line]
    english = [c.strip() for c in comments if c.strip() and not JAPANESE.search(c)]
    assert comments and not english, f"{path.name}: comments in English: {english}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_profile_file_resolves_against_the_cell(path):
    names = params.profiles(path)
    assert "tiny" in names, "every notebook has a tiny profile for a CPU run"
    for profile in names:
        values = params.resolve(path, profile)  # unknown names or wrong types raise, naming the file
        assert values["profile"] == profile
