"""`python -m coursekit doctor`: what a student runs first, on the login node and as a short job
(`sbatch sbatch/doctor.sbatch`). One line per check, `ok` or what is wrong and the fix; exit status 1
when a check fails.

    python -m coursekit doctor            # login node: Python, the kit, site file, partition, GPU type,
                                          # images, the shared folder against its manifest, logs/, space
    python -m coursekit doctor --deep     # the shared folder's sha256 too (slower)
    sbatch sbatch/doctor.sbatch           # on a compute node: the same, and each framework in each image
                                          # sees the GPU (python3 -m coursekit gpu inside the image)

The manifest of the shared folder (SHARED_DIR/manifest.json) is written by `python -m coursekit prepare`;
its reading and checking live here, so that the harness never imports the lessons.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import containers, slurm
from .runs import project_root, runs_root

MANIFEST = "manifest.json"
PYTHON = (3, 11)                 # the version requirements.txt is tested with
FRAMEWORKS = ("torch", "tensorflow")
SPACE_GB = {"home": 2, "runs": 10}   # below: a warning; below 1 GB: a failure
STATUS = {"ok": "[ok]  ", "warn": "[warn]", "FAIL": "[FAIL]", "skip": "[skip]"}


@dataclass
class Check:
    name: str
    status: str      # ok | warn | FAIL | skip
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{STATUS[self.status]} {self.name}: {self.detail}{fix}"


# ----------------------------------------------------------------------------- the manifest
def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_stats(folder: Path) -> tuple[int, int]:
    """(files, bytes) under a folder (links not followed)."""
    n = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(st.st_mode):
                n, size = n + 1, size + st.st_size
    return n, size


def read_manifest(shared: Path) -> dict:
    """SHARED/manifest.json: {"files": {relative path: entry}, "missing": {item: why}, ...}; an empty
    one when there is none (or it is unreadable)."""
    path = Path(shared) / MANIFEST
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                data.setdefault("missing", {})
                return data
        except (OSError, ValueError):
            pass
    return {"format": 1, "files": {}, "missing": {}}


def problem(shared: Path, rel: str, entry: dict | None, deep: bool = True) -> str | None:
    """What is wrong with SHARED/rel against its manifest entry (None: intact). Sizes always; sha256 when
    `deep` and recorded; a folder entry by its file count and bytes when recorded."""
    path = Path(shared) / rel
    if entry is None:
        return "not in the manifest"
    if not os.path.lexists(path):
        return "missing"
    if not path.exists():
        return f"a broken link to {os.readlink(path)}"
    if entry.get("kind") == "folder":
        if not path.is_dir():
            return "not a folder"
        if not os.access(path, os.R_OK | os.X_OK):
            return "not readable"
        if "files" in entry:
            found = folder_stats(path)
            if found != (entry["files"], entry["size"]):
                return f"{found[0]} files / {found[1]} bytes, the manifest says {entry['files']} / {entry['size']}"
        return None
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable"
    size = path.stat().st_size
    if size != entry.get("size"):
        return f"{size} bytes, the manifest says {entry.get('size')} (cut off or changed)"
    if deep and entry.get("sha256") and sha256(path) != entry["sha256"]:
        return "sha256 differs from the manifest (damaged or changed)"
    return None


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# ----------------------------------------------------------------------------- login-node checks
def check_python() -> Check:
    found = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] == PYTHON:
        return Check("python", "ok", f"{found} ({sys.executable})")
    want = ".".join(map(str, PYTHON))
    return Check("python", "FAIL", f"{found} ({sys.executable}); the kit is tested with {want}",
                 f"make the venv with Python {want}: python{want} -m venv .venv && .venv/bin/pip install -r "
                 f"requirements.txt (module avail python) / Python {want} で venv を作り直してください")


def check_kit(kit: Path | None) -> Check:
    here = Path(__file__).resolve().parents[1]
    try:
        version = md.version("coursekit")
    except md.PackageNotFoundError:
        return Check("kit", "FAIL", f"coursekit imported from {here} but not installed",
                     "from the kit's folder: .venv/bin/pip install -r requirements.txt / 教材をインストールしてください")
    if kit is None:
        return Check("kit", "warn", f"coursekit {version} ({here}); this folder is not the kit's checkout",
                     "run from the kit's folder (cd coursekit) / 教材のフォルダで実行してください")
    if not here.is_relative_to(kit):
        return Check("kit", "warn", f"coursekit {version} is imported from {here}, not from this checkout {kit}",
                     "in this checkout: .venv/bin/pip install -r requirements.txt (installs it editable) / "
                     "このフォルダの教材をインストールしてください")
    pins = containers.read_pins(kit / "requirements.txt") if (kit / "requirements.txt").is_file() else {}
    differ = []
    for name, want in pins.items():
        try:
            got = md.version(name)
        except md.PackageNotFoundError:
            continue   # not needed on the login node (the jobs run in the images)
        if got.split("+")[0] != want:   # 2.13.0+cpu is the CPU build of the pinned 2.13.0
            differ.append(f"{name} {got} (pinned {want})")
    if differ:
        return Check("kit", "warn", f"coursekit {version} from {kit}; {len(differ)} package(s) differ from "
                     f"requirements.txt: {', '.join(differ[:3])}",
                     ".venv/bin/pip install -r requirements.txt / 固定した版を入れ直してください")
    return Check("kit", "ok", f"coursekit {version} from {kit} (installed packages match requirements.txt)")


def check_site(env: dict) -> tuple[Check, dict]:
    """The site file: set, readable, sourced in this shell. Returns the check and the environment with the
    site file's values (what submit uses)."""
    site = env.get(slurm.SITE_VAR)
    if not site:
        return (Check("site", "warn", f"no site file ({slurm.SITE_VAR} is not set): Slurm's defaults, no shared folder",
                      "add `source /path/to/shared/site.env` (the path from the instructor) to ~/.bashrc, then open "
                      "a new shell / 講師に聞いたサイト設定ファイルを ~/.bashrc で source してください"), env)
    try:
        values = slurm.read_site_file(site)
    except slurm.SubmitError as exc:
        return Check("site", "FAIL", str(exc), "ask the instructor for the site file's path / 講師に確認してください"), env
    unsourced = [k for k, v in values.items() if v and env.get(k) != v and k != slurm.SITE_VAR]
    merged = slurm.site_environment(env)
    used = [f"{what} {merged[var]}" for what, var in slurm.SITE_SLURM if merged.get(var)]
    for what, var in (("GPU type", slurm.GPU_TYPE_VAR), ("shared folder", slurm.SHARED_VAR)):
        if merged.get(var):
            used.append(f"{what} {merged[var]}")
    detail = f"{site}: " + (", ".join(used) or "Slurm's defaults")
    if unsourced:
        return Check("site", "warn", detail + f"; not in this shell: {', '.join(unsourced[:3])}",
                     f"source {site} (add it to ~/.bashrc) / このシェルでサイト設定ファイルを source してください"), merged
    return Check("site", "ok", detail), merged


