"""`python -m coursekit prepare` and the runs that never download: tested without the internet, against a
real HTTP server on loopback (tests/fileserver.py, the COURSEKIT_MIRROR) and a local stand-in for the
Hugging Face hub (tests/hubserver.py, HF_ENDPOINT) serving generated files in the real formats; the
real download code (pooch through lessons/download.py, huggingface_hub's snapshot_download) does the work.
The offline refusal and an offline notebook run are tested as jobs on the real test Slurm."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from coursekit import prepare as prep
from coursekit.harness import doctor
from coursekit.lessons import alt, corpora, download, kerasbert, livedoor, translation

from .conftest import ROOT, coursekit_cli
from .fileserver import FileServer
from .hubserver import HubServer
from .staging import BERT_FILES, HUB_REPO, PARALLEL_SIZES, prepare, write_sources

PARALLEL = [f"{s}.{lang}" for s in ("train", "dev", "test") for lang in ("en", "ja")]
ALT_FILES = [f"{alt.ALT_RELEASE}.zip", "URL-train.txt", "URL-dev.txt", "URL-test.txt"]
DUMP = Path(corpora.WIKI_DUMP_URL).name
SERVED = [livedoor.ARCHIVE, *PARALLEL, *ALT_FILES, DUMP, *BERT_FILES]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(mirror folder, hub folder) of generated sources."""
    return write_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def prepared(sources, tmp_path_factory):
    """A shared folder prepared (every profile, no images) from the loopback mirror and hub."""
    mirror, hub = sources
    shared = tmp_path_factory.mktemp("prepared") / "shared"
    with FileServer(mirror) as server, HubServer(hub) as hubserver:
        proc = prepare(shared, server.url("ok", "").rstrip("/"), hubserver.endpoint, "--no-images")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return shared


def _modes(shared: Path) -> list[str]:
    """Paths that a student of the group could not read, or could write."""
    bad = []
    for root, dirs, files in os.walk(shared):
        for name in [*dirs, *files]:
            st = os.lstat(Path(root) / name)
            if stat.S_ISLNK(st.st_mode):
                continue
            need = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(st.st_mode) else 0)
            if st.st_mode & need != need or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                bad.append(f"{oct(stat.S_IMODE(st.st_mode))} {Path(root, name).relative_to(shared)}")
    return bad


# ----------------------------------------------------------------------------- what to stage
def test_the_catalogue_comes_from_the_notebooks_profiles():
    full = {i.name: i for i in prep.catalogue(ROOT)}
    assert set(full) == {"livedoor", "small_parallel_enja", "alt", "bert-japanese", "bart-base", "wikipedia",
                         "image keras-bert", "image transformers"}
    assert full["livedoor"].used_by == {"02 full", "02 tiny", "04 tiny"}
    assert full["bart-base"].repo == HUB_REPO and full["wikipedia"].files == {DUMP: corpora.WIKI_DUMP_URL}
    assert set(full["bert-japanese"].files) == set(BERT_FILES)
    tiny = {i.name for i in prep.catalogue(ROOT, "tiny")}
    assert tiny == {"livedoor", "small_parallel_enja", "image keras-bert", "image transformers"}
    assert {i.name for i in prep.catalogue(ROOT, "tiny", ("keras-bert",), images=True)} == \
        {"livedoor", "small_parallel_enja", "image transformers"}


