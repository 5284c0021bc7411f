"""Fan-out on the server's event loop: the newest JPEG to every video viewer, records to every event
stream, with a cap on both.

- ``JpegFeed``: per source. A viewer asks for a frame newer than the one it has; the first to ask
  encodes the newest frame in a worker thread (OpenCV releases the GIL) and every other viewer gets
  those same bytes. So a frame is encoded at most once, only while someone asks, and a viewer that
  was busy (a slow link) simply gets the newest frame when it asks again: it skips, nobody waits.
- ``Subscriber``: one event stream's bounded queue; a reader that falls behind loses its oldest
  records (counted in ``skipped``), never blocks the loop or the pipeline.
- ``Slots``: the viewer cap.
- ``Relay``: the ``Listener`` the feeds call from the pipeline's thread; it hops onto the loop
  (``call_soon_threadsafe``) only when someone is waiting for that frame or event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NamedTuple

import numpy as np

from detector.events import EventRecord
from detector.media.images import jpeg
from detector.sinks.jsonl import dumps_line, frame_record
from detector.types import FrameResult
from detector.web.feeds import Feed

# Each part names its frame (the JSONL's "frame"), so a client can match what it sees to the records.
PART_HEADER = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame: %d\r\n\r\n"
BOUNDARY = "frame"


def encode_jpeg(image: np.ndarray, max_width: int, quality: int) -> bytes:
    """JPEG of ``image``, scaled down to at most ``max_width`` pixels wide (``fit_width``'s fast way)."""
    data = jpeg(image, max_width, quality, fast=True)
    if data is None:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise RuntimeError("JPEG encoding failed")
    return data


class Jpeg(NamedTuple):
    seq: int  # the feed's sequence number
    frame: int  # the source's frame index
    data: bytes

    def part(self) -> bytes:
        """One part of the multipart MJPEG stream."""
        return PART_HEADER % (len(self.data), self.frame) + self.data + b"\r\n"


def lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux: nice +10 for this thread alone), so that
    under load the scheduler favours detection over encoding for viewers. Best effort elsewhere."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Slots:
    """At most ``limit`` holders at once (thread-safe; taken on the loop, given back anywhere)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.taken >= self.limit:
                return False
            self.taken += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.taken = max(0, self.taken - 1)


class JpegFeed:
    """The newest frame of one source as JPEG, shared by all of its viewers (see the module doc)."""

    def __init__(
        self, feed: Feed, executor: Executor, width: int, quality: int, closing: asyncio.Event
    ) -> None:
        self.feed = feed
        self.executor = executor
        self.width = width
        self.quality = quality
        self.closing = closing
        self.waiting = 0  # viewers waiting for a newer frame (read by the pipeline's thread)
        self.encodes = 0
        self._jpeg = Jpeg(0, -1, b"")
        self._new = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """A new frame arrived (on the loop)."""
        self._new.set()
        self._new = asyncio.Event()

    async def next(self, after: int) -> Jpeg | None:
        """The newest frame after sequence number ``after``; None once the server closes."""
        while self.feed.seq <= after:
            if self.closing.is_set():
                return None
            new = self._new
            self.waiting += 1
            try:
                with contextlib.suppress(TimeoutError):  # re-check now and then: a missed wake-up
                    await asyncio.wait_for(new.wait(), 0.5)
            finally:
                self.waiting -= 1
        return await self.newest()

    async def newest(self) -> Jpeg | None:
        """The newest frame, encoded now unless that was done already; None before the first one."""
        async with self._lock:  # one encode at a time; those who waited get its bytes
            latest = self.feed.latest
            if latest is None:
                return None
            seq, result = latest
            if self._jpeg.seq < seq:
                loop = asyncio.get_running_loop()
                args = (result.annotated, self.width, self.quality)
                data = await loop.run_in_executor(self.executor, encode_jpeg, *args)
                self._jpeg = Jpeg(seq, result.frame.index, data)
                self.encodes += 1
            return self._jpeg


class Subscriber:
    """One event stream: the records of one source (or of all, ``source=None``), newest kept."""

    def __init__(self, source: str | None, limit: int = 512) -> None:
        self.source = source
        self.limit = limit
        self.skipped = 0
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()

    def push(self, data: bytes) -> None:
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.skipped += 1
        self._items.append(data)
        self._ready.set()

    async def take(self, timeout: float) -> bytes:
        """Everything queued (b"" after ``timeout`` without a record)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        data = b"".join(self._items)
        self._items.clear()
        return data

    def wake(self) -> None:
        self._ready.set()


def sse_data(record: dict[str, Any]) -> bytes:
    """One Server-Sent Event: ``data: <the JSON line>`` and a blank line."""
    return b"data: " + dumps_line(record).encode("utf-8") + b"\n"


class Relay:
    """The feeds' ``Listener``: carries frames and events onto the loop for whoever waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, many_sources: Callable[[], bool]) -> None:
        self.loop = loop
        self.many_sources = many_sources
        self.jpeg: dict[str, JpegFeed] = {}
        self.subscribers: tuple[Subscriber, ...] = ()  # replaced, never changed: read from two threads

    def subscribe(self, sub: Subscriber) -> None:
        self.subscribers = (*self.subscribers, sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers = tuple(s for s in self.subscribers if s is not sub)

    def _wanted(self, feed: Feed) -> bool:
        return any(s.source in (None, feed.name) for s in self.subscribers)

    # -- the pipeline's thread --------------------------------------------------------------------------
    def frame(self, feed: Feed, result: FrameResult) -> None:
        jpeg = self.jpeg.get(feed.name)
        waiting = jpeg is not None and jpeg.waiting > 0
        if waiting or self._wanted(feed):
            with contextlib.suppress(RuntimeError):  # the loop has closed: the run is ending
                self.loop.call_soon_threadsafe(self._on_frame, feed, result, waiting)

    def event(self, feed: Feed, record: EventRecord) -> None:
        if self._wanted(feed):
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._send, feed, record.to_dict())

    # -- the loop ---------------------------------------------------------------------------------------
    def _on_frame(self, feed: Feed, result: FrameResult, waiting: bool) -> None:
        if waiting and (jpeg := self.jpeg.get(feed.name)) is not None:
            jpeg.wake()
        if self._wanted(feed):
            self._send(feed, frame_record(result))

    def _send(self, feed: Feed, record: dict[str, Any]) -> None:
        if self.many_sources() and "source" not in record:  # a frame's record (events have theirs)
            record = {"source": feed.name, **record}
        data = sse_data(record)  # made once, whoever reads it
        for sub in self.subscribers:
            if sub.source in (None, feed.name):
                sub.push(data)