def check_partition(env: dict) -> list[Check]:
    """The partition (SBATCH_PARTITION or the default) and the GPU type exist (sinfo)."""
    known = slurm.partitions(env)
    if known is None:
        return [Check("partition", "FAIL", "sinfo is missing or fails here",
                      "run this on the cluster's login node (module load slurm) / ログインノードで実行してください")]
    raw = slurm.sinfo(env, "%P") or []
    default = next((p.rstrip("*") for p in raw if p.endswith("*")), None)
    wanted = env.get("SBATCH_PARTITION")
    checks = []
    problem = slurm.partition_problem(env, known)
    if problem:
        checks.append(Check("partition", "FAIL", problem, "set partition= in the site file to one of them / "
                            "サイト設定の partition を直してください"))
    elif wanted:
        checks.append(Check("partition", "ok", f"{wanted} (sinfo lists {', '.join(known)})"))
    elif default:
        checks.append(Check("partition", "ok", f"{default} (the cluster's default; no SBATCH_PARTITION)"))
    else:
        checks.append(Check("partition", "FAIL", f"no SBATCH_PARTITION and no default partition; sinfo lists "
                            f"{', '.join(known)}", "set partition= in the site file / サイト設定に partition を書いてください"))
    types = slurm.gpu_types(env) or []
    gpu = env.get(slurm.GPU_TYPE_VAR)
    problem = slurm.gpu_type_problem(env, types)
    if problem:
        checks.append(Check("GPU type", "FAIL", problem, "fix COURSEKIT_GPU_TYPE in the site file / "
                            "サイト設定の GPU の種類を直してください"))
    elif gpu:
        checks.append(Check("GPU type", "ok", f"{gpu} (gres types: {', '.join(types)})"))
    elif types:
        checks.append(Check("GPU type", "ok", f"any (no {slurm.GPU_TYPE_VAR}; gres types: {', '.join(types)})"))
    else:
        has_gpus = any("gpu" in g for g in (slurm.sinfo(env, "%G") or []))
        checks.append(Check("GPU type", "ok" if has_gpus else "FAIL",
                            "untyped GPUs" if has_gpus else "sinfo lists no GPUs (gres) on this cluster",
                            "ask the admins which partition has GPUs / GPU のあるパーティションを管理者に確認してください"))
    return checks


def image_names(kit: Path) -> list[str]:
    return sorted(p.stem for p in (kit / "defs").glob("*.def"))


