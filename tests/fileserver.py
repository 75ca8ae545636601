"""A real HTTP server on 127.0.0.1 (loopback only) for download tests, with the faults real servers
produce. The first path part picks the behaviour, the rest names a file under `root`:

    /ok/NAME         the file
    /slow/NAME       the file in small chunks with pauses (a slow link; concurrent jobs overlap)
    /truncated/NAME  announces the full length, sends half, closes (a connection cut short)
    /html/NAME       an HTML error page with status 200 (a proxy or login page)
    /missing/NAME    404

`hits` counts the GET requests per path. Use as a context manager; it stops its thread on exit.
"""
from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from pathlib import Path


class LoopbackServer:
    """An HTTP server on 127.0.0.1 in a thread of its own, started and stopped by `with` (subclasses give the
    handler to `serve`)."""

    def serve(self, handler) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class FileServer(LoopbackServer):
    def __init__(self, root: str | Path, chunk: int = 4096, pause: float = 0.02):
        self.root = Path(root)
        self.hits: Counter = Counter()
        self.chunk, self.pause = chunk, pause
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                mode, _, name = self.path.lstrip("/").partition("/")
                path = server.root / name
                if mode == "missing" or not path.is_file():
                    self.send_error(404)
                    return
                if mode == "html":
                    body = b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "truncated":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = server.chunk if mode == "slow" else len(data)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    if mode == "slow":
                        self.wfile.flush()
                        time.sleep(server.pause)

        self.serve(Handler)

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/{name}"
