"""CPU test images of every defs/*.def, built with Apptainer and cached on this machine.

    python -m tests.harness.cpu_images            # build (or reuse) all of them; prints the times
    python -m tests.harness.cpu_images transformers

Layout under /tmp/coursekit-apptainer/images/ (COURSEKIT_IMAGE_CACHE): one folder per image named by
the hash of everything that goes into it, so a rerun with identical inputs reuses it and a changed
input builds anew:
  * `base-<hash>/base`: Debian (debootstrap) + python3 + pip, from containers.cpu_base_def (about 1 min);
  * `<def>-deps-<hash>/<def>-deps-cpu`: a cache layer only: the base plus the .def's pinned packages
    (its %post without the lines that need %files, i.e. without the kit itself); its hash over that
    text, so a change of the kit's library does not reinstall gigabytes of frameworks;
  * `<def>-<hash>/<def>-cpu`: the variant generated from the real .def (containers.cpu_test_variant:
    `Bootstrap: localimage` from the deps layer, the real %files/%environment/%test and the WHOLE real
    %post: pip finds every pin already satisfied and installs the kit), its hash over the generated text
    and the %files (lib/coursekit, pyproject.toml, README.md).
Images are sandboxes (folders): the same build without minutes of squashfs compression on 2 cores.
Several sessions may share the machine: one builds while the others wait on a lock; an image in use is
held with a shared lock; older images of the same .def that nobody holds are removed.
COURSEKIT_REBUILD_IMAGE=1 forces builds. Apptainer: tests/cluster/install-apptainer.sh.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coursekit.harness import containers

ROOT = Path(__file__).resolve().parents[2]
APPTAINER_PREFIX = Path("/tmp/coursekit-apptainer")
CACHE = Path(os.environ.get("COURSEKIT_IMAGE_CACHE", APPTAINER_PREFIX / "images"))
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class ImagesUnavailable(RuntimeError):
    """Apptainer cannot be had here, or an image cannot be built."""


def images_expected() -> bool:
    """False when COURSEKIT_NO_IMAGES=1 says this machine is not expected to build images."""
    return os.environ.get("COURSEKIT_NO_IMAGES", "") not in ("1", "true", "yes")


def runtime() -> str:
    """apptainer on PATH, the one tests/cluster/install-apptainer.sh put under APPTAINER_PREFIX, or
    install it there now (root on Debian). Raises ImagesUnavailable with the reason."""
    found = containers.find_runtime()
    if found:
        return found
    exe = APPTAINER_PREFIX / "prefix/usr/bin/apptainer"
    if exe.exists():
        return str(exe)
    if sys.platform != "linux" or os.geteuid() != 0:
        raise ImagesUnavailable("installing Apptainer needs root on Linux (tests/cluster/install-apptainer.sh)")
    APPTAINER_PREFIX.mkdir(parents=True, exist_ok=True)
    with open(APPTAINER_PREFIX / "install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time on a shared machine
        proc = subprocess.run(["bash", str(ROOT / "tests/cluster/install-apptainer.sh")], capture_output=True,
                              text=True, env={**os.environ, "PREFIX": str(APPTAINER_PREFIX / "prefix"),
                                              "WORK": str(APPTAINER_PREFIX / "work")}, timeout=900)
    if proc.returncode != 0 or not exe.exists():
        raise ImagesUnavailable(f"tests/cluster/install-apptainer.sh failed: {proc.stderr.strip()[-1500:]}")
    return str(exe)


def torch_cpu_links() -> list[str]:
    """Where pip finds the CPU build of the pinned torch: COURSEKIT_CPU_WHEELS (folders or URLs,
    space-separated), else a local wheel folder of this machine's pip configuration holding a
    torch-*+cpu wheel, else PyTorch's CPU index when reachable. Empty: PyPI's torch (the CUDA build,
    gigabytes of nvidia packages; it works, slowly)."""
    if os.environ.get("COURSEKIT_CPU_WHEELS"):
        return os.environ["COURSEKIT_CPU_WHEELS"].split()
    pins = containers.read_pins(ROOT / "requirements.txt")
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    with contextlib.suppress(Exception):
        conf = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=60).stdout
        folders += [w for line in conf.splitlines() if "find-links" in line
                    for w in line.split("=", 1)[1].strip("'\" ").split()]
    for folder in dict.fromkeys(folders):
        if Path(folder).is_dir() and list(Path(folder).glob(f"torch-{pins['torch']}+cpu-*.whl")):
            return [folder]
    with contextlib.suppress(Exception):
        import urllib.request

        urllib.request.urlopen(TORCH_CPU_INDEX + "/torch/", timeout=10).close()
        return [TORCH_CPU_INDEX + "/torch/"]
    return []


def _ca_bundle() -> str | None:
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    return ca if ca and Path(ca).is_file() else None


def _files_digest(definition: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    d = containers.parse_def(definition)
    for line in d.sections.get("files", "").splitlines():
        src = line.split()[0] if line.split() else ""
        path = ROOT / src
        for f in sorted([path] if path.is_file() else path.rglob("*") if path.is_dir() else []):
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(ROOT)).encode() + f.read_bytes())
    return digest


def _cached_build(name: str, key: str, text: str, log, binds: list[str] = ()) -> tuple[Path, float | None]:
    """Build `text` into CACHE/<name>-<key>/<image> unless a finished build is there; return the image
    and the build seconds (None: reused). Holds a shared lock on it for this process's lifetime."""
    folder = CACHE / f"{name}-{key}"
    image = folder / (name if name == "base" else f"{name}-cpu")
    if folder in _READY:  # this process holds it already (a second exclusive lock would wait on itself)
        return image, None
    CACHE.mkdir(parents=True, exist_ok=True)
    lock = open(CACHE / f"{folder.name}.lock", "w")
    _HELD.append(lock)
    fcntl.flock(lock, fcntl.LOCK_EX)
    seconds = None
    if (folder / "ok").exists() and image.is_dir() and not os.environ.get("COURSEKIT_REBUILD_IMAGE"):
        log(f"[images] {name}: reused {image} (built in {(folder / 'ok').read_text().strip()} s)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / f"{image.name}.def").write_text(text)
        t0 = time.monotonic()
        out = folder / "build.log"
        with open(out, "w") as fh, contextlib.redirect_stdout(fh):
            try:
                containers.build(folder / f"{image.name}.def", image, sandbox=True, runtime=runtime(),
                                 cwd=ROOT, extra=list(binds))
            except containers.ContainerError as exc:
                raise ImagesUnavailable(f"{name}: {exc}\n{out.read_text()[-3000:]}") from None
        seconds = time.monotonic() - t0
        (folder / "ok").write_text(f"{seconds:.1f}\n")
        log(f"[images] {name}: built in {seconds:.1f} s -> {image}")
    fcntl.flock(lock, fcntl.LOCK_SH)
    # older images of this name that nobody holds
    for other in CACHE.glob(f"{name}-*.lock"):
        if other.stem == folder.name or not re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}", other.stem):
            continue
        with open(other, "w") as old:
            try:
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(other.with_suffix(""), ignore_errors=True)
            other.unlink(missing_ok=True)
    _READY.add(folder)
    return image, seconds


