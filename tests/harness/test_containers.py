"""defs/*.def: parsed and checked (sections, base image, pins that agree with requirements.txt);
the CPU test variant generated from them; the build helper's messages. No container runtime needed:
the real image build runs in tests/test_slurm.py where Apptainer can be installed."""
from __future__ import annotations

import stat
import textwrap

import pytest

from coursekit.harness import containers
from ..conftest import ROOT, coursekit_cli

DEFS = sorted((ROOT / "defs").glob("*.def"))
REQ = ROOT / "requirements.txt"


def test_the_agreed_def_files_exist():
    assert {p.name for p in DEFS} >= {"keras-bert.def", "transformers.def"}


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_def_file_passes_every_check(path):
    assert containers.check_def(path, REQ) == []
    d = containers.parse_def(path)
    assert d.bootstrap == "docker"
    assert {"post", "environment", "test", "labels", "help", "files"} <= set(d.sections)
    env = d.sections["environment"]
    for needed in ("PYTHONNOUSERSITE=1", "TF_USE_LEGACY_KERAS=1", "HF_HOME="):
        assert needed in env
    assert "python3 -m coursekit gpu" in d.sections["test"]


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_every_package_in_post_is_pinned_as_in_requirements(path):
    pins = containers.read_pins(REQ)
    packages = containers.parse_def(path).pip_packages()
    assert len(packages) >= 10
    for arg in packages:
        name, _, version = arg.partition("==")
        assert version, f"{arg} is not pinned"
        assert pins[containers.normalise(name)] == version, arg
    names = {containers.normalise(a.partition("==")[0]) for a in packages}
    assert {"papermill", "ipykernel"} <= names and "keras" not in names and "tensorflow-cpu" not in names


def test_base_images_are_the_frameworks_official_gpu_images():
    pins = containers.read_pins(REQ)
    keras = containers.parse_def(ROOT / "defs/keras-bert.def").header["From"]
    torch = containers.parse_def(ROOT / "defs/transformers.def").header["From"]
    assert keras == f"tensorflow/tensorflow:{pins['tensorflow']}-gpu"
    assert torch.startswith(f"pytorch/pytorch:{pins['torch']}-cuda") and "cudnn" in torch