def image_paths(kit: Path, env: dict) -> dict[str, Path]:
    """name -> where the jobs look for it (the shared folder's images/, else defs/; CONTAINER wins)."""
    out = {}
    for name in image_names(kit):
        path = Path(env["CONTAINER"]) if env.get("CONTAINER") and env["CONTAINER"] != "none" and \
            Path(env["CONTAINER"]).stem == name else Path(slurm.image_path(name, env))
        out[name] = path if path.is_absolute() else kit / path
    return out


def check_images(kit: Path, env: dict) -> list[Check]:
    checks = []
    for name, path in image_paths(kit, env).items():
        shown = str(path.relative_to(kit)) if path.is_relative_to(kit) else str(path)
        readable = path.is_dir() and os.access(path, os.R_OK | os.X_OK) or path.is_file() and os.access(path, os.R_OK)
        if readable:
            size = human(path.stat().st_size) if path.is_file() else "a sandbox folder"
            checks.append(Check(f"image {name}", "ok", f"{shown} ({size})"))
        else:
            fix = (f"ask the instructor (python -m coursekit prepare {env[slurm.SHARED_VAR]})"
                   if env.get(slurm.SHARED_VAR) else f"python -m coursekit build-container defs/{name}.def")
            checks.append(Check(f"image {name}", "FAIL", f"{shown} {'is not readable' if path.exists() else 'not found'}",
                                fix + " / イメージがありません(読めません)"))
    return checks


def check_shared(env: dict, deep: bool = False) -> list[Check]:
    """Every file the manifest records: there, readable, its size (sha256 with `deep`)."""
    shared = env.get(slurm.SHARED_VAR)
    if not shared:
        return [Check("shared folder", "warn", f"none ({slurm.SHARED_VAR} is not set): jobs download corpora "
                      "into ~/.cache, which needs network on the compute nodes",
                      "source the lab's site file / 共有フォルダを使うにはサイト設定ファイルを source してください")]
    root = Path(shared).expanduser()
    fix = (f"ask the instructor to run: python -m coursekit prepare {root} / 講師に共有フォルダの準備"
           "(prepare)を頼んでください")
    if not (root / MANIFEST).is_file():
        return [Check("shared folder", "FAIL", f"{root}/{MANIFEST} not found: not a prepared shared folder", fix)]
    manifest = read_manifest(root)
    bad = {rel: why for rel, entry in sorted(manifest["files"].items())
           if (why := problem(root, rel, entry, deep))}
    total = sum(e.get("size", 0) for e in manifest["files"].values())
    how = "sizes and sha256" if deep else "sizes; --deep: sha256"
    checks = []
    if bad:
        first = "; ".join(f"{rel}: {why}" for rel, why in list(bad.items())[:3])
        checks.append(Check("shared folder", "FAIL", f"{len(bad)} of {len(manifest['files'])} file(s) not as "
                            f"{MANIFEST} records ({first})", fix))
    else:
        checks.append(Check("shared folder", "ok", f"{root}: {len(manifest['files'])} files, {human(total)}, "
                            f"as {MANIFEST} records ({how})"))
    if manifest.get("missing"):
        names = ", ".join(sorted(manifest["missing"]))
        checks.append(Check("shared folder", "warn", f"prepared without: {names} (the runs that need them fail)",
                            fix))
    return checks


def check_logs(kit: Path | None) -> Check:
    logs = (kit or Path.cwd()) / "logs"
    if logs.is_dir():
        ok = os.access(logs, os.W_OK | os.X_OK)
        return Check("logs/", "ok" if ok else "FAIL", f"{logs} {'writable' if ok else 'not writable'}",
                     f"chmod u+w {logs} / logs/ に書き込めるようにしてください")
    ok = os.access(logs.parent, os.W_OK)
    return Check("logs/", "ok" if ok else "FAIL",
                 f"{logs} does not exist yet ({'submit creates it' if ok else 'and cannot be created'})",
                 "mkdir -p logs in a folder of your own / 自分のフォルダで mkdir -p logs")


def check_space(env: dict) -> list[Check]:
    places = [("home", Path.home())]
    places.append(("runs", runs_root()))
    if env.get("SCRATCH"):
        places.append(("scratch", Path(env["SCRATCH"])))
    checks = []
    for what, path in places:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        need = SPACE_GB.get(what, SPACE_GB["runs"])
        status = "ok" if free >= need * 1e9 else "FAIL" if free < 1e9 else "warn"
        checks.append(Check(f"space {what}", status, f"{human(free)} free at {path} (the filesystem; quotas: quota -s)",
                            f"free space (du -sh ~/.cache runs/*) or point COURSEKIT_RUNS at scratch; at least "
                            f"{need} GB / 空き容量を増やしてください(少なくとも {need} GB)"))
    return checks


