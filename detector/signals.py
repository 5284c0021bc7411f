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
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from detector.errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.signum: int | None = None
        self._signalled = False  # a real signal came (a second one exits at once)
        self._deferring = 0
        self._old: dict[int, Any] = {}

    def install(self) -> bool:
        """Take over SIGINT and SIGTERM (main thread only); False where that is not possible."""
        if threading.current_thread() is not threading.main_thread() or self._old:
            return False
        for sig in HANDLED:
            self._old[sig] = signal.signal(sig, self._handle)
        return True

    def restore(self) -> None:
        """Give the handlers back and forget any request."""
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
        self.reset()

    def reset(self) -> None:
        self.signum = None
        self._signalled = False
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

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


_PROCESS = Interrupts()


def interrupts() -> Interrupts:
    """This process's ``Interrupts``."""
    return _PROCESS
