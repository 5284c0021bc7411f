"""Loopback HTTP endpoints for the notification tests: ``Webhook`` takes every POST (what Apprise's
``json://`` sends) and keeps it; ``Blackhole`` accepts connections and never answers (a dead endpoint
that makes every try wait for its timeout); ``Trickle`` answers one byte every 3 s and never ends the
headers (a per-read timeout never fires). All bind 127.0.0.1 on a free port and stop on exit."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self


class Webhook:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []  # {"path", "at", "json"}
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    hook.posts.append(
                        {"path": self.path, "at": time.time(), "json": json.loads(body or b"{}")}
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attachments(post: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """(filename, mimetype, bytes) of each file Apprise attached to a json:// POST."""
    return [
        (a.get("filename", ""), a.get("mimetype", ""), base64.b64decode(a["base64"]))
        for a in post["json"].get("attachments") or []
    ]


class _Listener:
    """A loopback endpoint that accepts every connection on its own thread, counts them (the time of
    the first too) and hands each to ``_serve``; ``close`` stops it and everything it started."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.first: float | None = None  # time.monotonic() of the first connection
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            if self.first is None:
                self.first = time.monotonic()
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Blackhole(_Listener):
    """Accepts every connection and never says a word; counts the connections."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        self._held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class Trickle(_Listener):
    """Reads each request, then answers one byte every ``every`` seconds, never finishing the headers: a
    per-read timeout never fires. Counts the connections."""

    def __init__(self, every: float = 3.0) -> None:
        self.every = every
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _trickle(self, conn: socket.socket) -> None:
        reply = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000
        with conn:
            conn.settimeout(min(0.5, self.every / 2))
            with contextlib.suppress(OSError):
                while conn.recv(65536):  # the whole request: until it pauses
                    pass
            for byte in reply:
                if self._stop.wait(self.every):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
