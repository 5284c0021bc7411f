"""MQTT, quieter (issue 29), with a real broker (mosquitto) and a real paho subscriber: a count topic
says at most one value per ``mqtt.count_interval`` and a class's snapshot one picture per
``mqtt.snapshot_interval``, the latest always sent in the end; Home Assistant hears only of
``mqtt.classes``; topic names are slugged; a broker that refuses the password prints its own line only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT
from mosquitto import PASSWORD, USER, Broker, Subscriber
from user_errors import Capture

from detector.compose.outlets import announced_classes
from detector.mqtt.publisher import MqttPublisher
from detector.mqtt.throttle import Throttle
from detector.settings import Settings
from detector.settings.mqtt import MqttSettings
from detector.stats import RunStats
from detector.types import Detections, Frame, FrameResult

GIF = "person-bicycle-car-detection.gif"  # 41 frames, 480x270: people, a bicycle, cars
SOURCE = "person-bicycle-car-detection"
NAMES = {0: "person", 1: "bicycle", 2: "car", 58: "potted plant"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def frame(index: int, classes: list[int]) -> FrameResult:
    n = len(classes)
    detections = Detections(
        xyxy=np.tile(np.array([[10, 10, 50, 90]], np.float32), (n, 1)),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.asarray(classes, np.int64),
        names=NAMES,
    )
    image = np.zeros((120, 160, 3), np.uint8)
    return FrameResult(Frame(image, index, index / 30, time.monotonic()), detections, image, 1.0)


def test_a_burst_of_counts_is_one_message_now_and_the_latest_later(broker: Broker) -> None:
    """20 changes of the count within a moment: the first goes out at once, the last one once the
    topic's interval is up (while the run goes on), none of those between; a class with a space in its
    name has a topic without one."""
    settings = MqttSettings(url=broker.url, count_interval=3.0, discovery=False)
    with Subscriber(broker, "detector/#") as sub:
        publisher = MqttPublisher(settings).start()
        try:
            sink = publisher.add_source("front door", "camera", RunStats())
            topic = "detector/front_door/potted_plant"
            for k in range(1, 21):
                sink.write(frame(k, [58] * k))
            sub.wait_for("the latest count", lambda: [m.text for m in sub.on(topic)][-1:] == ["20"])
            assert [m.text for m in sub.on(topic)] == ["1", "20"]
            everything = [m.text for m in sub.on("detector/front_door/all")]
            assert everything[-2:] == ["1", "20"] and everything[:-2] in ([], ["0"]), everything
        finally:
            publisher.close()
    assert [m.text for m in sub.on(topic)] == ["1", "20", "0"], "0 once the source ends"
    assert not [t for t in sub.topics() if " " in t]


def test_the_throttle_holds_only_the_latest_and_lets_it_out_when_due() -> None:
    throttle = Throttle(1.0)
    assert throttle.offer("a", "1", now=0.0)
    assert not throttle.offer("a", "2", now=0.2) and not throttle.offer("a", "3", now=0.4)
    assert throttle.due(0.9) == [] and throttle.due(1.0) == [("a", "3")]
    assert not throttle.offer("a", "4", now=1.5) and not throttle.offer("a", "3", now=1.6)  # undone
    assert throttle.due(5.0) == [], "a change undone within the interval is no message"
    assert throttle.offer("a", "5", now=5.5)
    assert not throttle.offer("a", "6", now=5.6) and throttle.flush(5.7) == [("a", "6")]


def test_home_assistant_hears_of_the_alert_classes_and_the_kept_ones_by_default() -> None:
    def announced(**data: Any) -> list[str]:
        return announced_classes(Settings.model_validate(data), NAMES)

    assert announced() == ["person", "car"], "review.alert_classes"
    assert announced(classes=["bicycle", "car"]) == ["car", "bicycle"], "alert classes the run keeps, + kept"
    assert announced(mqtt={"classes": ["Potted Plant", 0]}) == ["person", "potted plant"]
    assert announced(mqtt={"classes": []}) == []


def traffic_run(broker: Broker, folder: Path, model: Path, videos: Path, **mqtt: Any) -> list[Any]:
    """The street GIF with the traffic config (its zones and line) and ``mqtt``: every message."""
    data = yaml.safe_load((ROOT / "configs" / "traffic-zones.yaml").read_text())
    data["mqtt"] = mqtt
    config = folder / "traffic-mqtt.yaml"
    config.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "detector", "run", str(videos / GIF), "--model", str(model)]
    cmd += ["--config", str(config), "--mqtt", broker.url, "--json", str(folder / "street.jsonl"), "-q"]
    with Subscriber(broker, "#") as sub:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=folder, env=os.environ)
        assert done.returncode == 0, done.stderr
        sub.wait_for("offline", lambda: [m.text for m in sub.on("detector/available")][-1:] == ["offline"])
        return list(sub.messages)


@pytest.mark.model
def test_a_street_run_sends_each_count_and_snapshot_a_few_times_and_announces_mqtt_classes(
    broker: Broker, model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    messages = traffic_run(
        broker, tmp_path, model_path, videos_dir, count_interval=3600, snapshot_interval=3600,
        classes=["person"],
    )  # fmt: skip
    per_topic = Counter(m.topic for m in messages)
    records = [json.loads(line) for line in (tmp_path / "street.jsonl").read_text().splitlines()]
    assert len([r for r in records if "detections" in r]) == 41
    counts = {t: n for t, n in per_topic.items() if t.startswith(f"detector/{SOURCE}/")}
    counts = {t: n for t, n in counts.items() if not t.endswith(("/status", "/snapshot"))}
    assert counts[f"detector/{SOURCE}/all"] >= 2
    # 0 at start, the first change, the latest held back (sent at the end), 0 at the end
    assert max(counts.values()) <= 4, counts
    for topic in counts:
        assert [m.text for m in messages if m.topic == topic][-1] == "0", topic
    snapshots = {t: n for t, n in per_topic.items() if t.endswith("/snapshot")}
    assert snapshots and max(snapshots.values()) <= 2, f"the first, and the latest at the end: {snapshots}"
    configs = sorted(t for t in per_topic if t.startswith("homeassistant/"))
    assert [t.split("/")[3] for t in configs if "/sensor/" in t] == [
        f"{SOURCE}_all_count",
        f"{SOURCE}_person_count",
        f"{SOURCE}_status",
    ]
    assert [t.split("/")[3] for t in configs if "/image/" in t] == [f"{SOURCE}_person_snapshot"]


@pytest.mark.model
def test_a_wrong_password_prints_its_own_line_only(
    cli: Capture, broker: Broker, model_path: Path, videos_dir: Path
) -> None:
    """No "nothing is saved: add --output" before it: with --mqtt the run tells a broker."""
    url = f"mqtt://{USER}:not-{PASSWORD}@127.0.0.1:{broker.port}"
    code, lines, _ = cli.run("run", videos_dir / GIF, "--model", model_path, "--mqtt", url, "--no-show")
    assert code == 2
    assert len(lines) == 1 and "refused the connection" in lines[0], lines
