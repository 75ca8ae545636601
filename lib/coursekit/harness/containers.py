"""Singularity/Apptainer definition files: parse, check, build.

    python -m coursekit build-container defs/keras-bert.def            # -> defs/keras-bert.sif
    python -m coursekit build-container defs/keras-bert.def --sandbox  # a writable folder instead
    python -m coursekit build-container defs/keras-bert.def --check    # only check the .def file

The sandbox workflow: build a folder (--sandbox), try things in it (`apptainer shell --writable
defs/keras-bert/`), write what worked into the .def file, rebuild the .sif from the .def.

`check_def` finds what breaks images quietly: a missing section, an unpinned or mis-pinned package
(an unpinned package resolves to whatever is newest: `keras` to Keras 3, which breaks keras-bert, or a
TensorFlow built for another CUDA), `tensorflow-cpu` (it writes the same `tensorflow/` folder as the
GPU build, and the last one installed wins).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .runs import project_root

SECTION = re.compile(r"^%(\w+)\s*(.*)$")
HEADER = re.compile(r"^(\w+):\s*(.*)$")
BOOTSTRAPS = ("docker", "library", "oras", "shub", "localimage", "debootstrap", "yum", "zypper",
              "docker-daemon", "docker-archive", "scratch", "busybox")
REQUIRED_SECTIONS = ("post", "environment", "test", "labels", "help")
REQUIRED_ENV = ("PYTHONNOUSERSITE=1", "TF_USE_LEGACY_KERAS=1", "HF_HOME=")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)$")
FORBIDDEN = {"tensorflow-cpu": "installs a second TensorFlow over the GPU one",
             "keras": "Keras 3 breaks keras-bert; tf-keras (Keras 2) is the pinned one"}
# The frameworks whose CUDA builds a CPU test variant replaces by CPU builds of the SAME pinned version
# (found through `find_links`/`extra_index_url`, e.g. PyTorch's CPU wheels); see cpu_test_variant.
CUDA_WHEELS = ("torch",)
# Where a build sees the host's wheel folders (the base image creates these mount points).
FIND_LINKS_MOUNT = "/mnt/find-links"


class ContainerError(RuntimeError):
    """A build cannot start or failed; the message says what to do."""


@dataclass
class DefFile:
    path: Path
    header: dict[str, str]
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.header.get("Bootstrap", "").lower()

    def pip_packages(self) -> list[str]:
        """Every requirement given to `pip install` in %post (paths and options left out)."""
        return pip_install_args(self.sections.get("post", ""))


def parse_def(path: str | Path) -> DefFile:
    """Split a .def file into its header (Bootstrap, From, ...) and its %sections."""
    path = Path(path)
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = SECTION.match(line)
        if m:
            current = m.group(1).lower()
            if current in sections:
                raise ValueError(f"{path}: section %{current} appears twice")
            sections[current] = []
            continue
        if current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                h = HEADER.match(line.strip())
                if not h:
                    raise ValueError(f"{path}: not a header line before the first section: {line!r}")
                header[h.group(1)] = h.group(2).strip()
        else:
            sections[current].append(line)
    return DefFile(path, header, {k: "\n".join(v).strip("\n") for k, v in sections.items()})


def pip_install_args(script: str) -> list[str]:
    """The requirement arguments of every `pip install` in a shell script (continuations joined)."""
    joined = re.sub(r"\\\n", " ", script)
    out = []
    for line in joined.splitlines():
        m = re.search(r"pip3?\s+install\s+(.*)$", line.split("#")[0])
        if not m:
            continue
        for arg in m.group(1).split():
            if arg.startswith("-") or arg.startswith("/") or arg.startswith(".") or arg in ("&&", ";"):
                continue
            out.append(arg)
    return out


def read_pins(requirements: str | Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (names normalised)."""
    pins = {}
    for line in Path(requirements).read_text(encoding="utf-8").splitlines():
        m = PIN.match(line.split("#")[0].strip())
        if m:
            pins[normalise(m.group(1))] = m.group(3)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_def(path: str | Path, requirements: str | Path | None = None) -> list[str]:
    """Problems of a .def file, in words (an empty list: fine)."""
    try:
        d = parse_def(path)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if not d.bootstrap:
        problems.append("no `Bootstrap:` line in the header")
    elif d.bootstrap not in BOOTSTRAPS:
        problems.append(f"unknown bootstrap agent {d.bootstrap!r}")
    base = d.header.get("From", "")
    if d.bootstrap != "scratch" and not base:
        problems.append("no `From:` line: which base image?")
    if d.bootstrap == "docker" and base:
        tag = base.rsplit(":", 1)[1] if ":" in base.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            problems.append(f"base image {base!r} has no fixed tag: pin it (e.g. :2.21.0-gpu)")
    for name in REQUIRED_SECTIONS:
        if not d.sections.get(name, "").strip():
            problems.append(f"section %{name} is missing or empty")
    env = d.sections.get("environment", "")
    for needed in REQUIRED_ENV:
        if needed not in env:
            problems.append(f"%environment does not set {needed.rstrip('=')}")
    if "coursekit gpu" not in d.sections.get("test", ""):
        problems.append("%test does not run `python3 -m coursekit gpu`")
    if "conda install" in d.sections.get("post", ""):
        problems.append("%post uses conda: the kit installs with pip only (do not mix the two)")
    pins = read_pins(requirements) if requirements else {}
    for arg in d.pip_packages():
        m = PIN.match(arg)
        name = normalise(m.group(1) if m else re.split(r"[<>=!~\[]", arg)[0])
        if name in FORBIDDEN:
            problems.append(f"`{arg}` in %post: {FORBIDDEN[name]}")
        if not m:
            problems.append(f"`{arg}` in %post is not pinned with ==: pin the tested version")
        elif pins and name in pins and pins[name] != m.group(3):
            problems.append(f"{name}=={m.group(3)} in %post but {name}=={pins[name]} in requirements.txt")
        elif pins and name not in pins:
            problems.append(f"{name} is installed in %post but not pinned in requirements.txt")
    return problems


