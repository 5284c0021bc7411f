"""Idle web connections cannot end a recording run (issue 30.6): a real ``detector run`` of a looping
live loopback stream with ``--record`` and ``--serve``, under a limit of 1024 open files (soft and
hard), is sent 1,100 connections that each send half a request line and then nothing. The run keeps
detecting and recording (new frames, new segments), logs no traceback, answers the web again once
they are gone, and Ctrl-C ends it as usual (130). It also serves its own segment (listed in a store
outside the recording folder, by absolute path) with Range.

The cap and the header deadline are also checked in-process, with both made small.

Runtime: about 20 s (most of it the model loading).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from detector_process import DetectorProcess
from streaming import StreamServer
from test_clips_live import headless_env
from web_client import address, get

from detector.sinks.jsonl import read_jsonl
from detector.web import connections
from detector.web.config import ServeConfig
from detector.web.view import WebView

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"
LIMIT = 1024
CONNECTIONS = 1100


class LimitedRun(DetectorProcess):
    """The console script with ``RLIMIT_NOFILE`` set to ``LIMIT`` (soft and hard: the run raises its
    soft limit to the hard one, so both must be low for the limit to hold)."""

    def __init__(self, cmd: list[str], folder: Path) -> None:
        self.jsonl = folder / "out.jsonl"
        self.err_path = folder / "stderr.txt"
        self.started = time.monotonic()

        def limited() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=headless_env(),
                preexec_fn=limited,
            )  # fmt: skip


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Room for this test's own 1,100 sockets, and every one closed at the end."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CONNECTIONS + 200:
        pytest.skip(f"the test process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for s in opened:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def segments(rec: Path) -> int:
    path = rec / "segments.jsonl"
    return len(read_jsonl(path)) if path.exists() else 0


def test_idle_connections_cannot_stop_the_recording(
    model_path: Path, videos_dir: Path, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    rec, store = tmp_path / "rec", tmp_path / "store"
    with StreamServer(videos_dir / CLIP, loop=True, lifetime=90) as server:
        cmd = ["detector", "run", server.url, "--model", str(model_path), "--record", str(rec),
               "--record-segment", "1", "--json", str(tmp_path / "out.jsonl"), "--serve", "127.0.0.1:0",
               "--events-db", str(store / "events.db"), "--reconnect-max", "0"]  # fmt: skip
        run = LimitedRun(cmd, tmp_path)
        try:
            run.wait_until("the web view", lambda: re.search(r"web view on (\S+/)", run.stderr))
            url = re.findall(r"web view on (\S+/)", run.stderr)[0]
            run.wait_until("a recorded segment", lambda: segments(rec) >= 1, timeout=60)

            for _ in range(CONNECTIONS):  # half a request line each, then nothing
                s = socket.create_connection(address(url), timeout=5)
                sockets.append(s)
                with contextlib.suppress(OSError):  # one the server dropped at its cap
                    s.send(b"GET /stream.mjpg HT")
            frames, listed = len(run.frames()), segments(rec)
            run.wait_until("new frames", lambda: len(run.frames()) >= frames + 20, timeout=15)
            run.wait_until("new segments", lambda: segments(rec) >= listed + 2, timeout=15)
            assert run.proc.poll() is None, run.stderr
            for s in sockets:
                s.close()
            run.wait_until("the web view again", lambda: get(url, "/healthz", timeout=5).status == 200)

            db = sqlite3.connect(f"file:{store / 'events.db'}?mode=ro", uri=True)
            row, path = db.execute("SELECT id, path FROM media WHERE kind = 'segment' LIMIT 1").fetchone()
            db.close()
            assert os.path.isabs(path) and path.startswith(str(rec)), path  # outside the store's folder
            name = Path(path).name
            part = get(url, f"/media/{row}/{name}", {"Range": "bytes=0-99"})
            assert part.status == 206 and part.body == Path(path).read_bytes()[:100]
        finally:
            run.proc.send_signal(signal.SIGINT)
            code = run.finish(30)
    assert code == 130, run.stderr
    assert "Too many open files" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]


def closed_by_server(s: socket.socket, within: float) -> bool:
    """The server closed (or reset) ``s`` within ``within`` seconds."""
    s.settimeout(within)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_request_whose_headers_never_finish_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "HEADER_SECONDS", 0.5)
    view = WebView(ServeConfig("127.0.0.1", 0, token=None)).start()
    try:
        assert view.url is not None
        with socket.create_connection(address(view.url), timeout=5) as idle:
            idle.send(b"GET /api/status HT")
            assert closed_by_server(idle, 5.0)
        with socket.create_connection(address(view.url), timeout=5) as fine:  # a whole request is answered
            fine.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            fine.settimeout(5)
            assert fine.recv(100).startswith(b"HTTP/1.1 ")
    finally:
        view.close()


def test_connections_beyond_the_cap_are_dropped_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 5)
    view = WebView(ServeConfig("127.0.0.1", 0, token=None)).start()
    held: list[socket.socket] = []
    try:
        assert view.url is not None
        for _ in range(5):
            held.append(socket.create_connection(address(view.url), timeout=5))
            held[-1].send(b"GET / HT")
        time.sleep(0.3)  # the server has taken them in
        with socket.create_connection(address(view.url), timeout=5) as extra:
            assert closed_by_server(extra, 3.0)
        assert not any(closed_by_server(s, 0.05) for s in held)  # those it holds are kept (until due)
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while get(view.url, "/healthz").status != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(view.url, "/healthz").status == 200
    finally:
        for s in held:
            s.close()
        view.close()