# ----------------------------------------------------------------------------- prepare, resumed
def test_prepare_detects_cut_off_downloads_and_a_second_run_fetches_only_what_is_missing(sources, tmp_path):
    mirror, hub = sources
    shared = tmp_path / "shared"
    with FileServer(mirror) as server, HubServer(hub) as hubserver:
        # 1. every HTTP download is cut off half-way, and so is the hub model's weights file
        hubserver.cut.add("model.safetensors")
        first = prepare(shared, server.url("truncated", "").rstrip("/"), hubserver.endpoint, "--no-images")
        assert first.returncode == 1, first.stdout[-3000:]
        for item in ("livedoor", "small_parallel_enja", "alt", "bert-japanese", "bart-base", "wikipedia"):
            assert f"{item}: NOT staged" in first.stdout
        manifest = doctor.read_manifest(shared)
        assert not [rel for rel in manifest["files"] if not rel.startswith("models/hub/")], \
            "no cut-off file is recorded"
        assert set(manifest["missing"]) >= {"livedoor", "alt", "bart-base"}
        kept = [p for p in shared.rglob("*") if p.is_file() and p.parent.name in ("livedoor", "alt", "wikipedia",
                                                                                 "small_parallel_enja", "bert-japanese")]
        assert {p.name for p in kept} <= {download.LOCK_NAME, kerasbert.CONFIG_NAME}, \
            f"a cut-off download never lands under its name: {kept}"
        assert not list(shared.rglob(".download-*")), "no temporary folder is left"

        # 2. the same command with the mirror working: everything is fetched once, verified, recorded
        hubserver.cut.clear()
        second = prepare(shared, server.url("ok", "").rstrip("/"), hubserver.endpoint, "--no-images")
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        print("\n" + "\n".join(l for l in second.stdout.splitlines() if l.startswith(("[prepare] fetched", "  "))))
        assert {name: server.hits[f"/ok/{name}"] for name in SERVED} == {name: 1 for name in SERVED}
        weights = f"{HUB_REPO}/model.safetensors"
        assert hubserver.gets[weights] >= 2 and "tf_model.h5" not in str(hubserver.gets), \
            "the cut-off weights were fetched again; files outside the patterns never"
        manifest = doctor.read_manifest(shared)
        assert manifest["missing"] == {}
        for name in SERVED:
            folder = {livedoor.ARCHIVE: livedoor.SHARED_FOLDER, DUMP: corpora.WIKI_FOLDER}.get(
                name, alt.SMALL_PARALLEL_FOLDER if name in PARALLEL else
                alt.ALT_FOLDER if name in ALT_FILES else kerasbert.SHARED_FOLDER)
            entry = manifest["files"][f"{folder}/{name}"]
            assert (shared / folder / name).read_bytes() == (mirror / name).read_bytes()
            assert entry["size"] == (mirror / name).stat().st_size
            assert entry["sha256"] == doctor.sha256(mirror / name) and entry["source"].endswith(f"/ok/{name}")
        text = manifest["files"][f"{livedoor.SHARED_FOLDER}/text"]
        assert text["kind"] == "folder" and text["files"] == 9 * 7 + 3, "54 articles, 9 LICENSE, README, CHANGES, the mark"
        assert json.loads((shared / kerasbert.SHARED_FOLDER / kerasbert.CONFIG_NAME).read_text()) == \
            kerasbert.BERT_JAPANESE_CONFIG
        snapshot = [rel for rel in manifest["files"] if rel.startswith("models/hub/")]
        assert any(rel.endswith("/model.safetensors") for rel in snapshot) and \
            any(rel.endswith("/spiece.model") for rel in snapshot)
        assert (shared / prep.SITE_FILE).read_text() == (ROOT / "sbatch" / "site.env").read_text()
        assert not _modes(shared), f"not group-readable or group-writable: {_modes(shared)[:5]}"
        assert [p for p in shared.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) == 0o600] == []

        # 3. again: nothing is fetched
        hits, gets = dict(server.hits), dict(hubserver.gets)
        third = prepare(shared, server.url("ok", "").rstrip("/"), hubserver.endpoint, "--no-images")
        assert third.returncode == 0 and "fetched now: 0 file(s)" in third.stdout, third.stdout[-2000:]
        assert dict(server.hits) == hits and dict(hubserver.gets) == gets

        # 4. damaged files: a cut-off one, a deleted one, one with a flipped byte (same size)
        (shared / alt.ALT_FOLDER / "URL-dev.txt").write_bytes((mirror / "URL-dev.txt").read_bytes()[:10])
        (shared / alt.SMALL_PARALLEL_FOLDER / "test.ja").unlink()
        archive = shared / livedoor.SHARED_FOLDER / livedoor.ARCHIVE
        data = bytearray(archive.read_bytes())
        data[100] ^= 0xFF
        archive.write_bytes(bytes(data))
        fourth = prepare(shared, server.url("ok", "").rstrip("/"), hubserver.endpoint, "--no-images")
        assert fourth.returncode == 0, fourth.stdout[-3000:]
        again = {name for name in SERVED if server.hits[f"/ok/{name}"] == 2}
        assert again == {"URL-dev.txt", "test.ja", livedoor.ARCHIVE}, again
        assert "damaged or changed" in fourth.stdout and "fetched now: 3 file(s)" in fourth.stdout
        assert archive.read_bytes() == (mirror / livedoor.ARCHIVE).read_bytes()


