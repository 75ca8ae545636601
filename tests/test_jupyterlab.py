"""Every notebook opens in JupyterLab as a student sees it: headless Chromium renders all its cells,
no dialog (kernel chooser, load error) appears, and a python3 kernel starts for it."""
from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser

import nbformat
import pytest

from coursekit.lessons.dataparallel import free_port

from .conftest import NOTEBOOKS

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
                None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian package `chromium`)")


class ClassCounter(HTMLParser):
    """Counts CSS classes of the DOM's elements (not of the style sheets' text)."""

    def __init__(self):
        super().__init__()
        self.classes: collections.Counter = collections.Counter()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "class" and value:
                self.classes.update(value.split())


def api(base: str, path: str, token: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, serving a copy of notebooks/."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}",
           f"--LabApp.user_settings_dir={home / 'settings'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "XDG_RUNTIME_DIR": str(home)}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                api(base, "/api/status", token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token, home
    finally:
        try:
            api(base, "/api/shutdown", token, method="POST")   # stops its kernels too
            proc.wait(timeout=30)
        except Exception:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_opens_in_jupyterlab(lab, notebook):
    base, token, home = lab
    url = f"{base}/lab/tree/{notebook.name}?reset&token={token}"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={home / ('chromium-' + notebook.stem)}",
                           "--virtual-time-budget=30000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = ClassCounter()
    dom.feed(proc.stdout)
    cells = nbformat.read(str(notebook), as_version=4).cells
    kinds = collections.Counter(c["cell_type"] for c in cells)
    found = dom.classes
    assert found["jp-NotebookPanel"] == 1, f"{notebook.name} did not open as a notebook"
    assert found["jp-Dialog"] == 0, f"{notebook.name} opened a dialog (kernel chooser or error)"
    assert found["jp-Cell"] == len(cells), f"{found['jp-Cell']} of {len(cells)} cells rendered"
    assert found["jp-CodeCell"] == kinds["code"]
    assert found["jp-MarkdownCell"] == kinds["markdown"]
    first_line = next(c["source"] for c in cells if c["cell_type"] == "markdown").splitlines()[0]
    assert first_line.lstrip("# ").strip() in proc.stdout, "the first heading is not on the page"
    sessions = [s for s in api(base, "/api/sessions", token) if s["path"] == notebook.name]
    assert sessions, f"no kernel session for {notebook.name}"
    assert sessions[0]["kernel"]["name"] == "python3"
    assert sessions[0]["kernel"]["execution_state"] != "dead"


def test_a_tiny_copy_from_coursekit_open_opens_with_its_values(lab):
    """The copy a student opens in the live session (sbatch/jupyter.sbatch, `coursekit open`): all the lesson's
    cells plus the injected one with the tiny values, right under the parameters cell, in a python3 kernel."""
    from coursekit.harness import workcopy

    base, token, home = lab
    notebook = NOTEBOOKS / "02_livedoor_bert.ipynb"
    copy, written = workcopy.write_copy(notebook, "tiny", to=home / "notebooks" / "work")
    assert written
    url = f"{base}/lab/tree/work/{copy.name}?reset&token={token}"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={home / 'chromium-copy'}", "--virtual-time-budget=30000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = ClassCounter()
    dom.feed(proc.stdout)
    cells = nbformat.read(str(notebook), as_version=4).cells
    assert dom.classes["jp-NotebookPanel"] == 1 and dom.classes["jp-Dialog"] == 0
    assert dom.classes["jp-Cell"] == len(cells) + 1, "the lesson's cells and the injected one"
    assert "プロファイル tiny の値です" in proc.stdout, "the injected cell says what it is"
    sessions = [s for s in api(base, "/api/sessions", token) if s["path"] == f"work/{copy.name}"]
    assert sessions and sessions[0]["kernel"]["name"] == "python3"