_HELD: list = []
_READY: set[Path] = set()
TIMES: dict[str, float | None] = {}


def base_image(log=print) -> Path:
    text = containers.cpu_base_def()
    image, seconds = _cached_build("base", hashlib.sha256(text.encode()).hexdigest()[:16], text, log)
    TIMES.setdefault("base", seconds)
    return image


def deps_text(definition: Path, base: Path, links: list[str]) -> str:
    """The cache layer of a variant: the generated variant without %files/%test and without the %post
    lines that use them (the kit's own install), i.e. base + the pinned packages."""
    ca = _ca_bundle()
    variant = containers.cpu_test_variant(definition, base=base, ca_bundle=ca, find_links=links)
    d = containers.parse_def(_scratch_def(variant))
    post = "\n".join(line for line in d.sections["post"].splitlines() if "/opt/coursekit" not in line)
    files = f"%files\n    {ca} /opt/build-ca.crt\n\n" if ca else ""
    return (f"Bootstrap: localimage\nFrom: {base}\n\n# GENERATED cache layer of {definition.name}: "
            f"base + its pinned packages\n\n{files}%environment\n{d.sections['environment']}\n\n%post\n{post}\n")


def _scratch_def(text: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f".scratch-{os.getpid()}.def"
    path.write_text(text)
    return path


def cpu_image(def_name: str, log=print) -> Path:
    """The CPU test image of defs/<def_name>.def (built or reused)."""
    definition = ROOT / "defs" / f"{def_name}.def"
    base = base_image(log)
    links = torch_cpu_links()
    binds = containers.build_binds(links)
    deps = deps_text(definition, base, links)
    deps_image, seconds = _cached_build(f"{def_name}-deps", hashlib.sha256(deps.encode()).hexdigest()[:16],
                                        deps, log, binds)
    TIMES[f"{def_name}-deps"] = seconds
    text = containers.cpu_test_variant(definition, base=deps_image, ca_bundle=_ca_bundle(), find_links=links)
    digest = _files_digest(definition)
    digest.update(text.encode())
    image, seconds = _cached_build(def_name, digest.hexdigest()[:16], text, log, binds)
    TIMES[def_name] = seconds
    return image


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or sorted(p.stem for p in (ROOT / "defs").glob("*.def"))
    t0 = time.monotonic()
    try:
        for name in names:
            cpu_image(name)
    except ImagesUnavailable as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"build_seconds": TIMES, "total_seconds": round(time.monotonic() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
