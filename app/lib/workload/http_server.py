"""A local WSGI server on a free port, in a thread, always stopped; and a tiny origin app behind it.

wsgiref with a thread per request (standard library only), bound to port 0 so the kernel picks a
free port at bind time (no window in which another process can take it).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        """No access log on stderr: thousands of requests would bury the report."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request stuck on a dead cache node must not keep the process alive


class LocalWsgiServer:
    """with LocalWsgiServer(app) as server: requests to server.url; stopped on exit, error or Ctrl-C."""

    def __init__(self, app: Callable, host: str = "127.0.0.1"):
        self.app, self.host = app, host
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalWsgiServer:
        self._server = make_server(self.host, 0, self.app, server_class=_ThreadingWSGIServer,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="wsgi-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # returns once serve_forever has left its loop
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server, self._thread = None, None

    def __enter__(self) -> LocalWsgiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class OriginApp:
    """The 'real' application: a small page per path, counting how often it had to render each."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        with self._lock:
            self.calls[path] += 1
        if path.startswith("/fail"):
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"origin failed\n"]
        body = f"page {path}\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
