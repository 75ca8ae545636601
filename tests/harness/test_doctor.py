"""`python -m coursekit doctor` on the workshop's test cluster (partition `workshop`, typed fake GPUs): on
the "login node" (this machine, with the site file sourced as a student's shell does) against a shared folder
that `prepare` made from loopback sources, and as the job sbatch/doctor.sbatch inside the CPU test images."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.harness import doctor

from ..conftest import ROOT
from ..fileserver import FileServer
from ..hubserver import HubServer
from ..staging import prepare, write_sources
from .slurmjobs import WORKSHOP, field, wait


def fill_site(shared: Path, **values: str) -> Path:
    """The site file prepare copied into the shared folder, filled in as an instructor would."""
    site = shared / "site.env"
    text = site.read_text(encoding="utf-8")
    for name, value in values.items():
        key = f'export {name}=""' if name.isupper() else f'\n{name}=""'
        assert key in text, name
        text = text.replace(key, f'{key[:-2]}"{value}"', 1)
    site.write_text(text, encoding="utf-8")
    return site


def run_doctor(env: dict, site: Path | None, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """doctor in a shell that sourced the site file (as ~/.bashrc does), without the test's own SBATCH_*."""
    env = {k: v for k, v in env.items() if not k.startswith(("SBATCH_", "SLURM_PARTITION", "SALLOC_", "COURSEKIT_"))}
    env["COURSEKIT_RUNS"] = str(cwd / "runs")
    script = (f'source "{site}" && ' if site else "") + f'exec "{sys.executable}" -m coursekit doctor "$@"'
    return subprocess.run(["bash", "-c", script, "doctor", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def lines(proc) -> dict[str, str]:
    """check name -> its line (the last one of a name)."""
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("[") and "]" in line:
            name = line.split("]", 1)[1].strip().split(":", 1)[0]
            out[name] = line
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A shared folder prepared from loopback sources (every profile), with stand-in image files."""
    root = tmp_path_factory.mktemp("doctor")
    mirror, hub = write_sources(root / "sources")
    for name in ("keras-bert", "transformers"):
        (root / f"{name}.sif").write_bytes(os.urandom(2048))
    with FileServer(mirror) as server, HubServer(hub) as hubserver:
        proc = prepare(root / "shared", server.url("ok", "").rstrip("/"), hubserver.endpoint, "--images",
                       str(root / "keras-bert.sif"), str(root / "transformers.sif"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    return root / "shared"


def test_doctor_on_the_login_node_reads_the_site_file_and_checks_the_shared_folder(shared, workshop, tmp_path):
    site = fill_site(shared, partition=WORKSHOP["partition"], COURSEKIT_GPU_TYPE=WORKSHOP["gpu_type"])
    proc = run_doctor(workshop, site, cwd=tmp_path)
    print("\n" + proc.stdout)
    found = lines(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert found["python"].startswith("[ok]") and found["kit"].startswith(("[ok]", "[warn]"))
    assert found["site"].startswith("[ok]") and f"partition {WORKSHOP['partition']}" in found["site"]
    assert found["partition"].startswith("[ok]") and WORKSHOP["partition"] in found["partition"]
    assert found["GPU type"].startswith("[ok]") and WORKSHOP["gpu_type"] in found["GPU type"]
    for name in ("keras-bert", "transformers"):
        assert found[f"image {name}"].startswith("[ok]") and str(shared / "images" / f"{name}.sif") in found[f"image {name}"]
    files = len(doctor.read_manifest(shared)["files"])
    assert found["shared folder"].startswith("[ok]") and f"{files} files" in found["shared folder"]
    assert found["logs/"].startswith("[ok]") and found["space home"].startswith(("[ok]", "[warn]"))

    # damaged: one file cut short, one byte flipped in another (same size: only --deep sees it)
    victim = shared / "data" / "alt" / "URL-dev.txt"
    flipped = shared / "data" / "small_parallel_enja" / "dev.en"
    saved = victim.read_bytes(), flipped.read_bytes()
    try:
        victim.write_bytes(saved[0][:5])
        cut = run_doctor(workshop, site, cwd=tmp_path)
        assert cut.returncode == 1 and lines(cut)["shared folder"].startswith("[FAIL]")
        assert "data/alt/URL-dev.txt: 5 bytes" in cut.stdout and f"python -m coursekit prepare {shared}" in cut.stdout
        victim.write_bytes(saved[0])
        flipped.write_bytes(bytes([saved[1][0] ^ 1]) + saved[1][1:])
        assert run_doctor(workshop, site, cwd=tmp_path).returncode == 0, "sizes agree"
        deep = run_doctor(workshop, site, "--deep", cwd=tmp_path)
        assert deep.returncode == 1 and "dev.en: sha256 differs" in deep.stdout
    finally:
        victim.write_bytes(saved[0])
        flipped.write_bytes(saved[1])


def test_doctor_names_a_partition_or_gpu_type_that_does_not_exist(workshop, tmp_path):
    wrong = {**workshop, "SBATCH_PARTITION": "gpu", "COURSEKIT_GPU_TYPE": "v100"}
    env = {k: v for k, v in wrong.items() if k not in ("COURSEKIT_SITE",)}
    proc = subprocess.run([sys.executable, "-m", "coursekit", "doctor"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    found = lines(proc)
    assert proc.returncode == 1
    assert found["partition"].startswith("[FAIL]") and f"sinfo lists: {WORKSHOP['partition']}" in found["partition"]
    assert found["GPU type"].startswith("[FAIL]") and WORKSHOP["gpu_type"] in found["GPU type"]
    assert found["site"].startswith("[warn]") and "source /path/to/shared/site.env" in found["site"]


def test_doctor_without_a_cluster_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "SBATCH_", "COURSEKIT_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin/nonexistent"])  # no sinfo
    env["COURSEKIT_SHARED"] = str(tmp_path / "nothing")
    proc = subprocess.run([sys.executable, "-m", "coursekit", "doctor"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    found = lines(proc)
    assert proc.returncode == 1
    assert found["partition"].startswith("[FAIL]") and "login node" in found["partition"]
    assert found["shared folder"].startswith("[FAIL]") and "python -m coursekit prepare" in found["shared folder"]
    assert all(line.startswith(("[ok]", "[warn]", "[FAIL]", "[skip]")) for line in found.values())


# ----------------------------------------------------------------------------- as a job, in the images
def test_doctor_job_checks_each_framework_in_each_image(images, workshop, tmp_path):
    runtime = next(iter(images.values()))[0]
    shared = tmp_path / "shared"
    proc = subprocess.run([sys.executable, "-m", "coursekit", "prepare", str(shared), "--only", "tiny", "--skip",
                           "livedoor", "--skip", "small_parallel_enja", "--link-images", "--images",
                           *(str(image) for _, image in images.values())], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    site = fill_site(shared, partition=WORKSHOP["partition"], COURSEKIT_GPU_TYPE=WORKSHOP["gpu_type"])
    (tmp_path / "logs").mkdir()
    env = {k: v for k, v in workshop.items() if not k.startswith(("SBATCH_", "SLURM_PARTITION", "SALLOC_"))}
    env.update(RUNTIME=runtime, PYTHON=sys.executable)
    env.pop("CONTAINER", None)
    jobs = {}
    for name, args in (("cpu", ["--no-gpu"]), ("gpu", [])):
        submit = subprocess.run(["bash", "-c", f'source "{site}" && sbatch --parsable "$@"', "sbatch",
                                 str(ROOT / "sbatch/doctor.sbatch"), *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert submit.returncode == 0, submit.stderr
        jobs[name] = submit.stdout.strip().split(";")[0]
    final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
    for job in jobs.values():
        wait(lambda: field(env, job, "JobState") in final, 900, f"doctor job {job}")
    logs = {name: (tmp_path / f"logs/doctor-{job}.log").read_text() for name, job in jobs.items()}
    print("\n" + logs["cpu"] + "\n" + logs["gpu"])
    assert field(env, jobs["cpu"], "JobState") == "COMPLETED", logs["cpu"] + (tmp_path / f"logs/doctor-{jobs['cpu']}.err").read_text()
    for name in images:
        assert f"[ok]   {name}: shared folder: {shared} visible inside the image" in logs["cpu"]
    assert "[ok]   keras-bert: tensorflow" in logs["cpu"] and "[ok]   transformers: torch" in logs["cpu"]
    assert "[ok]   transformers: tensorflow" in logs["cpu"], "the transformers image holds TensorFlow too"
    assert field(env, jobs["gpu"], "JobState") == "FAILED"
    assert "[FAIL] transformers: torch" in logs["gpu"] and "sees no GPU" in logs["gpu"]
