"""The workshop as students live it, on the workshop's test cluster (tests/conftest.py `workshop`: two nodes,
partition `workshop` that is not the default, typed fake GPUs gpu:a100) with real Unix accounts
(tests/cluster/make-accounts.sh: an instructor and three students in one group, homes of their own).

- The instructor prepares the shared folder once with `python -m coursekit prepare` (corpora from a loopback
  HTTP server standing in for the internet, the CPU test images of both .def files) and fills its site file.
- Each student has their own clone of the kit in their home (the venv is the instructor's, read-only, as a lab
  shares one) and adds `source <shared>/site.env` to their shell, nothing else: no script is edited.
- Three students run the first hour's jobs at the same time; each guide command runs as written.
- A command that a notebook prints for the student to try (notebook 04's short-blocks-first line) is copied from
  the executed notebook and typed by a student with the same substitution rule.

THE SUBSTITUTION RULE for guide commands (one rule, applied to every line; nothing else is changed):
  1. a line that runs a notebook (sbatch/submit of a notebook script, `coursekit run`/`sweep`) runs its tiny
     profile as a smoke run: `--profile full` becomes `--profile tiny`, a line without --profile gets
     `--profile tiny`, and `-p max_steps 4 -p vocab_size 500` are added where the notebook trains (02, 03, 04) and
     the line does not set them (a line's own `-p max_steps N` above 4 becomes 4): the full profile needs real
     GPUs and the real corpora, the generated corpora of the shared folder hold fewer SentencePiece pieces than
     the tiny profile's 4,000, and 2 cores run every line;
  2. `<...>` placeholders get the values the student would type: <ジョブID> the last job that guide submitted
     (its array job for `<ジョブID>_*`), <種類> the site's GPU type;
  3. lines that cannot run here are listed with the reason (NOT_HERE), never silently dropped;
  4. a line runs once: one that another guide holds (up to the order of its -p/--profile options, see
     same_command) or that the three students typed at once (FIRST_HOUR) is reported as run there, its jobs
     checked there.
Needs root on Linux (accounts, Slurm, Apptainer): .ci/run; elsewhere the tests skip with the reason.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import ROOT, committed_figures, printed_lines
from ..corpora import write_sample_corpus
from ..fileserver import FileServer
from ..lessons.test_alt import write_parallel
from .slurmjobs import CLUSTER, WORKSHOP, field, wait

INSTRUCTOR, GROUP = "ckinstructor", "ckworkshop"
STUDENTS = ("ckstudent1", "ckstudent2", "ckstudent3")
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "PREEMPTED")
JOB_ID = "JOBID0"   # stands for <ジョブID> until the guide's last job id is known
TRAINS = {"02_livedoor_bert", "03_bart_translation", "04_bert_pretraining"}
# the test machine has 2 real cores behind 16 declared CPUs: one CPU per task, else 4 processes x 4 threads spin
JOB_CPUS = "1"


# ----------------------------------------------------------------------------- the people and the folders
def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


@dataclass
class Person:
    """A Unix account of the workshop; `sh` runs a command line as they type it, in their kit's folder, after
    `source <shared>/site.env` (their ~/.bashrc line)."""
    name: str
    site: Path | None
    slurm_conf: str
    path: str

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.name).pw_dir)

    @property
    def kit(self) -> Path:
        return self.home / "coursekit"

    def env(self, **extra) -> list[str]:
        values = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "LANG": "C.UTF-8",
                  "PATH": f"{self.kit}/.venv/bin:{self.path}", "SLURM_CONF": self.slurm_conf,
                  "SBATCH_CPUS_PER_TASK": JOB_CPUS}
        if self.name in STUDENTS:  # the nodes have no network: every download is refused (jobs inherit it)
            values.update(COURSEKIT_OFFLINE="1", HF_HUB_OFFLINE="1")
        values.update(extra)
        return [f"{k}={v}" for k, v in values.items()]

    def sh(self, command: str, timeout: float = 600, stdin: str | None = None, cwd: Path | None = None,
           **extra) -> subprocess.CompletedProcess:
        site = f"source {shlex.quote(str(self.site))} && " if self.site else ""
        script = f"{site}cd {shlex.quote(str(cwd or self.kit))} && {command}"
        return _run(["runuser", "-u", self.name, "--", "env", "-i", *self.env(**extra), "bash", "-c", script],
                    timeout=timeout, input=stdin)


def _kit_files() -> list[str]:
    """The checkout's files as a clone has them (tracked and new, not ignored)."""
    out = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def _clone_kit(person: Person) -> None:
    """The student's own copy of the kit (what `git clone` gives them), the lab's venv linked in."""
    if person.kit.exists():
        shutil.rmtree(person.kit)
    for rel in _kit_files():
        dest = person.kit / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    (person.kit / ".venv").symlink_to(person.site.parent / "venv")   # handson/01: ln -s "$COURSEKIT_SHARED/venv" .venv
    _run(["chown", "-R", f"{person.name}:{person.name}", str(person.kit)], check=True)