# ----------------------------------------------------------------------------- test variant
def cpu_base_def(*, release: str = "bookworm", mirror: str = "http://deb.debian.org/debian") -> str:
    """The .def of the shared base of every CPU test variant: Debian (debootstrap: Docker Hub is out of
    reach in CI) with python3 + pip. Built once per machine and reused by the variants through
    `Bootstrap: localimage`, the same flow as pulling a GPU base image once on the cluster."""
    return (f"Bootstrap: debootstrap\nOSVersion: {release}\nMirrorURL: {mirror}\n\n"
            "# GENERATED by coursekit.harness.containers.cpu_base_def: the base of the CPU test variants\n"
            "%post\n"
            "    apt-get update -qq\n"
            "    apt-get install -y -qq --no-install-recommends python3 python3-pip ca-certificates >/dev/null\n"
            f"    mkdir -p {' '.join(f'{FIND_LINKS_MOUNT}-{i}' for i in range(4))}\n"
            "    apt-get clean\n"
            "    rm -rf /var/lib/apt/lists/*\n")


def cpu_test_variant(path: str | Path, *, base: str | Path | None = None, release: str = "bookworm",
                     mirror: str = "http://deb.debian.org/debian", ca_bundle: str | None = None,
                     find_links: list[str] | tuple[str, ...] = (), extra_index_url: str | None = None) -> str:
    """A .def text for a CPU test image GENERATED from a real .def. Only the base differs: Debian with
    python3 + pip instead of the framework's GPU image (`base`: a local image built from cpu_base_def,
    used with `Bootstrap: localimage`; without it: debootstrap and the same apt step inline). %files,
    %environment, %test, %labels, %help and the whole %post are the real ones, every pinned package
    included; pip finds CPU builds of the CUDA frameworks (CUDA_WHEELS, same version, e.g.
    torch-2.13.0+cpu) in `find_links` folders (bind them into the build: see build_binds) or at
    `extra_index_url`. `ca_bundle`: a CA file copied in for pip, for networks whose proxy re-signs TLS
    (the build cannot see the host's)."""
    d = parse_def(path)
    env = ["    export PIP_BREAK_SYSTEM_PACKAGES=1"]
    if ca_bundle:
        env.append("    export PIP_CERT=/opt/build-ca.crt")
    if find_links:
        if not base and any(not _is_url(f) for f in find_links):
            raise ValueError("local find_links folders need a base image (its mount points): pass base=")
        inside = [str(f) if _is_url(f) else f"{FIND_LINKS_MOUNT}-{i}" for i, f in enumerate(find_links)]
        env.append(f"    export PIP_FIND_LINKS=\"{' '.join(inside)}\"")
    if extra_index_url:
        env.append(f"    export PIP_EXTRA_INDEX_URL={extra_index_url}")
    if base:
        header = f"Bootstrap: localimage\nFrom: {base}\n"
        apt = []
    else:
        header = f"Bootstrap: debootstrap\nOSVersion: {release}\nMirrorURL: {mirror}\n"
        apt = ["    apt-get update -qq",
               "    apt-get install -y -qq --no-install-recommends python3 python3-pip ca-certificates >/dev/null"]
    preamble = ("    # --- generated CPU test variant: Python from Debian, CPU builds of the frameworks ---\n"
                + "".join(line + "\n" for line in [*apt, *env]) + "    # --- the real %post ---\n")
    parts = [header, f"# GENERATED from {Path(path).name} by coursekit.harness.containers.cpu_test_variant: do not edit\n"]
    for name in ("labels", "help", "files", "environment"):
        text = d.sections.get(name)
        if name == "files" and ca_bundle:
            text = (text + "\n" if text else "") + f"    {ca_bundle} /opt/build-ca.crt"
        if text is not None:
            parts.append(f"%{name}\n{text}\n")
    parts.append("%post\n" + preamble + d.sections["post"] + "\n")
    parts.append(f"%test\n{d.sections['test']}\n")
    return "\n".join(parts)


