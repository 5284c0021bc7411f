"""Clients of the web view for tests, on loopback only: plain requests with the path sent exactly as
written, MJPEG viewers (full rate, slow, or stuck), and a Server-Sent Events reader.

Each viewer is a thread on a real socket; every wait is bounded and ``close()`` ends it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), f"tests use loopback only, not {url}"
    return parts.hostname, int(parts.port or 80)


def get(base: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Reply:
    """GET ``path`` sent verbatim (no normalising of ``..`` or %-escapes, unlike most clients)."""
    host, port = address(base)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        skip_host = any(k.lower() == "host" for k in headers or {})
        conn.putrequest("GET", path, skip_host=skip_host, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


class _SmallBufferConnection(http.client.HTTPConnection):
    """A connection whose receive buffer is set before connecting, so a slow reader is felt at once."""

    def __init__(self, host: str, port: int, rcvbuf: int | None, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.rcvbuf = rcvbuf
        self.raw: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = self.raw = sock  # ``raw`` stays set after http.client lets go of ``sock``


@dataclass
class Part:
    frame: int
    received_at: float  # time.monotonic() when the whole JPEG had arrived
    jpeg: bytes

    def image(self) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, "a part that is not a JPEG"
        return img


@dataclass
class Viewer:
    """Reads ``/stream.mjpg`` on a thread. ``rate``: bytes a second (None: as fast as it comes);
    ``stuck``: send the request, then never read a byte."""

    url: str
    path: str = "/stream.mjpg"
    rate: float | None = None
    stuck: bool = False
    keep_jpegs: bool = False
    status: int | None = None
    parts: list[Part] = field(default_factory=list)
    bytes_read: int = 0
    error: str | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._conn: _SmallBufferConnection | None = None
        self._sock: socket.socket | None = None
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="viewer")

    def start(self) -> Viewer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            if self.stuck:
                self._stuck()
            else:
                self._read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()

    def _stuck(self) -> None:
        host, port = address(self.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        self._sock = sock
        sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        self.connected.set()
        self._stop.wait()

    def _read(self) -> None:
        host, port = address(self.url)
        conn = _SmallBufferConnection(host, port, 4096 if self.rate else None, timeout=30.0)
        self._conn = conn
        conn.request("GET", self.path)
        resp = conn.getresponse()
        try:
            self._read_parts(resp)
        finally:  # really close the socket (the response holds it open too): the server sees us go
            resp.close()
            conn.close()

    def _read_parts(self, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self.connected.set()
        if resp.status != 200:
            resp.read()
            return
        started = time.monotonic()
        while not self._stop.is_set():
            headers: dict[str, str] = {}
            while True:
                line = self._line(resp, started)
                if line is None:
                    return
                if not line.strip():
                    if headers:
                        break
                    continue
                if b":" in line:
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
            size = int(headers["content-length"])
            data = self._take(resp, size, started)
            if data is None:
                return
            self.parts.append(
                Part(int(headers.get("x-frame", -1)), time.monotonic(), data if self.keep_jpegs else b"")
            )
            if self.keep_jpegs and len(self.parts) > 3:  # keep memory flat: the newest few are enough
                self.parts[-4] = Part(self.parts[-4].frame, self.parts[-4].received_at, b"")

    def _pace(self, started: float) -> bool:
        """Sleep so that at most ``rate`` bytes a second have been read; False once stopped."""
        if self.rate:
            due = started + self.bytes_read / self.rate
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return False
        return not self._stop.is_set()

    def _line(self, resp: http.client.HTTPResponse, started: float) -> bytes | None:
        if not self._pace(started):
            return None
        line = resp.readline(1024)
        self.bytes_read += len(line)
        return line if line else None

    def _take(self, resp: http.client.HTTPResponse, size: int, started: float) -> bytes | None:
        chunks: list[bytes] = []
        left = size
        while left:
            if not self._pace(started):
                return None
            chunk = resp.read(min(left, 1024 if self.rate else left))
            if not chunk:
                return None
            self.bytes_read += len(chunk)
            left -= len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def frames(self) -> list[int]:
        return [p.frame for p in self.parts]

    def close(self) -> None:
        """Stop reading and hang up (a read blocked in another thread wakes at once)."""
        self._stop.set()
        _hang_up(self._sock or (self._conn.raw if self._conn is not None else None))
        self._thread.join(10)


class EventReader:
    """Reads ``/events`` on a thread: every ``data:`` line's JSON, in order."""

    def __init__(self, url: str, path: str = "/events") -> None:
        self.url, self.path = url, path
        self.records: list[dict[str, Any]] = []
        self.status: int | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._conn: _SmallBufferConnection | None = None
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sse")

    def start(self) -> EventReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        host, port = address(self.url)
        try:
            self._conn = conn = _SmallBufferConnection(host, port, None, timeout=30.0)
            conn.request("GET", self.path, headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            self.status = resp.status
            self.connected.set()
            try:
                while not self._stop.is_set():
                    line = resp.readline()
                    if not line:
                        return
                    if line.startswith(b"data: "):
                        self.records.append(json.loads(line[6:]))
            finally:
                resp.close()
                conn.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()

    def close(self) -> None:
        self._stop.set()
        _hang_up(self._conn.raw if self._conn is not None else None)
        self._thread.join(10)


def _hang_up(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def wait_for(what: str, ready: Any, timeout: float = 20.0) -> None:
    """Poll ``ready()`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.02)