def _apptainer_bin() -> str:
    from . import cpu_images

    return str(Path(cpu_images.runtime()).parent)


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under folder: (size, mtime, mode, owner); links by their target."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid,
                                              os.readlink(path) if path.is_symlink() else None)
    return out


def _lab_venv(folder: Path) -> Path:
    """The lab's shared venv that every account can run (handson/01 links it as .venv): Debian's Python 3.11 with
    the checkout's installed packages on its path. The checkout's own .venv cannot stand in: its interpreter may
    live where only root can go (pyenv under /root), as a lab's admin's would not."""
    system = Path("/usr/bin/python3")
    if not system.exists() or _run([str(system), "-c", "import sys, venv; assert sys.version_info[:2] == (3, 11)"]).returncode:
        pytest.skip("the lab's venv needs Debian's python3 (3.11) with venv: apt-get install python3-venv")
    proc = _run([str(system), "-m", "venv", "--without-pip", str(folder)])
    assert proc.returncode == 0, proc.stderr
    ours = _run([sys.executable, "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip()
    site_packages = next((folder / "lib").glob("python3*/site-packages"))
    (site_packages / "coursekit-lab.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    probe = _run(["runuser", "-u", STUDENTS[0], "--", str(folder / "bin" / "python"), "-c",
                  "import coursekit, papermill, torch"])
    assert probe.returncode == 0, (f"the lab venv cannot import the kit as a student: {probe.stderr[-1500:]}\n"
                                   "(the checkout and its .venv must be readable by other users)")
    return folder


@pytest.fixture(scope="session")
def people(workshop, images):
    """The accounts, the prepared shared folder and each student's kit: {"instructor": Person, "students": [...],
    "shared": Path, "base": Path}."""
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("Unix accounts need root and runuser (.ci/run has both)")
    accounts = _run(["bash", str(CLUSTER / "make-accounts.sh")], env={**os.environ, "GROUP": GROUP,
                    "INSTRUCTOR": INSTRUCTOR, "STUDENTS": " ".join(STUDENTS)})
    assert accounts.returncode == 0, accounts.stderr
    base = Path(f"/tmp/coursekit-workshop-{os.getpid()}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    venv = _lab_venv(base / "venv")
    shared = base / "shared"
    mirror = base / "mirror"
    # what the internet has, in small: the livedoor tarball and small_parallel_enja
    corpus = write_sample_corpus(base / "gen", per_category=14, seed=5)
    mirror.mkdir()
    with tarfile.open(mirror / "ldcc-20140209.tar.gz", "w:gz") as tar:
        tar.add(corpus, arcname="text")
    write_parallel(mirror, sizes=(320, 32, 24))
    links = base / "images"  # the CPU test images under the names of the real ones
    links.mkdir()
    for name, (_, image) in images.items():
        (links / f"{name}.sif").symlink_to(image)
    _run(["chmod", "-R", "a+rX", str(base)], check=True)
    shared.mkdir()   # the folder the lab's admin gives the instructor
    shutil.chown(shared, INSTRUCTOR, GROUP)
    conf = workshop["SLURM_CONF"]
    path = f"{_apptainer_bin()}:/usr/local/bin:/usr/bin:/bin"
    instructor = Person(INSTRUCTOR, None, conf, path)
    with FileServer(mirror) as server:
        made = instructor.sh(
            f"umask 027 && {venv}/bin/python -m coursekit prepare {shared} --only tiny --group {GROUP} "
            f"--link-images --images {links}/keras-bert.sif {links}/transformers.sif",
            cwd=ROOT, timeout=900, COURSEKIT_MIRROR=server.url("ok", ""))
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    # the lab's venv, which students link as their .venv (handson/01): here the checkout's own
    linked = instructor.sh(f"ln -sfn {venv} {shared}/venv", cwd=shared)
    assert linked.returncode == 0, linked.stderr
    site = shared / "site.env"
    text = site.read_text()
    site.write_text(text.replace('partition=""', f'partition="{WORKSHOP["partition"]}"').replace(
        'export COURSEKIT_GPU_TYPE=""', f'export COURSEKIT_GPU_TYPE="{WORKSHOP["gpu_type"]}"'))
    students = [Person(name, site, conf, path) for name in STUDENTS]
    for student in students:
        _clone_kit(student)
    yield {"instructor": instructor, "students": students, "shared": shared, "base": base,
           "prepared": made.stdout, "before": _snapshot(shared)}
    shutil.rmtree(base, ignore_errors=True)
    for student in students:
        shutil.rmtree(student.kit, ignore_errors=True)


def _job_id(proc: subprocess.CompletedProcess) -> str:
    """The job id that sbatch ("Submitted batch job N") or `coursekit submit` (last line) printed."""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    m = re.search(r"Submitted batch job (\d+)", proc.stdout) or re.search(r"^(\d+)$", proc.stdout.strip(), re.M)
    assert m, proc.stdout
    return m.group(1)


def _tasks(env, job) -> list[str]:
    """The job itself, or every task of a job array."""
    out = _run(["squeue", "-h", "-r", "-j", job, "-o", "%i"], env=env).stdout.split()
    return out or [job]


def _wait_all(env, jobs: list[str], seconds: float) -> dict[str, str]:
    """Wait until each job (each task of an array) has ended; {job or task id: final state}."""
    def states():
        out = {}
        for job in jobs:
            text = _run(["scontrol", "-o", "show", "job", job], env=env).stdout
            for line in text.splitlines():
                tid = re.search(r"JobId=(\d+)", line).group(1)
                task = re.search(r"ArrayTaskId=(\d+)", line)
                out[f"{job}_{task.group(1)}" if task else tid] = re.search(r"JobState=(\w+)", line).group(1)
        return out

    wait(lambda: all(s in FINAL for s in states().values()), seconds, f"jobs {jobs} to end", every=2)
    return states()


# ----------------------------------------------------------------------------- the prepared folder and site
def test_the_shared_folder_is_the_instructors_readable_by_the_group_not_writable(people):
    shared, instructor = people["shared"], people["instructor"]
    uid, gid = pwd.getpwnam(INSTRUCTOR).pw_uid, _run(["getent", "group", GROUP]).stdout.split(":")[2]
    for path in [shared, *shared.rglob("*")]:
        if path.is_symlink():
            continue
        st = path.stat()
        assert st.st_uid == uid and str(st.st_gid) == gid, f"{path} belongs to {st.st_uid}:{st.st_gid}"
        assert st.st_mode & stat.S_IRGRP and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), \
            f"{path} is {stat.filemode(st.st_mode)}: the group reads, nobody else writes"
    student = people["students"][0]
    assert student.sh(f"cat {shared}/manifest.json > /dev/null").returncode == 0
    denied = student.sh(f"touch {shared}/data/mine")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


def test_the_site_file_carries_partition_and_gpu_type_and_submit_refuses_wrong_ones(people):
    student = people["students"][0]
    shown = student.sh("python -m coursekit submit --dry-run sbatch/gpu_check.sbatch --profile tiny")
    assert shown.returncode == 0, shown.stderr
    assert f"partition {WORKSHOP['partition']}" in shown.stdout and f"GPU type {WORKSHOP['gpu_type']}" in shown.stdout
    assert f"--gpus-per-node={WORKSHOP['gpu_type']}:1" in shown.stdout, "the site's GPU type is asked for"
    assert f"{people['shared']}/images/transformers.sif" in shown.stdout, "the image comes from the shared folder"
    wrong = student.sh("SBATCH_PARTITION=gpu python -m coursekit submit --dry-run sbatch/gpu_check.sbatch")
    assert wrong.returncode == 2 and "partition 'gpu' (SBATCH_PARTITION) does not exist" in wrong.stderr
    assert "sinfo lists: workshop" in wrong.stderr
    typo = student.sh("COURSEKIT_GPU_TYPE=v100 python -m coursekit submit --dry-run sbatch/gpu_check.sbatch")
    assert typo.returncode == 2 and "GPU type 'v100'" in typo.stderr and "sinfo lists: a100" in typo.stderr
    # without the site file there is no partition: plain sbatch is refused by Slurm itself
    bare = Person(student.name, None, student.slurm_conf, student.path)
    refused = bare.sh("mkdir -p logs && sbatch sbatch/gpu_check.sbatch --profile tiny")
    assert refused.returncode != 0 and "partition" in refused.stderr.lower(), refused.stderr


# ----------------------------------------------------------------------------- several students at once
# The first hour's jobs as handson/04 and handson/05 tell students to type them (GPU check, notebook 02 tiny in its
# image, a 2-task sweep): all three students type them back to back. The guide-command test does not type these
# lines again: it checks these jobs for them (one run of each line per student, not a fourth).
FIRST_HOUR = [("handson/04_run_notebook.md", "sbatch sbatch/gpu_check.sbatch"),
              ("handson/04_run_notebook.md", "sbatch sbatch/livedoor.sbatch --profile full -p epochs 3"),
              ("handson/05_sweep.md", "sbatch --array=0-1 sbatch/sweep.sbatch notebooks/02_livedoor_bert.ipynb "
                                      "-g learning_rate 1e-4,5e-4")]


@pytest.fixture(scope="session")
def first_hour(people, workshop):
    """{same_command of the substituted line: {student name: job id}} for FIRST_HOUR, every job ended; each line is
    one the guide holds."""
    students = people["students"]
    fill = {"<種類>": WORKSHOP["gpu_type"], "<ジョブID>": JOB_ID}
    lines = []
    for guide, typed in FIRST_HOUR:
        assert shlex.split(typed) in guide_commands(ROOT / guide, fill), f"{guide} no longer says `{typed}`"
        lines.append(shlex.join(substitute(shlex.split(typed), students[0].kit)))
    for s in students:  # the guides' first line (handson/04: mkdir -p logs)
        assert s.sh("mkdir -p logs").returncode == 0
    jobs = {same_command(shlex.split(line)): {s.name: _job_id(s.sh(line)) for s in students} for line in lines}
    _wait_all({**workshop}, [j for by in jobs.values() for j in by.values()], 1800)
    return jobs


def test_three_students_run_the_first_hour_at_once(people, workshop, first_hour):
    """GPU check, notebook 02 tiny in its image and a 2-task sweep, as handson/04 and 05 say, submitted by three
    students back to back (offline nodes: COURSEKIT_OFFLINE=1): the jobs overlap in time, all complete."""
    shared, students = people["shared"], people["students"]
    env = {**workshop}
    states = _wait_all(env, [j for by in first_hour.values() for j in by.values()], 60)
    failed = {k: v for k, v in states.items() if v != "COMPLETED"}
    logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}"
                     for s in students for p in sorted((s.kit / "logs").glob("*")) if failed)
    assert not failed, f"{failed}\n{logs}"
    assert len(states) == 12, states
    gpu_line, bert_line, sweep_line = first_hour
    for student in students:
        gpu, bert, sweep = (first_hour[line][student.name] for line in (gpu_line, bert_line, sweep_line))
        for job in (gpu, bert, sweep):
            assert field(env, job, "Partition") == WORKSHOP["partition"]
            assert field(env, job, "UserId").startswith(f"{student.name}(")
        for log in (f"gpu_check-{gpu}.log", f"livedoor-{bert}.log", f"sweep-{sweep}_0.log", f"sweep-{sweep}_1.log"):
            assert f"container: {shared}/images/" in (student.kit / "logs" / log).read_text(), log
        for folder in (student.kit / "runs" / "00_gpu_check" / gpu, student.kit / "runs" / "02_livedoor_bert" / bert,
                       student.kit / "runs" / "02_livedoor_bert" / f"{sweep}_0"):
            assert json.loads((folder / "metrics.json").read_text())["status"] == "completed", folder
    # at the same time: every student's jobs were all submitted before any of the 12 tasks ended
    ends = [field(env, j, "EndTime") for by in first_hour.values() for j in by.values()]
    submits = [field(env, j, "SubmitTime") for by in first_hour.values() for j in by.values()]
    assert max(submits) <= min(ends), (submits, ends)
    _check_students_own_their_runs(students, people["before"], shared)


