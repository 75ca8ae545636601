"""`coursekit open`: a notebook's copy with a profile's values injected (papermill --prepare-only), to open
in JupyterLab; the copy holds the values `coursekit run` would use and runs from its own folder."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from coursekit.harness import params, workcopy

from ..conftest import NOTEBOOKS, ROOT, coursekit_cli

LIVEDOOR = NOTEBOOKS / "02_livedoor_bert.ipynb"
GPU_CHECK = NOTEBOOKS / "00_gpu_check.ipynb"


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]


def test_the_copy_injects_the_tiny_values_after_the_parameters_cell(tmp_path):
    proc = coursekit_cli("open", str(LIVEDOOR), "--profile", "tiny", "-p", "epochs", "1", "--to", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    copy = tmp_path / "02_livedoor_bert.tiny.ipynb"
    assert proc.stdout.strip() == str(copy) and "wrote" in proc.stderr and "コピーを作りました" in proc.stderr
    original, cells = code_cells(LIVEDOOR), code_cells(copy)
    assert len(cells) == len(original) + 1
    assert cells[0].source == original[0].source, "the parameters cell itself is left as it is"
    assert cells[1].metadata["tags"] == ["injected-parameters"]
    assert [c.source for c in cells[2:]] == [c.source for c in original[1:]]
    assert all(not c.outputs and c.execution_count is None for c in cells), "nothing was executed"
    injected = workcopy.injected_values(copy)
    table = params.declared(LIVEDOOR)
    expected = params.resolve(LIVEDOOR, "tiny", [("epochs", "1")])   # what `coursekit run` would inject
    assert {**{n: p.default for n, p in table.items()}, **injected} == expected
    assert injected["profile"] == "tiny" and injected["epochs"] == 1 and injected["per_category"] == 300
    assert injected["bert_config"] == "" and "seed" not in injected, "only what differs from the cell"
    assert "プロファイル tiny -p epochs 1 の値です" in cells[1].source
    meta = nbformat.read(str(copy), as_version=4).metadata
    assert meta["coursekit"]["open"] == {"source": LIVEDOOR.name, "profile": "tiny", "parameters": [["epochs", "1"]]}
    assert meta["kernelspec"]["name"] == "python3"


def test_an_existing_copy_is_kept_unless_forced(tmp_path):
    first = coursekit_cli("open", str(GPU_CHECK), "--profile", "tiny", "--to", str(tmp_path))
    assert first.returncode == 0, first.stderr
    copy = tmp_path / "00_gpu_check.tiny.ipynb"
    nb = nbformat.read(str(copy), as_version=4)
    nb.cells[-1].source += "\n# my own note"            # a student's edit
    nbformat.write(nb, str(copy))
    again = coursekit_cli("open", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_size", "64",
                          "--to", str(tmp_path))
    assert again.returncode == 0 and "kept" in again.stderr and "--force" in again.stderr
    assert "# my own note" in copy.read_text(encoding="utf-8")
    assert workcopy.injected_values(copy)["matmul_size"] == 512
    forced = coursekit_cli("open", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_size", "64",
                           "--to", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "# my own note" not in copy.read_text(encoding="utf-8")
    assert workcopy.injected_values(copy)["matmul_size"] == 64


def test_a_bad_value_writes_no_copy_at_all(tmp_path):
    proc = coursekit_cli("open", str(GPU_CHECK), str(LIVEDOOR), "--profile", "tiny", "-p", "epochs", "2",
                         "--to", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown parameter 'epochs' for 00_gpu_check" in proc.stderr
    assert not list(tmp_path.iterdir()), "checked before anything is written"
    proc = coursekit_cli("open", str(GPU_CHECK), "--profile", "tiny", "-p", "matmul_size", "0", "--to", str(tmp_path))
    assert proc.returncode == 2 and "matmul_size" in proc.stderr
    proc = coursekit_cli("open", str(GPU_CHECK), "--profile", "small", "--to", str(tmp_path))
    assert proc.returncode == 2 and "no profile 'small'" in proc.stderr
    proc = coursekit_cli("open", str(tmp_path / "none.ipynb"), "--to", str(tmp_path))
    assert proc.returncode == 2 and "notebook not found" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_every_lesson_is_copied_when_none_is_named(tmp_path):
    proc = coursekit_cli("open", "--profile", "tiny", "--to", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [f"{nb.stem}.tiny.ipynb" for nb in lessons]
    for nb in lessons:
        assert workcopy.injected_values(tmp_path / f"{nb.stem}.tiny.ipynb")["profile"] == "tiny"


def test_relative_paths_that_exist_become_absolute(tmp_path, monkeypatch):
    """The copy's kernel works in the copy's folder, `coursekit run` in the kit: kit-relative values of the
    cell or profile, and -p values relative to where the command was typed, are made absolute when they exist."""
    container = NOTEBOOKS / "01_container_build.ipynb"
    values = workcopy.copy_values(container, "tiny")
    assert values["def_file"] == str(ROOT / params.declared(container)["def_file"].default)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "text").mkdir()
    monkeypatch.chdir(tmp_path / "mine")
    values = workcopy.copy_values(LIVEDOOR, "tiny", [("data_dir", "text"), ("cache_dir", "~/cache")],
                                  cwd=tmp_path / "mine")
    assert values["data_dir"] == str(tmp_path / "mine" / "text")
    assert values["cache_dir"] == "~/cache", "a home path stays for the notebook to expand"
    bart = NOTEBOOKS / "03_bart_translation.ipynb"
    values = workcopy.copy_values(bart, None, [("model_name", "facebook/mbart-large-50"),
                                               ("data_dir", "hf:some/dataset")])
    assert values["model_name"] == "facebook/mbart-large-50" and values["data_dir"] == "hf:some/dataset"
    assert "bert_config" not in workcopy.copy_values(LIVEDOOR, None), "a missing file stays as the cell has it"


def test_the_default_folder_is_work_in_the_kit_and_git_ignores_it(tmp_path, monkeypatch):
    assert workcopy.default_folder(LIVEDOOR) == ROOT / "work"
    monkeypatch.chdir(tmp_path)
    assert workcopy.default_folder(LIVEDOOR) == ROOT / "work", "the kit of the notebook, wherever typed"
    assert workcopy.default_folder(None) == tmp_path / "work"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "work/02_livedoor_bert.tiny.ipynb"],
                             cwd=ROOT)
    assert ignored.returncode == 0, "work/ is in .gitignore"


@pytest.mark.notebook
def test_the_tiny_copy_runs_from_its_own_folder_as_in_jupyterlab(tmp_path, runs_dir):
    """Notebook 02's full values need the pre-trained BERT; its tiny copy (on a generated corpus) runs through,
    with the kernel in the copy's folder as JupyterLab starts it."""
    from nbclient import NotebookClient

    from ..corpora import write_sample_corpus

    corpus = write_sample_corpus(tmp_path / "ldcc", per_category=14, seed=2)
    small = [("data_dir", str(corpus)), ("per_category", "0"), ("seq_len", "48"), ("vocab_size", "300"),
             ("epochs", "1"), ("batch_size", "16")]
    copy, written = workcopy.write_copy(LIVEDOOR, "tiny", small, to=tmp_path / "work")
    assert written and copy == tmp_path / "work" / "02_livedoor_bert.tiny.ipynb"
    nb = nbformat.read(str(copy), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=900,
                   resources={"metadata": {"path": str(copy.parent)}}).execute()
    records = list((runs_dir / "02_livedoor_bert").glob("*/metrics.json"))
    assert len(records) == 1
    data = json.loads(records[0].read_text(encoding="utf-8"))
    assert data["status"] == "completed"
    m = data["metrics"]
    assert m["corpus_articles"] == 126 and m["bert_pretrained"] is False, "the tiny BERT, not the full one"


def test_check_command_line_says_what_open_would_refuse_without_writing(tmp_path):
    """What `coursekit submit sbatch/jupyter.sbatch ARGS` can check before sbatch (the job gives ARGS to `open`)."""
    plans = workcopy.check_command_line([str(GPU_CHECK), "--profile", "tiny", "--to", str(tmp_path)])
    assert [(nb, out) for nb, out, _ in plans] == [(GPU_CHECK, tmp_path / "00_gpu_check.tiny.ipynb")]
    for argv, message in ((["--profil", "tiny"], "unrecognized arguments: --profil"),
                          ([str(GPU_CHECK), "-p", "matmul_size"], "expected 2 arguments"),
                          ([str(GPU_CHECK), "-p", "matmul_sise", "3"], "did you mean 'matmul_size'")):
        with pytest.raises((workcopy.OpenError, params.ParameterError), match=message):
            workcopy.check_command_line(argv)
    assert not list(tmp_path.iterdir())