def test_only_tiny_stages_the_tiny_profiles_and_says_what_it_cannot_build(sources, tmp_path):
    mirror, hub = sources
    with FileServer(mirror) as server, HubServer(hub) as hubserver:
        path = os.environ["PATH"].split(os.pathsep)
        no_runtime = os.pathsep.join(p for p in path if not (Path(p) / "apptainer").exists()
                                     and not (Path(p) / "singularity").exists())
        proc = prepare(tmp_path / "shared", server.url("ok", "").rstrip("/"), hubserver.endpoint, "--only", "tiny",
                       env={"PATH": no_runtime})
        assert hubserver.gets == {}, "the tiny profiles need no hub model"
    assert proc.returncode == 1
    staged = set(doctor.read_manifest(tmp_path / "shared")["files"])
    assert staged == {f"{livedoor.SHARED_FOLDER}/{livedoor.ARCHIVE}", f"{livedoor.SHARED_FOLDER}/text",
                      *(f"{alt.SMALL_PARALLEL_FOLDER}/{n}" for n in PARALLEL)}
    assert "image keras-bert: NOT staged" in proc.stdout and "apptainer/singularity is not installed here" in proc.stdout
    assert "--images PATH" in proc.stdout


def test_prebuilt_images_are_copied_or_linked(tmp_path):
    """--images: a prebuilt .sif file is copied (verified by size and sha256 like the rest); a folder
    (a sandbox) is copied or, with --link-images, linked."""
    sif = tmp_path / "built" / "keras-bert.sif"
    sif.parent.mkdir()
    sif.write_bytes(os.urandom(4096))
    sandbox = tmp_path / "built" / "transformers-cpu"
    (sandbox / "usr" / "bin").mkdir(parents=True)
    (sandbox / "usr" / "bin" / "python3").write_text("#!/bin/sh\n")
    proc = coursekit_cli("prepare", str(tmp_path / "a"), "--only", "tiny", "--skip", "livedoor", "--skip",
                         "small_parallel_enja", "--images", str(sif), str(sandbox))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = doctor.read_manifest(tmp_path / "a")["files"]
    assert (tmp_path / "a/images/keras-bert.sif").read_bytes() == sif.read_bytes()
    assert files["images/keras-bert.sif"]["sha256"] == doctor.sha256(sif)
    assert (tmp_path / "a/images/transformers.sif/usr/bin/python3").is_file()
    assert files["images/transformers.sif"]["kind"] == "folder"
    again = coursekit_cli("prepare", str(tmp_path / "a"), "--only", "tiny", "--skip", "livedoor", "--skip",
                          "small_parallel_enja", "--images", str(sif), str(sandbox))
    assert "fetched now: 0 file(s)" in again.stdout
    linked = coursekit_cli("prepare", str(tmp_path / "b"), "--only", "tiny", "--skip", "livedoor", "--skip",
                           "small_parallel_enja", "--images", str(sif), str(sandbox), "--link-images")
    assert linked.returncode == 0, linked.stdout[-2000:]
    assert (tmp_path / "b/images/transformers.sif").resolve() == sandbox.resolve()


