"""Helpers the tests and benchmarks share (likepred-free: benchmarks import them as tests.helpers,
tests as helpers): a free port, stopping a process group, a local HTTP server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process started with start_new_session=True and all it started: `sig` to its group,
    then SIGKILL if it has not ended within `timeout` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def send(handler: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
    """One whole reply with its length."""
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class HTTPServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) whose GETs `do_get(handler)` answers, served
    from a daemon thread; `base` is its URL; a context manager that shuts it down."""

    def __init__(self, do_get, queue: int | None = None, poll: float = 0.01):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                do_get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if queue:
            self.httpd.request_queue_size = queue
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(poll,), daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
