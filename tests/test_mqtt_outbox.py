"""The MQTT outbox's threads: a resend on paho's network thread while the outbox's thread records a new
state (against a fake broker, the race made to happen every time), and a callback that fails on
paho's network thread (against a real mosquitto): logged, and the link goes on sending.

Runtime: a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mosquitto import Broker, Subscriber

from detector.mqtt.link import BrokerLink
from detector.mqtt.outbox import Outbox
from detector.settings.mqtt import MqttSettings
from detector.stats import StageTimer


class FakeBroker:
    """Takes every message at once."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.sent: list[tuple[str, bytes | str]] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> bool:
        with self._lock:
            self.sent.append((topic, payload))
        return True

    def on(self, topic: str) -> list[bytes | str]:
        with self._lock:
            return [p for t, p in self.sent if t == topic]


class HeldLatency(StageTimer):
    """The outbox's latency timer, whose ``add`` (the outbox's thread, a message just handed to the
    broker, about to record it as sent) waits until ``go`` is set: a thread switch at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()
        self.go = threading.Event()

    def add(self, ms: float) -> None:
        self.reached.set()
        self.go.wait(10)
        super().add(ms)


class PausingDict(dict[str, Any]):
    """The outbox's record of sent states, whose ``items()`` pauses after the first one (up to 1 s, or
    until the dict is written), as a thread switch would at that moment."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.paused = threading.Event()
        self.written = threading.Event()

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        view = super().items()

        def paused() -> Iterator[tuple[str, Any]]:
            for n, pair in enumerate(view):
                yield pair
                if n == 0:
                    self.paused.set()
                    self.written.wait(1.0)

        return paused()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.written.set()


def wait(what: str, ready: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.01)


def test_a_resend_while_a_new_state_is_recorded_sends_every_state_again() -> None:
    """paho's network thread calls ``resend`` (a reconnect, Home Assistant back) while the outbox's
    thread records a state it just published for a new topic: every state is sent again, and the
    resend does not fail with "dictionary changed size during iteration" (which paho 2 re-raised,
    ending its thread: no MQTT for the rest of the run)."""
    broker = FakeBroker()
    outbox = Outbox(broker).start()
    try:
        outbox.set("det/a", "1")
        outbox.set("det/b", "2")
        wait("first states", lambda: broker.on("det/a") and broker.on("det/b"))
        outbox._sent = sent = PausingDict(outbox._sent)
        outbox.latency = latency = HeldLatency()
        outbox.set("det/new", "3", born=time.monotonic())
        assert latency.reached.wait(10), "the outbox's thread has published the new topic"
        failed: list[BaseException] = []

        def network_thread() -> None:
            try:
                outbox.resend()
            except BaseException as exc:
                failed.append(exc)

        resend = threading.Thread(target=network_thread)
        resend.start()
        assert sent.paused.wait(10), "the resend is half-way through the sent states"
        latency.go.set()  # the outbox's thread goes on: it records the new topic's state
        resend.join(10)
        assert not resend.is_alive()
        assert failed == [], f"resend failed: {failed}"
        wait("the new state recorded", lambda: "det/new" in sent)
        outbox.resend()  # the new topic too, now
        wait(
            "every state sent again",
            lambda: all(len(broker.on(t)) >= 2 for t in ("det/a", "det/b", "det/new")),
        )
    finally:
        outbox.close(timeout=2)
    assert broker.on("det/a")[-1] == "1" and broker.on("det/new")[-1] == "3"


def test_a_failing_callback_is_logged_and_the_link_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises on paho's network thread is logged, and that thread goes on: after the
    broker restarts, the link reconnects and sends again (paho 2 re-raised it: the network thread
    ended, and the run never reconnected)."""
    with Broker(tmp_path) as mosquitto:
        link = BrokerLink(MqttSettings(url=f"{mosquitto.url}/det"))
        calls: list[int] = []

        def resend() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("dictionary changed size during iteration")

        link.on_connected = resend
        with caplog.at_level(logging.ERROR, logger="detector.mqtt.link"):
            link.start()
            try:
                mosquitto.restart()
                wait("a reconnect", lambda: link.reconnects == 1 and link.connected.is_set(), timeout=15)
                with Subscriber(mosquitto, "det/#") as subscriber:
                    assert link.publish("det/after", "still here", qos=1, retain=False)
                    subscriber.wait_for(
                        "the message sent after the reconnect", lambda: subscriber.on("det/after"), 10
                    )
                    assert [m.text for m in subscriber.on("det/after")] == ["still here"]
            finally:
                link.close(timeout=2)
        assert len(calls) == 2, "called again after the reconnect"
        assert "MQTT: handling the broker's on_connect failed" in caplog.text
        assert "dictionary changed size during iteration" in caplog.text
