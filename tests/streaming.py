"""A real live stream for tests: the imageio-ffmpeg binary serving a clip on loopback in real time.

``ffmpeg -re -i CLIP -c copy -f mpegts -listen 1 http://127.0.0.1:PORT`` accepts exactly one
client and then sends the clip at its own frame rate, so the client sees what it would see
from a camera's HTTP stream: frames arriving in real time, and EOF when the server goes away.

Readiness is checked by polling the kernel's table of listening sockets (``/proc/net/tcp``)
instead of connecting: a probe connection would *be* the one client ``-listen 1`` accepts,
and ffmpeg exits when that client hangs up without a request.

Every server is bounded: ffmpeg is killed on ``stop()``, on leaving the ``with`` block, after
``lifetime`` seconds (a watchdog thread), and when the test process dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import imageio_ffmpeg

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"


def ffmpeg_exe() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def is_listening(port: int) -> bool:
    """True when a socket listens on 127.0.0.1:port (or 0.0.0.0:port), without connecting to it."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:  # pragma: no cover - not Linux
        raise RuntimeError("tests/streaming.py needs Linux (/proc/net/tcp)") from None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] in wanted and fields[3] == _TCP_LISTEN:
            return True
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watchdog still bounds it
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class StreamServer:
    """Serves ``clip`` as MPEG-TS over HTTP on 127.0.0.1, in real time, to one client per start.

    ``duration`` limits how many seconds of the clip are sent (``-t``), ``offset`` skips the
    first seconds (``-ss``). ``stop()`` kills the server (the client sees EOF); ``restart()``
    starts a fresh one on the same port, sending the clip again from ``offset``.
    """

    def __init__(
        self,
        clip: Path,
        *,
        duration: float | None = None,
        offset: float = 0.0,
        lifetime: float = 60.0,
        ready_timeout: float = 10.0,
        loop: bool = False,
    ) -> None:
        self.clip = Path(clip)
        if not self.clip.is_file():
            raise FileNotFoundError(self.clip)
        self.duration = duration
        self.offset = offset
        self.lifetime = lifetime
        self.ready_timeout = ready_timeout
        self.loop = loop  # send the clip again and again (until ``lifetime``), for runs slower than it
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._watchdog: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-re"]
        if self.offset:
            cmd += ["-ss", f"{self.offset:g}"]
        if self.duration is not None:
            cmd += ["-t", f"{self.duration:g}"]
        if self.loop:
            cmd += ["-stream_loop", "-1"]
        cmd += ["-i", str(self.clip), "-map", "0:v:0", "-c", "copy", "-f", "mpegts", "-listen", "1", self.url]
        return cmd

    def start(self) -> StreamServer:
        """Start ffmpeg and wait until it listens; retries on another port if this one was taken."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"server on {self.url} is already running")
        for attempt in range(3):
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _reap; a file, not a pipe: a chatty ffmpeg never blocks
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                preexec_fn=_die_with_parent,
            )
            self._watchdog = threading.Timer(self.lifetime, self._kill)
            self._watchdog.daemon = True
            self._watchdog.start()
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if is_listening(self.port):
                    log.debug("serving %s on %s (pid %d)", self.clip.name, self.url, self.proc.pid)
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            err = self._reap()
            if attempt < 2 and "Address already in use" in err:
                self.port = free_port()
                continue
            raise RuntimeError(f"ffmpeg did not start serving {self.url}: {err.strip()[-500:]}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it may have exited just now
                os.killpg(proc.pid, signal.SIGKILL)  # ffmpeg leads its own session

    def _reap(self) -> str:
        """Kill (if needed) and wait for the current ffmpeg; returns its stderr."""
        proc, self.proc = self.proc, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if proc is None:
            return ""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        err = b""
        if self._stderr is not None:
            self._stderr.seek(0)
            err = self._stderr.read()
            self._stderr.close()
            self._stderr = None
        return err.decode("utf-8", "replace")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): the connection stays open but no data arrives (a stall)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """Kill the server now; a connected client sees the end of the stream."""
        self._reap()

    def restart(self) -> StreamServer:
        """Stop (if running) and serve the clip again on the same port and URL."""
        self.stop()
        return self.start()

    def wait(self, timeout: float) -> int | None:
        """Wait for the server to finish sending; returns its exit code (None if it still runs)."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