def test_the_japanese_bert_comes_from_a_folder_downloaded_with_a_browser(sources, tmp_path):
    """Google Drive has no plain URLs: without a mirror the instructor passes the browser's downloads."""
    mirror, _ = sources
    only_bert = ["--only", "full", "--no-images", *(a for n in ("livedoor", "alt", "bart-base", "wikipedia")
                                                     for a in ("--skip", n))]
    first = coursekit_cli("prepare", str(tmp_path / "shared"), *only_bert, env={download.MIRROR_ENV: ""})
    assert first.returncode == 1 and "bert-japanese: NOT staged" in first.stdout
    assert "--bert-japanese FOLDER" in first.stdout and prep.BERT_DRIVE in first.stdout
    second = coursekit_cli("prepare", str(tmp_path / "shared"), *only_bert, "--bert-japanese", str(mirror),
                           env={download.MIRROR_ENV: ""})
    assert second.returncode == 0, second.stdout[-2000:]
    folder = tmp_path / "shared" / kerasbert.SHARED_FOLDER
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == \
        sorted([*BERT_FILES, kerasbert.CONFIG_NAME])
    assert all((folder / n).read_bytes() == (mirror / n).read_bytes() for n in BERT_FILES)


# ----------------------------------------------------------------------------- runs that never download
def test_every_loader_reads_the_shared_folder_first_and_offline(prepared, tmp_path, monkeypatch):
    monkeypatch.setenv(download.SHARED_ENV, str(prepared))
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    monkeypatch.chdir(tmp_path)  # the full profile's relative defaults (models/..., data/...) are not here
    cache = tmp_path / "cache"
    assert livedoor.locate("", cache) == prepared / livedoor.SHARED_FOLDER / "text"
    assert len(livedoor.load_corpus(livedoor.locate("", cache))) == 54
    pairs, report = alt.load_corpus(alt.SMALL_PARALLEL, cache)
    assert report["source"] == str(prepared / alt.SMALL_PARALLEL_FOLDER) and len(pairs["train"]) == PARALLEL_SIZES[0]
    with pytest.warns(download.CorpusWarning, match="only_in_en=1"):  # write_alt's odd ids, counted
        pairs, report = alt.load_corpus("", cache)
    assert report["source"] == str(prepared / alt.ALT_FOLDER) and len(pairs["test"]) > 0
    files = kerasbert.prepare_model(tmp_path / "out", [], bert_config="models/bert-japanese/bert_config.json",
                                    bert_checkpoint="models/bert-japanese/model.ckpt-1400000",
                                    spm_model="models/bert-japanese/wiki-ja.model")
    assert files["pretrained"] and files["checkpoint"] == prepared / kerasbert.SHARED_FOLDER / "model.ckpt-1400000"
    docs = corpora.read_source(f"data/{DUMP}", tmp_path / "work", processes=1)
    assert len(docs) == 2 and docs[0].startswith("東京")
    path = translation.locate_model(HUB_REPO)
    assert Path(path).is_relative_to(prepared / download.HUB_CACHE)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForSeq2SeqLM.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer) and model.config.d_model == 16
    assert not cache.exists(), "nothing went to the user's cache"
    assert translation.locate_model("") == "" and translation.locate_model(str(tmp_path)) == str(tmp_path)