# ----------------------------------------------------------------------------- a group cache
def test_a_cache_the_kit_fills_on_first_use_is_readable_by_the_group(people):
    """A lab cache shared by the group (setgid, group-writable): the first student's download fills it; the
    files it leaves are readable by the second student (pooch alone would leave them 0600)."""
    base, (first, second, _) = people["base"], people["students"]
    cache = base / "groupcache"
    cache.mkdir()
    shutil.chown(cache, INSTRUCTOR, GROUP)
    cache.chmod(0o2770)
    with FileServer(base / "mirror") as server:
        # no shared copy to find (the site file sets COURSEKIT_SHARED, so it is unset after sourcing it)
        filled = first.sh(
            "umask 027 && COURSEKIT_SHARED= python -c 'from coursekit.lessons import livedoor; "
            f"print(livedoor.locate(cache_dir=\"{cache}/livedoor\"))'",
            COURSEKIT_MIRROR=server.url("ok", ""), COURSEKIT_OFFLINE="", HF_HUB_OFFLINE="")  # a node with network
    assert filled.returncode == 0, filled.stderr[-3000:]
    assert filled.stdout.strip().splitlines()[-1] == f"{cache}/livedoor/text", filled.stdout
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name == "ldcc-20140209.tar.gz" for p in files) and len(files) > 100
    for path in files:
        assert path.stat().st_mode & stat.S_IRGRP, f"{path} is {stat.filemode(path.stat().st_mode)}"
    read = second.sh(f"cat {cache}/livedoor/ldcc-20140209.tar.gz > /dev/null && ls {cache}/livedoor")
    assert read.returncode == 0, read.stderr