def _write(tmp_path, text, name="x.def"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = textwrap.dedent("""
    Bootstrap: docker
    From: tensorflow/tensorflow:2.21.0-gpu

    %labels
        Author me
    %help
        help text
    %environment
        export PYTHONNOUSERSITE=1
        export TF_USE_LEGACY_KERAS=1
        export HF_HOME=$HOME/.cache/huggingface
    %post
        python3 -m pip install \\
            tf-keras==2.21.0 \\
            papermill==2.7.0
    %test
        python3 -m coursekit gpu
""").lstrip()


def test_check_def_accepts_a_good_file_and_names_each_problem(tmp_path):
    assert containers.check_def(_write(tmp_path, GOOD), REQ) == []
    cases = {
        "tf-keras==2.21.0": ("tf-keras==2.20.0", "tf-keras==2.20.0 in %post but tf-keras==2.21.0 in requirements.txt"),
        "papermill==2.7.0": ("papermill", "`papermill` in %post is not pinned"),
        "2.21.0-gpu": ("latest", "has no fixed tag"),
        "export PYTHONNOUSERSITE=1": ("true", "does not set PYTHONNOUSERSITE"),
        "python3 -m coursekit gpu": ("echo ok", "%test does not run"),
    }
    for old, (new, message) in cases.items():
        problems = containers.check_def(_write(tmp_path, GOOD.replace(old, new)), REQ)
        assert any(message in p for p in problems), (old, problems)
    trap = containers.check_def(_write(tmp_path, GOOD.replace("tf-keras==2.21.0", "keras tensorflow-cpu")), REQ)
    assert any("Keras 3 breaks keras-bert" in p for p in trap)
    assert any("second TensorFlow" in p for p in trap)
    no_help = containers.check_def(_write(tmp_path, GOOD.replace("%help\n    help text\n", "")), REQ)
    assert no_help == ["section %help is missing or empty"]
    twice = containers.check_def(_write(tmp_path, GOOD + "%post\n    echo again\n"), REQ)
    assert "appears twice" in twice[0]
    garbage = containers.check_def(_write(tmp_path, "this is not a def file\n%post\n  true\n"), REQ)
    assert "not a header line" in garbage[0]
    unknown = containers.check_def(_write(tmp_path, GOOD.replace("Bootstrap: docker", "Bootstrap: dokcer")), REQ)
    assert "unknown bootstrap agent 'dokcer'" in unknown


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_cpu_test_variant_is_generated_from_the_real_file(path, tmp_path):
    """Only the base differs: the same %files/%environment/%test/%labels/%help and the whole %post with
    every pinned package; pip finds the CPU build of torch (same pin) in the bound wheel folder."""
    real = containers.parse_def(path)
    text = containers.cpu_test_variant(path, base="/images/base", ca_bundle="/etc/ssl/certs/ca-certificates.crt",
                                       find_links=["/opt/wheels", "https://example.org/whl/cpu"])
    variant = containers.parse_def(_write(tmp_path, text, "variant.def"))
    assert variant.header == {"Bootstrap": "localimage", "From": "/images/base"}
    for name in ("environment", "test", "labels", "help"):
        assert variant.sections[name] == real.sections[name], name
    assert variant.sections["files"].startswith(real.sections["files"])
    assert variant.sections["post"].endswith(real.sections["post"]), "the real %post, verbatim, last"
    assert variant.pip_packages() == real.pip_packages(), "the same package set, frameworks included"
    post = variant.sections["post"]
    assert "PIP_CERT=/opt/build-ca.crt" in post
    assert f'PIP_FIND_LINKS="{containers.FIND_LINKS_MOUNT}-0 https://example.org/whl/cpu"' in post
    assert containers.build_binds(["/opt/wheels", "https://example.org/whl/cpu"]) == [
        "--bind", f"/opt/wheels:{containers.FIND_LINKS_MOUNT}-0:ro"]
    assert f"mkdir -p {containers.FIND_LINKS_MOUNT}-0" in containers.cpu_base_def(), "the mount point exists"
    # without a base image: debootstrap, with Debian's python3 + pip installed first
    plain = containers.parse_def(_write(tmp_path, containers.cpu_test_variant(path), "plain.def"))
    assert plain.header["Bootstrap"] == "debootstrap" and plain.header["OSVersion"] == "bookworm"
    assert "python3-pip" in plain.sections["post"] and plain.pip_packages() == real.pip_packages()
    with pytest.raises(ValueError, match="need a base image"):
        containers.cpu_test_variant(path, find_links=["/opt/wheels"])


def _fake_runtime(tmp_path, message):
    exe = tmp_path / "apptainer"
    exe.write_text(f"#!/bin/sh\necho 'building...'\necho '{message}' >&2\nexit 255\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.mark.parametrize("message, hint", [
    ("FATAL: could not use fakeroot: no mapping entry found in /etc/subuid for root", "config fakeroot --add"),
    ("FATAL: write /tmp/build-temp/rootfs/x: no space left on device", "APPTAINER_TMPDIR"),
])
def test_build_failures_come_with_a_hint(tmp_path, message, hint):
    with pytest.raises(containers.ContainerError, match=hint):
        containers.build(ROOT / "defs/keras-bert.def", tmp_path / "x.sif",
                         runtime=_fake_runtime(tmp_path, message))


def test_build_without_runtime_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(containers.ContainerError, match="neither apptainer nor singularity is installed"):
        containers.build(ROOT / "defs/keras-bert.def", tmp_path / "x.sif")


def test_build_container_command_checks_first(tmp_path):
    ok = coursekit_cli("build-container", "defs/transformers.def", "--check")
    assert ok.returncode == 0 and "ok (sections, base image, pinned versions)" in ok.stdout
    bad = tmp_path / "bad.def"
    bad.write_text(GOOD.replace("papermill==2.7.0", "papermill"))
    proc = coursekit_cli("build-container", str(bad))
    assert proc.returncode == 1 and "not pinned" in proc.stderr
    missing = coursekit_cli("build-container", str(tmp_path / "nope.def"))
    assert missing.returncode == 2 and "not found" in missing.stderr


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_localimage_variant_builds_from_a_base_pulled_once(path, tmp_path):
    real = containers.parse_def(path)
    variant = containers.parse_def(_write(tmp_path, containers.localimage_variant(path, "/images/base.sif")))
    assert variant.header == {"Bootstrap": "localimage", "From": "/images/base.sif"}
    assert variant.sections == real.sections, "everything but the header verbatim"
    assert containers.check_def(tmp_path / "x.def", REQ) == []
    assert containers.pull_command(path, "base.sif") == f"apptainer pull base.sif docker://{real.header['From']}"
    missing = coursekit_cli("build-container", str(path), "--base", str(tmp_path / "none.sif"))
    assert missing.returncode == 2 and f"apptainer pull {tmp_path / 'none.sif'} docker://" in missing.stderr