def test_a_file_missing_there_stops_at_once_naming_it_and_the_prepare_command(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv(download.SHARED_ENV, str(shared))
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    monkeypatch.chdir(tmp_path)
    command = f"python -m coursekit prepare {shared}"
    cases = {
        f"{livedoor.SHARED_FOLDER}/text": lambda: livedoor.locate("", tmp_path / "cache"),
        f"{alt.SMALL_PARALLEL_FOLDER}/train.en": lambda: alt.load_corpus(alt.SMALL_PARALLEL, tmp_path / "cache"),
        f"{alt.ALT_FOLDER}/{alt.ALT_RELEASE}.zip": lambda: alt.load_corpus("", tmp_path / "cache"),
        f"{corpora.WIKI_FOLDER}/{DUMP}": lambda: corpora.read_source(f"data/{DUMP}", tmp_path / "work"),
        f"{download.HUB_CACHE}/models--facebook--bart-base": lambda: translation.locate_model(HUB_REPO),
        kerasbert.SHARED_FOLDER: lambda: kerasbert.prepare_model(
            tmp_path / "out", [], bert_config="models/bert-japanese/bert_config.json",
            bert_checkpoint="models/bert-japanese/model.ckpt-1400000", spm_model="models/bert-japanese/wiki-ja.model"),
    }
    for rel, call in cases.items():
        with pytest.raises((download.DownloadError, download.CorpusError, FileNotFoundError)) as err:
            call()
        message = str(err.value)
        assert f"{shared / rel} is missing" in message and command in message, message
        assert "共有フォルダ" in message and "講師" in message, "bilingual"


def test_without_network_the_refusal_comes_before_any_download(tmp_path, monkeypatch):
    """No COURSEKIT_OFFLINE: a source that cannot be reached is found out in one connection attempt."""
    monkeypatch.setenv(download.SHARED_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(livedoor.CorpusError, match=r"cannot reach 127\.0\.0\.1:9.*python -m coursekit prepare"):
        livedoor.locate("", tmp_path / "cache")
    assert not (tmp_path / "cache" / livedoor.ARCHIVE).exists()


def test_a_missing_file_is_downloaded_into_the_users_cache_where_the_node_has_network(sources, tmp_path,
                                                                                      monkeypatch):
    """With network, a shared folder that lacks a corpus is no obstacle: the user's cache is filled, and
    readable by the group that may share it (pooch's 0600 is not kept)."""
    mirror, _ = sources
    monkeypatch.setenv(download.SHARED_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)
    with FileServer(mirror) as server:
        monkeypatch.setenv(download.MIRROR_ENV, server.url("ok", "").rstrip("/"))
        folder = alt.download_small_parallel(tmp_path / "cache")
    mode = stat.S_IMODE((folder / "train.en").stat().st_mode)
    assert mode == download.readable_mode() and mode & stat.S_IRGRP


# ----------------------------------------------------------------------------- as Slurm jobs
def test_offline_jobs_read_the_shared_folder_or_stop_before_any_work(prepared, workshop, tmp_path):
    """Notebook 03's tiny profile as a job with COURSEKIT_OFFLINE=1: from the prepared shared folder it runs;
    from a shared folder without small_parallel_enja it stops in its corpus cell, naming the file and the
    prepare command, before a tokenizer or model exists."""
    from .harness.slurmjobs import field, wait

    (tmp_path / "logs").mkdir()
    incomplete = tmp_path / "incomplete"
    (incomplete / livedoor.SHARED_FOLDER).mkdir(parents=True)
    small = ("-p", "vocab_size", "120", "-p", "d_model", "32", "-p", "layers", "1", "-p", "max_length", "24",
             "-p", "batch_size", "16", "-p", "epochs", "1", "-p", "num_beams", "1", "-p", "examples", "3")
    jobs = {}
    for name, shared in (("staged", prepared), ("missing", incomplete)):
        env = {**workshop, "COURSEKIT_SHARED": str(shared), "COURSEKIT_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=2", str(ROOT / "sbatch/bart.sbatch"),
                               "--profile", "tiny", *small], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        jobs[name] = (proc.stdout.strip().split(";")[0], env)
    final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
    for name, (job, env) in jobs.items():
        wait(lambda: field(env, job, "JobState") in final, 900, f"the {name} job")
    runs = Path(workshop["COURSEKIT_RUNS"]) / "03_bart_translation"
    job, env = jobs["missing"]
    assert field(env, job, "JobState") == "FAILED"
    data = json.loads((runs / job / "metrics.json").read_text())
    missing, error = incomplete / alt.SMALL_PARALLEL_FOLDER / "train.en", data["runner"]["error"] or ""
    assert data["status"] == "failed" and f"{missing} is missing" in error, error
    assert f"python -m coursekit prepare {incomplete}" in error
    assert not (runs / job / "checkpoints").exists() and list(data["phases"]) in ([], ["load"]), "no work was done"
    assert f"{missing} is missing" in (tmp_path / f"logs/bart-{job}.err").read_text() + \
        (tmp_path / f"logs/bart-{job}.log").read_text(), "the job's log names the file"
    job, env = jobs["staged"]
    assert field(env, job, "JobState") == "COMPLETED", (runs / job / "metrics.json").read_text()[-2000:]
    data = json.loads((runs / job / "metrics.json").read_text())
    assert data["metrics"]["corpus"]["source"] == str(prepared / alt.SMALL_PARALLEL_FOLDER)
    assert data["metrics"]["pairs"]["train"] == PARALLEL_SIZES[0]
