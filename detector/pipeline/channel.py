"""A bounded, stop-aware queue between pipeline stages, with an explicit drop policy.

``keep_latest=False`` (files): ``put`` blocks while the queue is full (backpressure, nothing dropped).
``keep_latest=True`` (live): ``put`` never blocks; the oldest waiting item is dropped and counted,
so a slow consumer always gets the newest frame and latency cannot build up; ``merge(dropped, new)``,
if given, makes the item that goes in instead of ``new`` (what the dropped one knew, handed on).
Control items (end of stream, errors, events) are never dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The pipeline is stopping; no more items will come."""


class Empty(Exception):
    """``get_nowait`` found nothing queued."""


class Channel(Generic[T]):
    """``bell``: an event set on every ``put``, so one consumer can wait on several channels at once."""

    def __init__(
        self,
        maxsize: int,
        *,
        keep_latest: bool,
        stop: threading.Event,
        bell: threading.Event | None = None,
        merge: Callable[[T, T], T] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.keep_latest = keep_latest
        self._stop = stop
        self._bell = bell
        self._merge = merge
        self._items: deque[tuple[T, bool]] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.max_depth = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def _data_count(self) -> int:
        return sum(1 for _, control in self._items if not control)

    def put(self, item: T, *, control: bool = False, poll: float = 0.1) -> bool:
        """Add an item; returns False (and drops it) when the pipeline is stopping."""
        with self._cond:
            if not control:
                while self._data_count() >= self.maxsize:
                    if self._stop.is_set():
                        return False
                    if self.keep_latest:
                        for i, (old, is_control) in enumerate(self._items):
                            if not is_control:
                                del self._items[i]
                                self.dropped += 1
                                if self._merge is not None:
                                    item = self._merge(old, item)
                                break
                    else:
                        self._cond.wait(poll)
            if self._stop.is_set() and not control:
                return False
            self._items.append((item, control))
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify_all()
        if self._bell is not None:
            self._bell.set()
        return True

    def get(self, timeout: float | None = None, poll: float = 0.1) -> T:
        """Next item; raises ``Closed`` if the pipeline stops first, ``TimeoutError`` after ``timeout``."""
        remaining = timeout
        with self._cond:
            while not self._items:
                if self._stop.is_set():
                    raise Closed
                wait = poll if remaining is None else min(poll, remaining)
                self._cond.wait(wait)
                if remaining is not None:
                    remaining -= wait
                    if remaining <= 0 and not self._items:
                        raise TimeoutError
            item, _ = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_nowait(self) -> T:
        """The next item if one is queued, else ``Empty`` (never waits)."""
        with self._cond:
            if not self._items:
                raise Empty
            item, _ = self._items.popleft()
            self._cond.notify_all()
            return item

    def drain(self) -> int:
        """Throw away everything queued (used on shutdown so producers never block)."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n
