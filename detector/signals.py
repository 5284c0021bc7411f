"""Ctrl-C and SIGTERM: one mechanism for every command.

``Interrupts`` is installed once per process, by the CLI or a batch worker. A first SIGINT or
SIGTERM asks for a stop (``stop`` is set, ``signum`` remembered). What happens then:

- inside ``deferred()`` (a pipeline is running), nothing else: the pipeline notices ``stop`` at the
  next frame boundary, so every sink holds the same frames; the run then raises ``Interrupted``;
- elsewhere (loading a model, connecting, a batch dispatcher waiting), ``Interrupted`` is raised
  at once, and ``finally`` blocks close what is open.

A second signal exits the process at once with 128 + its number, as users expect of a second Ctrl-C.
Outside the main thread nothing is installed, and ``request`` (a parent asking a worker to stop)
asks for a stop the same way, without counting as a signal.

Python runs signal handlers only between bytecodes of the main thread, so a frame stuck in native
code (OpenCV filling a huge polygon, a model call) would hold both back. A watchdog thread sees every
signal as it comes (``signal.set_wakeup_fd``): a second one exits at once wherever the main thread is;
after a first one, a frame still being processed ``FRAME_GRACE_S`` later, or a main thread that has
not run the handler by then (busy in native code outside a pipeline), ends the process with
128 + the signal's number and one line saying so. What was written stays: the MP4 plays up to its
last fragment, the JSONL holds whole lines.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from detector.errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)
FRAME_GRACE_S = 5.0  # after a first signal, how long one frame (or native code) may still hold the exit


class Interrupts:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.signum: int | None = None
        self._signalled = False  # a real signal came (a second one exits at once)
        self._deferring = 0
        self._always = 0  # always_defer() calls: a batch worker, idle between inputs
        self._old: dict[int, Any] = {}
        self._frame_since: float | None = None  # when the frame being processed started
        self._seen: list[tuple[int, float]] = []  # signals the watchdog saw: (number, when)
        self._watchdog: _Watchdog | None = None

    def install(self) -> bool:
        """Take over SIGINT and SIGTERM (main thread only); False where that is not possible."""
        if threading.current_thread() is not threading.main_thread() or self._old:
            return False
        for sig in HANDLED:
            self._old[sig] = signal.signal(sig, self._handle)
        self._watchdog = _Watchdog(self)
        return True

    def restore(self) -> None:
        """Give the handlers back and forget any request."""
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
        self.reset()

    def reset(self) -> None:
        self.signum = None
        self._signalled = False
        self._seen.clear()
        self.stop.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        if self._signalled:  # the second one: no more waiting
            os._exit(128 + signum)
        self._signalled = True
        self.request(signum)
        if not self._deferring:
            raise Interrupted(signum)

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop as a signal would (from any thread)."""
        if self.signum is None:
            self.signum = int(signum)
        self.stop.set()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[threading.Event]:
        """While inside, a first signal only sets the returned ``stop`` event."""
        self._deferring += 1
        try:
            yield self.stop
        finally:
            self._deferring -= 1

    def always_defer(self) -> None:
        """From now on a first signal only asks for a stop (a batch worker, between files too)."""
        self._deferring += 1
        self._always += 1

    @contextlib.contextmanager
    def frame(self) -> Iterator[None]:
        """Around the processing of one frame: what a first signal waits for, ``FRAME_GRACE_S`` at most."""
        self._frame_since = time.monotonic()
        try:
            yield
        finally:
            self._frame_since = None

    def _after_fork(self) -> None:
        """In a child made by fork (a process pool's worker): the parent's watchdog is not ours, and
        its wakeup fd must not carry our signals to the parent."""
        if self._watchdog is not None:
            self._watchdog = None
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)

    def _overdue(self, now: float) -> bool:
        """A first signal came ``FRAME_GRACE_S`` ago, and the main thread still has not got to it."""
        if not self._seen:
            return False
        signalled_at = self._seen[0][1]
        if now - signalled_at < FRAME_GRACE_S:
            return False
        since = self._frame_since
        if since is not None:  # a frame is being processed: a slow one
            return now - max(since, signalled_at) >= FRAME_GRACE_S
        # Outside a frame the handler runs at once, unless native code holds the main thread.
        return not self._signalled and self._deferring == self._always == 0

    def _watched(self, signum: int) -> None:
        """From the watchdog thread: a signal has just come in."""
        self._seen.append((signum, time.monotonic()))
        if len(self._seen) > 1:
            os._exit(128 + signum)

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


class _Watchdog:
    """A thread that reads the signal numbers Python writes to its wakeup fd, also while the main
    thread is busy in native code, and checks ``Interrupts._overdue`` a few times a second."""

    def __init__(self, owner: Interrupts) -> None:
        self._owner = owner
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._run, name="signal-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        owner = self._owner
        while True:
            ready, _, _ = select.select([self._read], [], [], 0.2)
            if ready:
                data = os.read(self._read, 64)
                if not data or 0 in data:  # closed, or close()'s stop byte
                    return
                for signum in data:
                    if signum in HANDLED:
                        owner._watched(signum)
            if owner._overdue(time.monotonic()):
                signum = owner._seen[0][0]
                word = "terminated" if signum == signal.SIGTERM else "interrupted"
                if owner._frame_since is not None:
                    why = "a frame took over {:g} s to end; exiting without waiting for it (the video "
                    why += "plays up to its last fragment)"
                else:
                    why = "still busy {:g} s later; exiting without waiting"
                line = f"detector: {word}; {why.format(FRAME_GRACE_S)}\n"
                with contextlib.suppress(OSError):
                    os.write(2, line.encode())
                os._exit(128 + signum)

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # not the main thread: leave the fd
            signal.set_wakeup_fd(self._old_fd)
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")
        self._thread.join(2.0)
        os.close(self._read)
        os.close(self._write)


_PROCESS = Interrupts()
os.register_at_fork(after_in_child=_PROCESS._after_fork)


def interrupts() -> Interrupts:
    """This process's ``Interrupts``."""
    return _PROCESS