def localimage_variant(path: str | Path, base: str | Path) -> str:
    """The .def with its header replaced by `Bootstrap: localimage` + `From: BASE`, everything else
    verbatim: build from a base image pulled ONCE (`apptainer pull BASE docker://<the .def's From>`)
    instead of fetching gigabytes from Docker Hub at every build (the original workshop's flow)."""
    d = parse_def(path)
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if SECTION.match(line))
    head = [line for line in lines[:first] if not HEADER.match(line.strip()) or line.lstrip().startswith("#")]
    origin = f"{d.header.get('Bootstrap', '')}://{d.header.get('From', '')}"
    return "\n".join([f"Bootstrap: localimage", f"From: {base}",
                      f"# GENERATED from {Path(path).name} (base pulled from {origin}) by coursekit build-container --base",
                      *head, *lines[first:]]) + "\n"


def pull_command(path: str | Path, image: str | Path, runtime: str = "apptainer") -> str:
    """The command that pulls a .def's base image once into `image`."""
    d = parse_def(path)
    return f"{runtime} pull {image} {d.bootstrap}://{d.header.get('From', '')}"


def _is_url(link) -> bool:
    return str(link).startswith(("http://", "https://", "file://"))


def build_binds(find_links: list[str] | tuple[str, ...] = ()) -> list[str]:
    """`--bind` options that show the host's wheel folders to %post during a build (at the mount points
    the base image made; the variant's PIP_FIND_LINKS names them)."""
    out = []
    for i, folder in enumerate(find_links):
        if not _is_url(folder):
            out += ["--bind", f"{folder}:{FIND_LINKS_MOUNT}-{i}:ro"]
    return out


# ----------------------------------------------------------------------------- build
def find_runtime() -> str | None:
    """apptainer or singularity, whichever is on PATH (apptainer first)."""
    return shutil.which("apptainer") or shutil.which("singularity")


def explain_failure(output: str, runtime: str) -> str | None:
    """A plain-words hint for the build failures students meet most."""
    low = output.lower()
    if "subuid" in low or "subgid" in low or ("fakeroot" in low and "mapping" in low):
        return (f"--fakeroot needs an /etc/subuid and /etc/subgid entry for your user. Ask the admins, "
                f"or (as root): {runtime} config fakeroot --add $USER")
    if "no space left" in low:
        return ("the build ran out of disk space in its cache/tmp folder: point APPTAINER_CACHEDIR and "
                "APPTAINER_TMPDIR (SINGULARITY_CACHEDIR / SINGULARITY_TMPDIR) at a larger disk, e.g. "
                "export APPTAINER_TMPDIR=/scratch/$USER/tmp")
    if "permission denied" in low and "fakeroot" not in low:
        return "permission denied: build with --fakeroot (the default here) or on a machine where you are root"
    return None


