"""The bounded outbox between the pipeline and the broker, and the thread that empties it.

The pipeline's thread only puts (O(1), never waits): a *message* (an event, a review item, the
stats) joins a queue of at most ``capacity``, the oldest dropped past it (counted, per source); a
*state* (a count, a status, a snapshot, a discovery config: retained) replaces the value waiting for
its topic, so states never pile up, and the latest of each is kept to be sent again after a
reconnect. A payload may be a function (a JSON dump, a JPEG encode): the outbox's thread calls it,
so that work is never the pipeline's. While the broker is away nothing is published; messages wait
(up to ``capacity``) and every state is sent again once it is back.

Pictures (a snapshot's JPEG) are made on a second thread, at a lower priority, then sent as states:
an encode never stands between an event and the broker. ``ticks`` run on the outbox's thread every
``TICK`` seconds (status changes, the stats message).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from detector.stats import StageTimer

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between the ticks (status polling)
Payload = bytes | str | Callable[[], bytes | str | None]


class Broker(Protocol):
    connected: threading.Event

    def publish(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> bool: ...


@dataclass
class _Item:
    topic: str
    payload: Payload
    retain: bool
    source: str
    born: float | None  # time.monotonic() when its frame reached the sinks (for the latency)
    again: bool = False  # a state sent again (after a reconnect), even though it did not change


class Outbox:
    def __init__(self, broker: Broker, *, qos: int = 1, capacity: int = 1000) -> None:
        self.broker = broker
        self.qos = qos
        self.capacity = capacity
        self.published: Counter[str] = Counter()  # by source ("" for the run's own topics)
        self.dropped: Counter[str] = Counter()
        self.latency = StageTimer()  # ms from the frame at the sinks to its message handed to the broker
        self.ticks: list[Callable[[], None]] = []
        self._messages: deque[_Item] = deque()
        self._pending: dict[str, _Item] = {}  # states waiting to be sent, by topic
        self._sent: dict[str, _Item] = {}  # the latest state of every topic, payload resolved (``_cond``)
        self._pictures: dict[str, _Item] = {}  # slow states waiting for the picture thread, by topic
        self._cond = threading.Condition()
        self._closing = False  # the picture thread ends once it made what waits
        self._finishing = False  # then the outbox's thread, once it sent what waits
        self._hold_until = 0.0  # paho's own queue was full: nothing more until then
        self._refusals = 0  # messages the client raised on (logged once)
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._painter = threading.Thread(target=self._paint, name="mqtt-pictures", daemon=True)

    # -- any thread ---------------------------------------------------------------------------------------
    def put(self, topic: str, payload: Payload, *, source: str = "", born: float | None = None) -> None:
        """A message (not retained); the oldest waiting one is dropped when the outbox is full."""
        with self._cond:
            if len(self._messages) >= self.capacity:
                self.dropped[self._messages.popleft().source] += 1
            self._messages.append(_Item(topic, payload, False, source, born))
            self._cond.notify()

    def set(
        self, topic: str, payload: Payload, *, source: str = "", born: float | None = None, slow: bool = False
    ) -> None:
        """A retained state: replaces what waits for ``topic``. ``slow``: a payload that takes long to
        make (a JPEG to encode), made on a thread of its own (at a lower priority), so that it never
        delays an event or a count."""
        with self._cond:
            waiting = self._pictures if slow and callable(payload) else self._pending
            waiting[topic] = _Item(topic, payload, True, source, born)
            self._cond.notify_all()

    def resend(self) -> None:
        """Send every state again (after a reconnect: the broker may have lost what it retained)."""
        with self._cond:  # in the order they were first sent (``available`` first), newer values kept
            again = {t: _Item(t, i.payload, True, i.source, None, True) for t, i in self._sent.items()}
            self._pending = {**again, **self._pending}
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def start(self) -> Outbox:
        self._thread.start()
        self._painter.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Make and publish what waits (while connected), at most ``timeout`` seconds, then stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._painter.is_alive():
            self._painter.join(timeout / 2)
        with self._cond:
            self._finishing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            for item in self._messages:
                self.dropped[item.source] += 1
            self._messages.clear()

    def totals(self) -> tuple[dict[str, float], dict[str, float]]:
        """(published, dropped) by source, copied (another thread may be counting)."""
        with self._cond:
            return {k: float(v) for k, v in self.published.items()}, {
                k: float(v) for k, v in self.dropped.items()
            }

    def _made(self, item: _Item) -> bytes | str | None:
        """The item's payload, made now if it is a function; None when there is nothing to say after all
        (a picture that could not be encoded) or making it failed (logged, counted as dropped)."""
        try:
            return item.payload() if callable(item.payload) else item.payload
        except Exception as exc:
            log.warning("MQTT: %s not published: %s", item.topic, exc)
            self._count(self.dropped, item.source)
            return None

    def _refused(self, item: _Item, exc: Exception) -> None:
        """A message the client would not take: dropped, counted; logged once a run."""
        self._count(self.dropped, item.source)
        if not self._refusals:
            log.warning("MQTT: %.200s not published (%s); such messages are dropped", item.topic, exc)
        self._refusals += 1

    def _count(self, counter: Counter[str], source: str) -> None:
        with self._cond:  # counted from three threads
            counter[source] += 1

    # -- the outbox's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            with self._cond:
                closing = self._finishing
                if not closing:
                    self._cond.wait_for(self._ready, timeout=max(0.0, next_tick - time.monotonic()))
            if time.monotonic() >= next_tick or closing:
                next_tick = time.monotonic() + TICK
                for tick in self.ticks:
                    try:
                        tick()
                    except Exception:  # a tick must never stop the publishing
                        log.exception("MQTT: a periodic message failed")
            sent = self._send_waiting()
            if closing and (not sent or not self.broker.connected.is_set()):
                return

    def _ready(self) -> bool:
        if self._finishing:
            return True
        waiting = bool(self._messages or self._pending) and time.monotonic() >= self._hold_until
        return waiting and self.broker.connected.is_set()

    def _send_waiting(self) -> int:
        """Publish everything that waits; the number sent."""
        if not self.broker.connected.is_set():
            return 0
        with self._cond:
            states, self._pending = list(self._pending.values()), {}
            messages, self._messages = list(self._messages), deque()
        for item in [*messages, *states]:
            payload = self._made(item)
            if payload is None:
                continue
            with self._cond:  # ``resend`` reads it on paho's network thread
                last = self._sent.get(item.topic) if item.retain and not item.again else None
            if last is not None and last.payload == payload:
                continue  # a change and its undoing, both within one turn of this thread: no change
            try:
                taken = self.broker.publish(item.topic, payload, qos=self.qos, retain=item.retain)
            except Exception as exc:  # one message paho refuses (a topic too long) never stops the thread
                self._refused(item, exc)
                continue
            if taken:
                self._count(self.published, item.source)
                if item.born is not None:
                    self.latency.add((time.monotonic() - item.born) * 1000)
            elif item.retain:  # a state is never lost: it waits for the next turn (unless a newer one does)
                again = _Item(item.topic, payload, True, item.source, None, True)
                with self._cond:
                    self._pending.setdefault(item.topic, again)
                    self._hold_until = time.monotonic() + TICK  # paho's queue is full: let it drain
                continue
            else:
                self._count(self.dropped, item.source)
            if item.retain:
                with self._cond:
                    self._sent[item.topic] = _Item(item.topic, payload, True, item.source, None)
        return len(states) + len(messages)

    # -- the picture thread -------------------------------------------------------------------------------
    def _paint(self) -> None:
        """Make the slow payloads (JPEGs), one at a time, and hand each to the outbox as a state."""
        with contextlib.suppress(AttributeError, OSError):  # Linux: nice +10 for this thread alone
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closing or bool(self._pictures))
                if not self._pictures:
                    return
                topic = next(iter(self._pictures))
                item = self._pictures.pop(topic)
            payload = self._made(item)
            if payload is not None:
                self.set(item.topic, payload, source=item.source)