# ----------------------------------------------------------------------------- a command a notebook prints
def test_the_command_notebook_04_prints_runs_as_a_student_offline(people):
    """Notebook 04 section 12 prints a command to try (short blocks first, its parameters from
    benchmarks/results/pretrain_lift.json). A student runs notebook 04 on the login node (its tiny line with the
    substitution rule), copies the printed line from the executed notebook and types it with the same rule: it
    runs as they are, offline, on the shared folder's livedoor (nothing downloaded into their cache), both phases
    at the lengths it names; the runs are theirs alone and the shared folder is unchanged."""
    from coursekit.lessons import pretrain

    student, other = people["students"][0], people["students"][1]
    runs = student.kit / "runs" / "04_bert_pretraining"
    start = "python -m coursekit run notebooks/04_bert_pretraining.ipynb"
    first = substitute(shlex.split(f"{start} --profile tiny"), student.kit) + ["--name", "prints"]
    proc = student.sh(shlex.join(first), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = printed_lines(runs / "prints" / "04_bert_pretraining.ipynb", start)
    typed = substitute(shlex.split(line), student.kit)
    assert typed[len(shlex.split(line)):] == ["-p", "max_steps", "4", "-p", "vocab_size", "500"], typed
    proc = student.sh(shlex.join(typed), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [folder] = [p for p in runs.iterdir() if p.name != "prints"]
    record = json.loads((folder / "metrics.json").read_text())
    expected = committed_figures(pretrain.LIFT_RESULTS)["short_first"]["params"]
    assert record["status"] == "completed" and {k: record["params"][k] for k in expected} == expected
    for phase, seq_len in (("phase1", expected["seq_len"]), ("phase2", expected["phase2_seq_len"])):
        state = json.loads((folder / "work" / phase / "final" / "trainer_state.json").read_text())
        assert state["global_step"] == 4, phase
        assert f"[encode (seq {seq_len})] item 1/" in (folder / "04_bert_pretraining.ipynb").read_text(encoding="utf-8")
    assert not (student.home / ".cache" / "coursekit" / "livedoor").exists(), "read from the shared folder"
    uid = pwd.getpwnam(student.name).pw_uid
    for path in (runs, *runs.rglob("*")):
        st = path.lstat()
        assert st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), \
            f"{path}: {stat.filemode(st.st_mode)} owned by {st.st_uid}"
    intrude = other.sh(f"touch {folder}/x")
    assert intrude.returncode != 0 and "Permission denied" in intrude.stderr, intrude.stderr
    assert _snapshot(people["shared"]) == people["before"], "nothing in the shared folder changed"


# ----------------------------------------------------------------------------- every command in the guides
GUIDES = [*sorted((ROOT / "handson").glob("*.md")), ROOT / "README.md", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
NOT_HERE = [  # (pattern on the command line, why it cannot run on the test cluster)
    (r"\bnvidia-smi\b", "needs a real GPU (nvidia-smi)"),
    (r"coursekit build-container(?! --check)", "builds a multi-GB image from Docker Hub with --fakeroot (network); "
                                               "CI builds the CPU variants of the same .def files instead"),
    (r"coursekit slides\b", "renders the decks with marp-cli and Chromium: tests/harness/test_slides.py runs it"),
    (r"sbatch/jupyter\.sbatch", "JupyterLab runs until scancel or its time limit (never COMPLETED by itself): "
                                "tests/harness/test_jupyter_job.py starts it on this cluster, asks its URL and cancels it"),
    (r"\bNOTEBOOK\b|\[--", "a synopsis of the command's form, not a command"),
    (r"~/(?:data|models)/", "names files the student fetched by hand (the route without a prepared shared folder, "
                            "handson/02 section 3): the test accounts have none"),
    (r"coursekit prepare\b", "the instructor's preparation on a machine with network: this module's fixture runs it "
                             "against a loopback mirror (tests/test_prepare.py tests it in full)"),
    (r"sbatch/doctor\.sbatch(?!.*--no-gpu)", "checks that every framework sees a real GPU; the test cluster's GPUs are "
                                            "placeholders (tests/harness/test_doctor.py runs the job with --no-gpu)"),
]


ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _command(tokens: list[str]) -> list[str]:
    """The command without the VAR=value assignments typed before it."""
    i = 0
    while i < len(tokens) and ASSIGNMENT.match(tokens[i]):
        i += 1
    return tokens[i:]


def _wanted(tokens: list[str]) -> bool:
    tokens = _command(tokens)
    head = tokens[0] if tokens else ""
    return head in ("sbatch", "srun", "salloc", "mkdir") or (
        "coursekit" in tokens[:3] and head in ("python", "python3", ".venv/bin/python", "coursekit"))


def guide_blocks(path: Path) -> list[str]:
    """The bash blocks of a guide (a notebook: of its Markdown cells), in order."""
    from ..test_handson import BLOCK

    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    return [m.group(2) for m in BLOCK.finditer(text)]


def guide_commands(path: Path, fill: dict[str, str]) -> list[list[str]]:
    """The commands a student types from this guide, placeholders filled (rule 2)."""
    from ..test_handson import commands

    out = []
    for body in guide_blocks(path):
        for name, value in fill.items():
            body = body.replace(name, value)
        out += [tokens for tokens in commands(body, assignments=True) if _wanted(tokens)]
    return out


def _notebook_of(tokens: list[str], kit: Path) -> str | None:
    from coursekit.harness import slurm

    for t in tokens:
        if t.endswith(".ipynb"):
            return Path(t).stem
        if t.endswith(".sbatch") and (kit / t).is_file():
            own = slurm.script_notebook(kit / t)
            if own:
                return Path(own).stem
    return None


def substitute(tokens: list[str], kit: Path) -> list[str]:
    """Rule 1: a line that runs a notebook runs its tiny profile, a smoke run where the notebook trains."""
    notebook = _notebook_of(tokens, kit)
    runs_notebook = notebook and (any(t.endswith(".sbatch") for t in tokens) or
                                  any(t in ("run", "sweep") for t in _command(tokens)[:4]))
    if not runs_notebook or "--list" in tokens or "--help" in tokens:
        return tokens
    out = ["tiny" if t == "full" and i and tokens[i - 1] == "--profile" else t for i, t in enumerate(tokens)]
    out = ["--profile=tiny" if t == "--profile=full" else t for t in out]
    if not any(t == "--profile" or t.startswith("--profile=") for t in out):
        out += ["--profile", "tiny"]
    if notebook in TRAINS and "max_steps" not in out:
        out += ["-p", "max_steps", "4"]
    elif notebook in TRAINS:   # a line's own longer run is a smoke run too
        at = out.index("max_steps") + 1
        out[at] = str(min(int(out[at]), 4)) if out[at].isdigit() else out[at]
    if notebook in TRAINS and "vocab_size" not in out:  # the smoke corpora hold far fewer pieces than 4,000
        out += ["-p", "vocab_size", "500"]
    return out


def same_command(tokens: list[str]) -> tuple:
    """A line's form up to the order of its `-p NAME VALUE` and `--profile P` options (which the runner reads in
    any order): README's `-p epochs 3 --profile tiny` is handson/04's `--profile tiny -p epochs 3`. The `-g`
    options keep their order (it numbers a sweep's tasks)."""
    kept, options, i = [], [], 0
    while i < len(tokens):
        if tokens[i] == "-p" and i + 2 < len(tokens):
            options.append(tuple(tokens[i:i + 3]))
            i += 3
        elif tokens[i] == "--profile" and i + 1 < len(tokens):
            options.append(tuple(tokens[i:i + 2]))
            i += 2
        else:
            kept.append(tokens[i])
            i += 1
    return (*kept, *sorted(options))


def _not_here(line: str) -> str | None:
    return next((why for pattern, why in NOT_HERE if re.search(pattern, line)), None)


def _sbatch_shape(tokens: list[str]) -> tuple[str, dict[str, str]]:
    """(the batch script, the sbatch options typed before it) of an sbatch or submit line."""
    script = next(t for t in tokens if t.endswith(".sbatch"))
    opts = {}
    for t in tokens[: tokens.index(script)]:
        t = t.removeprefix("--sbatch=")
        if t.startswith("--") and "=" in t:
            k, v = t.split("=", 1)
            opts[k] = v
    return script, opts


# what each notebook's run must show beyond "completed" (the image's own Python ran it: checked for every job)
NOTEBOOK_CHECKS = {
    "00_gpu_check": lambda d, f: d["metrics"]["matmul"] and d["metrics"]["frameworks_present"],
    "02_livedoor_bert": lambda d, f: (f / "classifier.keras").is_file() and d["metrics"]["baseline_accuracy"] >= 0.5,
    "03_bart_translation": lambda d, f: d["metrics"]["bleu_tokenizer"] == "ja-mecab" and 0 <= d["metrics"]["bleu"] <= 100,
    "04_bert_pretraining": lambda d, f: d["metrics"]["keras_bert_parameters"] > 0,
}


def _check_job(student: Person, env: dict, tokens: list[str], job: str) -> str:
    """What the guide says will happen: the job (each array task) completed, its log files, its run folder,
    the processes and nodes a multi-node line asks for. Returns what was seen."""
    from coursekit.harness import slurm

    script, opts = _sbatch_shape(tokens)
    directives = slurm.sbatch_directives(student.kit / script)
    states = _wait_all(env, [job], 1800)
    assert states, f"{' '.join(tokens)}: Slurm no longer knows job {job} (MinJobAge in start-slurm.sh)"
    logs_dir = student.kit / "logs"
    failed = {k: v for k, v in states.items() if v != "COMPLETED"}
    assert not failed, f"{' '.join(tokens)}: {failed}\n" + "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(logs_dir.glob(f"*{job}*")))
    name = directives["--job-name"]
    notebook = _notebook_of(tokens, student.kit)
    seen = []
    for task in states:
        array_job, _, index = task.partition("_")
        for key in ("--output", "--error"):
            log = directives[key].replace("%x", name).replace("%A", array_job).replace("%a", index)
            log = log.replace("%j", task if not index else array_job)
            assert (student.kit / log).is_file(), f"{' '.join(tokens)}: no {log}"
        folder = student.kit / "runs" / notebook / task
        data = json.loads((folder / "metrics.json").read_text())
        assert data["status"] == "completed", data.get("error")
        in_image = "CONTAINER=none" not in tokens
        log_text = (student.kit / directives["--output"].replace("%x", name).replace("%A", array_job)
                    .replace("%a", index).replace("%j", task if not index else array_job)).read_text(errors="replace")
        expected = f"container: {student.site.parent}/images/" if in_image else "container: none"
        assert expected in log_text, f"{' '.join(tokens)}: the job ran with another image than the guide says"
        if notebook == "00_gpu_check":   # the notebook's own view agrees with the job log
            assert data["metrics"]["in_container"] is in_image, f"{' '.join(tokens)}: {data['metrics']['in_container']}"
        assert NOTEBOOK_CHECKS.get(notebook, lambda d, f: True)(data, folder), f"{notebook}: {data['metrics']}"
        seen.append(f"{task} COMPLETED, runs/{notebook}/{task}/" + (" (in the image)" if in_image else ""))
    nodes = int(opts.get("--nodes", 1))
    per_node = int(opts.get("--ntasks-per-node", 1))
    if nodes * per_node > 1:
        assert field(env, job, "NumNodes") == str(nodes) and field(env, job, "NumTasks") == str(nodes * per_node)
        log = (student.kit / directives["--output"].replace("%x", name).replace("%j", job)).read_text()
        assert f"data parallel: {nodes * per_node} processes on {nodes} node(s)" in log
        data = json.loads((student.kit / "runs" / notebook / job / "metrics.json").read_text())
        assert data["runner"]["processes"] == nodes * per_node
        seen.append(f"{nodes * per_node} processes on {nodes} nodes")
    seen.append(f"run time {field(env, job, 'RunTime')}")   # of the job (an array's first task)
    return "; ".join(seen)


def _check_students_own_their_runs(students: list[Person], before: dict, shared: Path) -> None:
    """Every run folder and log a student's jobs wrote is theirs, writable by nobody else (another student's
    `touch` is refused), and nothing in the shared folder changed."""
    for student in students:
        uid = pwd.getpwnam(student.name).pw_uid
        written = [p for d in ("runs", "logs") if (student.kit / d).exists()
                   for p in (student.kit / d, *(student.kit / d).rglob("*"))]
        assert any(p.name == "metrics.json" for p in written), f"{student.name} has no runs"
        for path in written:
            st = path.lstat()
            assert st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), \
                f"{path}: {stat.filemode(st.st_mode)} owned by {st.st_uid}"
        folder = next(p.parent for p in written if p.name == "metrics.json")
        other = next(s for s in students if s is not student)
        intrude = other.sh(f"touch {folder}/x")
        assert intrude.returncode != 0 and "Permission denied" in intrude.stderr, intrude.stderr
    assert _snapshot(shared) == before, "nothing in the shared folder changed"


def test_every_command_in_the_guides_runs_as_written(people, workshop, first_hour):
    """Each sbatch / srun / mkdir / `python -m coursekit` line of handson/, the README and the notebooks, typed by a
    student account after `source site.env`, with the substitution rule of this module's docstring. The guides
    are shared out among the three students, whose jobs run side by side on the workshop partition (no line
    waits for a job unless it names one); the nodes are offline (COURSEKIT_OFFLINE=1, HF_HUB_OFFLINE=1: the
    corpora and images come from the shared folder). Each student's runs and logs are theirs alone. The first
    hour's lines (FIRST_HOUR) were typed by all three students at once (`first_hour`): their jobs are checked here."""
    students, env = people["students"], {**workshop}
    report, jobs, ran, shown = [], [], {}, []
    by_name = {s.name: s for s in students}
    for i, guide in enumerate(GUIDES):
        student = students[i % len(students)]
        last_job = ""
        where = guide.relative_to(ROOT)
        fill = {"<種類>": WORKSHOP["gpu_type"], "<ジョブID>": JOB_ID}
        for tokens in guide_commands(guide, fill):
            typed = shlex.join(tokens)
            why = _not_here(typed)
            if why or "PLACEHOLDER" in typed:
                report.append((str(where), typed, "NOT RUN: " + (why or "a placeholder the student fills in")))
                continue
            line = shlex.join(substitute(tokens, student.kit))
            key = same_command(shlex.split(line))
            # the same line in another guide ran once, as written (a mkdir is each student's own folder: always)
            if key in ran and JOB_ID not in line and _command(tokens)[:1] != ["mkdir"]:
                report.append((str(where), line, f"the same line as in {ran[key]}: ran there"))
                continue
            ran[key] = str(where)
            if key in first_hour:   # typed by every student at once before this test: their jobs are checked
                for name, job in first_hour[key].items():
                    jobs.append((by_name[name], tokens, job, str(where), line))
                last_job = first_hour[key][student.name]
                report.append((str(where), line, "typed by " + ", ".join(first_hour[key]) + " at once: jobs " +
                               ", ".join(first_hour[key].values())))
                continue
            if JOB_ID in line:
                if not last_job:
                    report.append((str(where), typed, "NOT RUN: names a job this guide did not submit"))
                    continue
                _wait_all(env, [last_job], 1800)   # the job it looks at has ended
                line = line.replace(JOB_ID, last_job)
            if _command(tokens)[:1] == ["srun"] and "--pty" in tokens:
                proc = student.sh(line, stdin="echo IN-JOB $SLURM_JOB_ID $SLURM_JOB_PARTITION; exit\n", timeout=300)
                assert proc.returncode == 0 and re.search(rf"IN-JOB \d+ {WORKSHOP['partition']}", proc.stdout), \
                    f"{where}: {line}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
                report.append((str(where), line, "an interactive shell in a job on the workshop partition"))
                continue
            proc = student.sh(line, timeout=1800)
            assert proc.returncode == 0, f"{where}: {line}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            if any(t.endswith(".sbatch") for t in tokens) and "--dry-run" not in tokens:
                last_job = _job_id(proc)
                jobs.append((student, tokens, last_job, str(where), line))
                report.append((str(where), line, f"job {last_job}"))
            else:
                report.append((str(where), line, "exit 0"))
                if "doctor" in tokens:
                    shown.append(f"[{where}: {line}]\n{proc.stdout}")
    failures = []
    for student, tokens, job, where, line in jobs:   # every job is looked at; the report holds what each showed
        try:
            seen = _check_job(student, env, tokens, job)
            assert field(env, job, "Partition") == WORKSHOP["partition"], line
            assert field(env, job, "UserId").startswith(f"{student.name}("), line
            if "submit" in tokens and "sbatch/gpu_check.sbatch" in tokens:  # submit asks for the site's GPU type
                assert f"gpu:{WORKSHOP['gpu_type']}:1" in field(env, job, "TresPerNode"), line
        except AssertionError as e:
            seen = f"FAILED (job {job}): {str(e).splitlines()[0][:300]}"
            failures.append(f"{where}: {line}\n{e}")
        report.append((where, line, seen))
    text = "\n".join(f"{w}\t{l}\t{s}" for w, l, s in report)
    out = Path(os.environ.get("COURSEKIT_GUIDE_REPORT", people["base"] / "guide-commands.tsv"))
    out.write_text(text + "\n", encoding="utf-8")
    print(f"\n[guides] {len(report)} lines, {len(jobs)} jobs; report: {out}\n{text}")
    printed = "[prepare, as the instructor ran it]\n" + people["prepared"][-4000:] + "\n" + "\n".join(shown)
    out.with_suffix(".out").write_text(printed, encoding="utf-8")
    print("\n" + printed)
    assert not failures, f"{len(failures)} of {len(jobs)} jobs are not what the guide says:\n" + "\n\n".join(failures)
    _check_students_own_their_runs(students, people["before"], people["shared"])
    assert jobs, "the guides submit jobs"
