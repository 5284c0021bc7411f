"""The run's storage health: which outputs are failing for want of storage right now, and how many
times outputs failed. The lanes report failures (``failed``), the recorders and the clip folder say
when they write again (``resumed``); ``/healthz`` answers 503 while any output is failing, and
``/metrics`` shows the counts. Thread-safe: recorders resume from their own threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from detector.errors import StorageError
from detector.storage.disk import free_bytes

log = logging.getLogger(__name__)


class StorageStatus:
    """Outputs failing now (by ``StorageError.key``) and failures so far, per source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[str, dict[str, Any]] = {}
        self.failures: Counter[str] = Counter()  # per source
        self.listeners: list[Callable[[], None]] = []  # told of each failure (retention runs at once)

    def failed(self, source: str, exc: StorageError) -> None:
        path = exc.path
        with self._lock:
            self.failures[source] += 1
            if exc.resumed:  # it writes again already: counted, but not failing
                self._problems.pop(exc.key, None)
            else:
                self._problems[exc.key] = {
                    "source": source,
                    "output": None if path is None else str(path),
                    "error": exc.reason,
                    "since": round(time.time(), 3),
                    "free_bytes": None if path is None else free_bytes(path),
                }
        for listener in self.listeners:
            listener()

    def resumed(self, key: str) -> None:
        with self._lock:
            self._problems.pop(key, None)

    def problems(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self._problems.values()]

    def failures_by_source(self) -> dict[str, int]:
        with self._lock:
            return dict(self.failures)
