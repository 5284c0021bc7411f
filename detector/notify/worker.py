"""The notification queue and the thread that sends from it.

``submit`` never waits: a notification joins a queue of at most ``QUEUE`` (past it, the new one is
dropped and counted). The thread makes its JPEG (the picture is encoded there, not on the pipeline's
thread) and sends it to every target, each try bounded by ``notify.timeout``, a failed one tried again
``notify.retries`` times after 1 s, 2 s, 4 s... At the end of the run, what waits gets one more
``notify.timeout`` to go out (without the waits between tries); what is still unsent then is dropped,
counted and logged: a dead endpoint never holds the run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

QUEUE = 32  # notifications waiting, at most
BACKOFF = 1.0  # seconds before the first retry; doubles


@dataclass(frozen=True)
class Note:
    """One notification: what it says, and the JPEG attached (if any)."""

    title: str
    body: str
    jpeg: bytes | None = None
    name: str = "snapshot.jpg"


class Target(Protocol):
    name: str

    def send(self, note: Note) -> bool: ...


@dataclass
class Job:
    source: str
    title: str
    body: str
    picture: Callable[[], bytes | None] | None  # called on the worker's thread
    queued: float


class Notifier:
    def __init__(self, targets: Sequence[Target], *, timeout: float = 10.0, retries: int = 2) -> None:
        self.targets = list(targets)
        self.timeout = timeout
        self.retries = retries
        self.sent: Counter[str] = Counter()  # notifications that reached every target, by source
        self.failed: Counter[str] = Counter()  # ... that some target never took
        self.dropped: Counter[str] = Counter()  # ... never sent: the queue was full, or the run ended
        self._queue: queue.Queue[Job | None] = queue.Queue(QUEUE)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._busy: Job | None = None  # the one being sent
        self._lock = threading.Lock()

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def submit(
        self, source: str, title: str, body: str, picture: Callable[[], bytes | None] | None = None
    ) -> bool:
        """Queue one notification; False (counted as dropped) when the queue is full or closed."""
        with self._lock:  # enqueued under the lock: nothing slips in after ``close`` took what waits
            if self._closing.is_set():
                self.dropped[source] += 1
                return False
            try:
                self._queue.put_nowait(Job(source, title, body, picture, time.monotonic()))
            except queue.Full:
                self.dropped[source] += 1
                log.warning("notification for %s dropped: %d are still waiting to be sent", source, QUEUE)
                return False
        return True

    def _drop(self, source: str) -> None:
        with self._lock:
            self.dropped[source] += 1

    def totals(self) -> dict[str, dict[str, float]]:
        """Sent, failed and dropped by source, copied (the worker may be counting)."""
        with self._lock:
            return {
                name: {k: float(v) for k, v in counter.items()}
                for name, counter in (("sent", self.sent), ("failed", self.failed), ("dropped", self.dropped))
            }

    def close(self) -> None:
        """Give what waits one more ``timeout`` to go out, then stop (the rest is dropped)."""
        with self._lock:
            self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(self.timeout)
        left: list[Job] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                left.append(job)
        with contextlib.suppress(queue.Full):  # the draining took the first one: a busy worker still ends
            self._queue.put_nowait(None)
        with self._lock:
            if self._thread.is_alive() and self._busy is not None:
                left.append(self._busy)  # still trying: counted here, and not when it gives up
                self._busy = None
        for job in left:
            self._drop(job.source)
        if left:
            log.warning("%d notifications not sent: the run ended while they waited", len(left))

    # -- the worker's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._busy = job
            try:
                ok = self._deliver(job)
            except Exception:  # never lose the thread to one notification
                log.exception("notification for %s failed", job.source)
                ok = False
            with self._lock:
                if self._busy is job:  # not given up on by ``close``
                    (self.sent if ok else self.failed)[job.source] += 1
                self._busy = None

    def _deliver(self, job: Job) -> bool:
        jpeg = None
        if job.picture is not None:
            try:
                jpeg = job.picture()
            except Exception as exc:  # the notification still goes, without its picture
                log.warning("notification for %s goes without a snapshot: %s", job.source, exc)
        note = Note(job.title, job.body, jpeg)
        pending = list(self.targets)
        wait = BACKOFF
        for attempt in range(self.retries + 1):
            pending = [t for t in pending if not t.send(note)]
            if not pending:
                return True
            if attempt < self.retries and self._closing.wait(wait):
                wait = 0.0  # the run is ending: no more waiting between tries
            wait *= 2
        for target in pending:
            log.warning(
                "notification for %s not taken by %s after %d tries",
                job.source,
                target.name,
                self.retries + 1,
            )
        return False
