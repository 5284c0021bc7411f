"""Names of 70,000 characters: a zone's, a line's, a source's, a topic prefix, Home Assistant's
discovery prefix, a client id, a user name are one line and exit 2 at start (they would go into MQTT
topics and packets, which end at 65,535 bytes); and a message the MQTT client refuses all the same
never stops the outbox's thread: it is dropped and counted, logged once, and every other message
still reaches a real mosquitto."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from mosquitto import Broker, Subscriber
from user_errors import Capture

from detector.mqtt.link import BrokerLink
from detector.mqtt.outbox import Outbox
from detector.settings.mqtt import MqttSettings

LONG = "n" * 70_000
SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1]]

CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "zone": ({"zones": [{"name": LONG, "polygon": SQUARE}]}, "key 'zones.name' should have at most 64"),
    "line": ({"lines": [{"name": LONG, "start": [0, 0.5], "end": [1, 0.5]}]}, "key 'lines.name' should"),
    "ignore": ({"ignore": [{"name": LONG, "polygon": SQUARE}]}, "key 'ignore.name' should have at most"),
    "source": ({"sources": [{"source": "x.mp4", "name": LONG}]}, "key 'sources.name' should have at most"),
    "discovery prefix": ({"mqtt": {"url": "mqtt://127.0.0.1", "discovery_prefix": LONG}}, "at most 200"),
    "client id": ({"mqtt": {"url": "mqtt://127.0.0.1", "client_id": LONG}}, "key 'mqtt.client_id'"),
    "user name": ({"mqtt": {"url": "mqtt://127.0.0.1", "username": LONG}}, "key 'mqtt.username'"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_long_name_in_a_config_is_one_line_and_exit_2(
    cli: Capture, clip: Path, tmp_path: Path, case: str
) -> None:
    data, says = CONFIGS[case]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    message = cli.error("run", clip, "--config", config)
    assert says in message
    assert len(message) < 1000


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"mqtt://127.0.0.1/{LONG}", "--mqtt has a topic prefix of 70,000 characters; at most 200"),
        (f"mqtt://{LONG}:pw@127.0.0.1", "--mqtt has a user name of 70,000 characters; at most 200"),
    ],
    ids=["prefix", "user"],
)
def test_a_long_mqtt_url_is_one_line_and_exit_2(cli: Capture, clip: Path, url: str, says: str) -> None:
    assert cli.error("run", clip, "--mqtt", url) == says


def test_a_message_the_client_refuses_is_dropped_and_the_outbox_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Broker(tmp_path) as broker, Subscriber(broker, "t/#") as sub:
        link = BrokerLink(MqttSettings(url=broker.url)).start()
        outbox = Outbox(link, qos=1).start()
        try:
            with caplog.at_level(logging.WARNING, logger="detector.mqtt.outbox"):
                for n in range(5):
                    outbox.put(f"t/{LONG}", "too long", source="door")  # paho: "topic is too long"
                    outbox.put(f"t/message/{n}", str(n), source="door")
                outbox.set(f"t/{LONG}/state", "too long", source="door")
                outbox.set("t/state", "on", source="door")
                sub.wait_for("every message", lambda: len(sub.messages) == 6, timeout=10)
        finally:
            outbox.close()
            link.close()
    assert [m.topic for m in sub.messages if m.topic != "t/state"] == [f"t/message/{n}" for n in range(5)]
    assert [m.text for m in sub.on("t/state")] == ["on"]
    assert outbox.published["door"] == 6 and outbox.dropped["door"] == 6
    refused = [r for r in caplog.records if "not published" in r.getMessage()]
    assert len(refused) == 1, "logged once"
    assert len(refused[0].getMessage()) < 500