def build(definition: str | Path, output: str | Path | None = None, *, sandbox: bool = False,
          fakeroot: bool = True, force: bool = True, runtime: str | None = None,
          extra: list[str] = (), cwd: str | Path | None = None) -> Path:
    """`apptainer build --fakeroot OUTPUT DEF`, run from the kit's folder (for %files). Raises
    ContainerError with a hint on the usual failures."""
    definition = Path(definition).resolve()
    if not definition.is_file():
        raise ContainerError(f"definition file not found: {definition}")
    runtime = runtime or find_runtime()
    if not runtime:
        raise ContainerError(
            "neither apptainer nor singularity is installed here. On the cluster: `module load "
            "apptainer` (or singularity), or build on a machine where it is installed and copy the .sif")
    if output is None:
        output = definition.with_suffix("" if sandbox else ".sif")
    output = Path(output).resolve()
    command = [runtime, "build"]
    if fakeroot:
        command.append("--fakeroot")
    if force:
        command.append("--force")
    if sandbox:
        command.append("--sandbox")
    command += [*extra, str(output), str(definition)]
    print("+ " + " ".join(command), flush=True)
    cwd = Path(cwd) if cwd else (project_root(definition.parent) or definition.parent)
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        text = "".join(lines[-200:])
        hint = explain_failure(text, Path(runtime).name)
        raise ContainerError(f"{Path(runtime).name} build failed (exit {proc.returncode})"
                             + (f": {hint}" if hint else "; see the output above"))
    return output


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit build-container",
        description="Check a .def file and build it with apptainer/singularity build --fakeroot.")
    parser.add_argument("definition", type=Path, help="e.g. defs/keras-bert.def")
    parser.add_argument("-o", "--output", type=Path, help="image path (default: beside the .def)")
    parser.add_argument("--sandbox", action="store_true",
                        help="build a writable folder (then: apptainer shell --writable FOLDER)")
    parser.add_argument("--no-fakeroot", action="store_true", help="build as real root")
    parser.add_argument("--base", type=Path, metavar="IMAGE",
                        help="build from a base image pulled once (Bootstrap: localimage) instead of the "
                             ".def's From: (pull it first: apptainer pull IMAGE docker://<From>)")
    parser.add_argument("--check", action="store_true", help="only check the .def file")
    parser.add_argument("--cpu-variant", action="store_true",
                        help="print the generated CPU test variant of the .def and exit")
    args = parser.parse_args(argv)
    if not args.definition.is_file():
        print(f"coursekit build-container: error: {args.definition} not found / 定義ファイルが見つかりません",
              file=sys.stderr)
        return 2
    if args.cpu_variant:
        print(cpu_test_variant(args.definition))
        return 0
    root = project_root(args.definition.resolve().parent)
    problems = check_def(args.definition, root / "requirements.txt" if root else None)
    for p in problems:
        print(f"{args.definition}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.definition}: ok (sections, base image, pinned versions) / 定義ファイルに問題はありません")
    if args.check:
        return 0
    definition = args.definition
    if args.base:
        if not args.base.exists():
            print(f"coursekit build-container: error: base image {args.base} not found; pull it once "
                  f"(on a node with network): {pull_command(args.definition, args.base)} / ベースイメージが"
                  "ありません。ネットワークのあるノードで一度 pull してください", file=sys.stderr)
            return 2
        import tempfile

        generated = Path(tempfile.mkdtemp(prefix="coursekit-def-")) / args.definition.name
        generated.write_text(localimage_variant(args.definition, args.base.resolve()), encoding="utf-8")
        print(f"building from the local base image {args.base} (Bootstrap: localimage): {generated}")
        definition = generated
        if args.output is None:
            args.output = args.definition.with_suffix("" if args.sandbox else ".sif")
    try:
        out = build(definition, args.output, sandbox=args.sandbox, fakeroot=not args.no_fakeroot,
                    cwd=root or Path.cwd())
    except ContainerError as exc:
        print(f"coursekit build-container: error: {exc}", file=sys.stderr)
        return 1
    print(f"built {out} / イメージを作りました")
    if args.sandbox:
        print(f"try things:  {Path(find_runtime() or 'apptainer').name} shell --writable {out}\n"
              f"then write what worked into {args.definition} and rebuild the .sif\n"
              f"サンドボックスの中で試し、うまくいった手順を {args.definition.name} に書いてから .sif を作り直します")
    return 0
