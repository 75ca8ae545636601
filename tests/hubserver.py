"""A real HTTP server on 127.0.0.1 standing in for the Hugging Face hub: the part of its API that
huggingface_hub's snapshot_download and hf_hub_download use, serving folders of files as model repos.
Point the real client at it with HF_ENDPOINT=server.endpoint (set before huggingface_hub is imported,
e.g. in a subprocess's environment).

    GET  /api/models/ORG/NAME/revision/REV        repo info: the commit sha and the file list
    GET  /api/models/ORG/NAME/tree/REV[/PATH]     the files (path, size, git blob oid, LFS sha256)
    HEAD /ORG/NAME/resolve/REV/FILE               X-Repo-Commit, ETag (the file's sha256), Content-Length
    GET  /ORG/NAME/resolve/REV/FILE               the file (Range: bytes=N- answered with 206)

Repos are folders `root/ORG/NAME/`. `cut = {"FILE"}` makes each GET of those files send half the file
and close the connection (a cut-off download), until the name is removed from the set. `gets` counts
the GET requests of file contents per repo file.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .fileserver import LoopbackServer

INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class HubServer(LoopbackServer):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.gets: Counter = Counter()
        self.cut: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, data, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _missing(self, what: str) -> None:
                body = json.dumps({"error": f"{what} not found"}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", "RepoNotFound" if "repo" in what else "EntryNotFound")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, head: bool) -> None:
                m = RESOLVE.match(unquote(urlsplit(self.path).path))
                repo = server.repo(m.group("repo")) if m else None
                if repo is None:
                    return self._missing("repo")
                path = repo / m.group("file")
                if not path.is_file():
                    return self._missing("file")
                data = path.read_bytes()
                start = 0
                ranged = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
                if ranged and not head:
                    start = min(int(ranged.group(1)), len(data))
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("X-Repo-Commit", server.commit(m.group("repo")))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                key = f"{m.group('repo')}/{m.group('file')}"
                server.gets[key] += 1
                if m.group("file") in server.cut:
                    self.wfile.write(data[start:start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def do_HEAD(self):
                self._file(head=True)

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                if (m := INFO.match(path)):
                    repo = server.repo(m.group("repo"))
                    if repo is None:
                        return self._missing("repo")
                    return self._json({"id": m.group("repo"), "modelId": m.group("repo"),
                                       "sha": server.commit(m.group("repo")), "private": False,
                                       "siblings": [{"rfilename": f["path"]} for f in server.files(repo)]})
                if (m := TREE.match(path)):
                    repo = server.repo(m.group("repo"))
                    if repo is None:
                        return self._missing("repo")
                    return self._json(server.files(repo))
                self._file(head=False)

        self.serve(Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def repo(self, repo_id: str) -> Path | None:
        folder = self.root / repo_id
        return folder if folder.is_dir() else None

    def files(self, repo: Path) -> list[dict]:
        out = []
        for path in sorted(p for p in repo.rglob("*") if p.is_file()):
            data = path.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry = {"type": "file", "path": str(path.relative_to(repo)), "size": len(data), "oid": blob}
            if len(data) > 1000:  # stored with LFS on the hub
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(entry)
        return out

    def commit(self, repo_id: str) -> str:
        """A 40-hex commit id that changes with the repo's files."""
        repo = self.repo(repo_id)
        digest = hashlib.sha1(repo_id.encode())
        for f in self.files(repo) if repo else []:
            digest.update(f"{f['path']} {f['oid']}\n".encode())
        return digest.hexdigest()