# ----------------------------------------------------------------------------- in a job
def exec_in_image(runtime: str, image: Path, command: list[str], timeout: float = 900):
    return subprocess.run([runtime, "exec", "--nv", str(image), *command], capture_output=True, text=True,
                          timeout=timeout)


def check_frameworks(kit: Path, env: dict, gpu: bool = True) -> list[Check]:
    """In each image: the shared folder is visible, and each framework sees the GPU (`coursekit gpu`)."""
    runtime = env.get("RUNTIME") or containers.find_runtime()
    if not runtime:
        return [Check("runtime", "FAIL", "neither apptainer nor singularity on this node",
                      "set COURSEKIT_MODULES in the site file (e.g. apptainer) / モジュールを読み込んでください")]
    checks = []
    shared = env.get(slurm.SHARED_VAR)
    for name, image in image_paths(kit, env).items():
        if not image.exists():
            checks.append(Check(f"{name}", "FAIL", f"{image} not found", "see the image check above"))
            continue
        if shared:
            seen = exec_in_image(runtime, image, ["test", "-r", f"{shared}/{MANIFEST}"], timeout=300)
            checks.append(Check(f"{name}: shared folder", "ok" if seen.returncode == 0 else "FAIL",
                                f"{shared} {'visible' if seen.returncode == 0 else 'not visible'} inside the image",
                                f"bind it: export APPTAINER_BINDPATH={shared} (the site file) / イメージの中から"
                                "共有フォルダが見えません"))
        proc = exec_in_image(runtime, image, ["python3", "-m", "coursekit", "gpu", "--json", "--frameworks",
                                              ",".join(FRAMEWORKS)])
        try:
            report = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            checks.append(Check(f"{name}", "FAIL", f"python3 -m coursekit gpu failed in the image (exit "
                                f"{proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}",
                                "rebuild or re-stage the image / イメージを作り直してください"))
            continue
        facts, findings = report["facts"], report["findings"]
        errors = [f for f in findings if f["level"] == "error"]
        for fw in FRAMEWORKS:
            fact = facts.get(fw) or {}
            if not fact.get("installed"):
                continue
            gpus = fact.get("gpus") or []
            label = f"{name}: {fw} {fact.get('version', '')}".rstrip()
            if gpus:
                checks.append(Check(label, "ok", f"sees {len(gpus)} GPU(s): {', '.join(map(str, gpus))[:120]}"))
            elif not gpu:
                checks.append(Check(label, "ok", "imports; no GPU expected (--no-gpu)"))
            else:
                why = errors[0] if errors else None
                checks.append(Check(label, "FAIL", "sees no GPU" + (f": {why['title']}" if why else ""),
                                    (why["fix"].replace("\n", " ") if why and why.get("fix") else
                                     "submit with a GPU (sbatch/doctor.sbatch asks for one); python -m coursekit gpu "
                                     "inside the image says more / GPU が見えていません")))
    return checks


# ----------------------------------------------------------------------------- all of it
def run_checks(env: dict | None = None, *, deep: bool = False, job: bool | None = None,
               gpu: bool = True, kit: Path | None = None) -> list[Check]:
    env = dict(os.environ if env is None else env)
    kit = kit or project_root(Path.cwd()) or project_root(Path(__file__).parent)
    checks = [check_python(), check_kit(kit)]
    site, env = check_site(env)
    checks.append(site)
    checks += check_partition(env)
    if kit is not None:
        checks += check_images(kit, env)
    checks += check_shared(env, deep)
    checks.append(check_logs(kit))
    checks += check_space(env)
    if job if job is not None else bool(env.get("SLURM_JOB_ID")):
        checks += check_frameworks(kit, env, gpu) if kit is not None else []
    return checks


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit doctor",
        description="Check everything a workshop needs, one line per check (ok, or the fix); exit 1 on a failure. "
                    "On the login node, and as a job: sbatch sbatch/doctor.sbatch (also checks each framework in "
                    "each image sees the GPU).")
    parser.add_argument("--deep", action="store_true", help="check the shared folder's sha256 too (slower)")
    parser.add_argument("--job", action="store_true", default=None,
                        help="also run the in-job checks (default: inside a Slurm job only)")
    parser.add_argument("--no-gpu", action="store_true",
                        help="in the job checks, a framework that sees no GPU is fine (a CPU-only node)")
    args = parser.parse_args(argv)
    checks = run_checks(deep=args.deep, job=args.job, gpu=not args.no_gpu)
    for check in checks:
        print(check.line(), flush=True)
    failed = [c for c in checks if c.status == "FAIL"]
    print(f"doctor: {len(checks)} checks, {len(failed)} failed / {len(checks)} 項目中 {len(failed)} 項目に問題があります"
          if failed else f"doctor: {len(checks)} checks, all ok (warnings above, if any) / すべて問題ありません")
    return 1 if failed else 0
