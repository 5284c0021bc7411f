"""At most one message per topic every so many seconds, never losing the last state.

A busy street changes its counts every few frames: sent on every change, ``{prefix}/{source}/all``
went out 576 times in 70 s. A ``Throttle`` lets a topic's value through when the topic has been quiet
for ``interval`` seconds; one that comes sooner is held (a newer one replaces it) and goes out once
the time is up (``due``, called every outbox tick), or at the end (``flush``). So a subscriber sees at
most one value a second, and always, at most ``interval`` late, the value that is true now.

Written here because it is a dict and a clock: the rate limiters on PyPI meter calls (drop or wait),
neither of which keeps the last value. Not thread-safe: its owner holds a lock around it.
"""

from __future__ import annotations

from typing import Any


class Throttle:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._sent_at: dict[str, float] = {}  # when each topic's last value went out
        self._last: dict[str, Any] = {}  # that value
        self._held: dict[str, Any] = {}  # the value waiting for its topic's time, by topic

    def offer(self, topic: str, value: Any, now: float) -> bool:
        """True: send ``value`` now. False: held until ``due`` (or dropped: it is what was sent last)."""
        sent_at = self._sent_at.get(topic)
        if sent_at is None or now - sent_at >= self.interval:
            self._held.pop(topic, None)
            self._sent(topic, value, now)
            return True
        if value == self._last.get(topic):
            self._held.pop(topic, None)  # a change undone within the interval: nothing to tell
        else:
            self._held[topic] = value
        return False

    def due(self, now: float) -> list[tuple[str, Any]]:
        """The held values whose time is up, (topic, value), to send now."""
        ready = [(t, v) for t, v in self._held.items() if now - self._sent_at[t] >= self.interval]
        for topic, value in ready:
            del self._held[topic]
            self._sent(topic, value, now)
        return ready

    def flush(self, now: float) -> list[tuple[str, Any]]:
        """Every held value, to send now (the end of a run)."""
        ready = list(self._held.items())
        self._held.clear()
        for topic, value in ready:
            self._sent(topic, value, now)
        return ready

    def _sent(self, topic: str, value: Any, now: float) -> None:
        self._sent_at[topic] = now
        self._last[topic] = value
