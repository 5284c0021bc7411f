"""MQTT with a real broker (Debian's mosquitto on a loopback port, with a password file) and a real
paho subscriber: a run of the real model on real footage (the street GIF with the traffic config's
two zones and its line) publishes every topic, each checked against the run's own JSONL; a broker
that refuses the password, or is not there, is one line and exit 2.

The broker going away mid-run, and kill -9 of detector, are in test_mqtt_live.py.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT
from mosquitto import PASSWORD, USER, Broker, Message, Subscriber
from streaming import free_port
from user_errors import Capture

from detector.compose.outlets import kept_classes
from detector.errors import UserError
from detector.mqtt.link import BrokerLink
from detector.settings.mqtt import MqttSettings

pytestmark = pytest.mark.model

GIF = "person-bicycle-car-detection.gif"  # 41 frames, 480x270: people, a bicycle, cars
SOURCE = "person-bicycle-car-detection"
PREFIX = "home/cams"
CLASSES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]  # the config's


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def traffic_config(folder: Path, **mqtt: Any) -> Path:
    """configs/traffic-zones.yaml with an ``mqtt:`` section."""
    data = yaml.safe_load((ROOT / "configs" / "traffic-zones.yaml").read_text())
    data["mqtt"] = mqtt
    path = folder / "traffic-mqtt.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def street(
    broker: Broker, model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One run: the subscriber's messages, the run's JSONL records, its report and stderr."""
    out = tmp_path_factory.mktemp("street")
    config = traffic_config(out, stats_interval=0.3, count_interval=0, snapshot_interval=0)  # every change
    url = f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{broker.port}/{PREFIX}"
    cmd = [sys.executable, "-m", "detector", "run", str(videos_dir / GIF), "--model", str(model_path)]
    cmd += ["--config", str(config), "--mqtt", url, "--json", str(out / "street.jsonl")]
    cmd += ["--report", str(out / "report.json")]
    with Subscriber(broker) as sub:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=out, env=os.environ)
        assert done.returncode == 0, done.stderr
        sub.wait_for("offline", lambda: [m.text for m in sub.on(f"{PREFIX}/available")][-1:] == ["offline"])
        messages = list(sub.messages)
    with Subscriber(broker) as late:  # what the broker retained, as a client that connects later sees it
        late.wait_for("retained messages", lambda: len(late.messages) > 10, timeout=10)
        time.sleep(0.3)
        retained = {m.topic: m for m in late.messages}
    records = [json.loads(line) for line in (out / "street.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    return {"messages": messages, "records": records, "report": report, "stderr": done.stderr,
            "retained": retained}  # fmt: skip


def on(messages: list[Message], topic: str) -> list[Message]:
    return [m for m in messages if m.topic == topic]


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def expected_values(counts: list[int]) -> list[str]:
    """What a count topic says over a run: 0 at start, each change, 0 once the run stops looking.
    The outbox keeps only the newest value of a topic, so a one-frame blip may be skipped (not sent)."""
    values = ["0"]
    for n in counts:
        if str(n) != values[-1]:
            values.append(str(n))
    if values[-1] != "0":
        values.append("0")
    return values


def test_every_event_record_is_published_as_in_the_jsonl(street: dict[str, Any]) -> None:
    events = [r for r in street["records"] if "event" in r]
    kinds = Counter(r["event"] for r in events)
    assert kinds["zone_enter"] and kinds["zone_exit"], kinds
    published = [json.loads(m.payload) for m in on(street["messages"], f"{PREFIX}/events")]
    assert published == events, "the same records (ids, sources, times), in order"
    assert f"{PREFIX}/events" not in street["retained"]


def test_counts_per_class_follow_the_frames(street: dict[str, Any]) -> None:
    frames = [r for r in street["records"] if "detections" in r]
    assert len(frames) == 41
    seen = {d["class_name"] for r in frames for d in r["detections"]}
    assert {"person", "car"} <= seen
    for name in [*CLASSES, "all"]:
        counts = [sum(1 for d in r["detections"] if name in ("all", d["class_name"])) for r in frames]
        got = [m.text for m in on(street["messages"], f"{PREFIX}/{SOURCE}/{name}")]
        want = expected_values(counts)
        assert got[0] == "0" and got[-1] == "0", (name, got)
        assert is_subsequence(got, want), f"{name}: {got} is not the frames' {want}"
        if name in ("all", "person", "car"):  # in view most of the time, coming and going
            assert len(got) >= 3, (name, got, want)
        assert all(a != b for a, b in itertools.pairwise(got)), f"{name}: sent only on change: {got}"
        assert street["retained"][f"{PREFIX}/{SOURCE}/{name}"].text == "0"


def test_counts_per_zone_follow_the_frames(street: dict[str, Any]) -> None:
    frames = [r for r in street["records"] if "detections" in r]
    for zone in ("lot", "driveway"):
        inside = [r.get("zones", {}).get(zone, {}) for r in frames]
        classes = {c for z in inside for c in z}
        assert classes, f"nothing was ever in {zone}"
        for name in [*classes, "all"]:
            counts = [sum(z.values()) if name == "all" else z.get(name, 0) for z in inside]
            got = [m.text for m in on(street["messages"], f"{PREFIX}/{SOURCE}/{zone}/{name}")]
            assert got and is_subsequence(got, expected_values(counts)), (zone, name, got, counts)
            assert len(got) >= 2, "it changed at least once"


def test_snapshots_are_jpegs_of_the_classes_with_events(street: dict[str, Any]) -> None:
    events = [r for r in street["records"] if r.get("event") in ("zone_enter", "line_cross")]
    classes = {r["class_name"] for r in events}
    assert classes
    for name in classes:
        shots = on(street["messages"], f"{PREFIX}/{SOURCE}/{name}/snapshot")
        assert shots, f"no snapshot of {name}"
        image = cv2.imdecode(np.frombuffer(shots[-1].payload, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (270, 480, 3)
        assert street["retained"][f"{PREFIX}/{SOURCE}/{name}/snapshot"].payload == shots[-1].payload


def test_available_and_status_say_online_then_offline(street: dict[str, Any]) -> None:
    assert [m.text for m in on(street["messages"], f"{PREFIX}/available")] == ["online", "offline"]
    assert [m.text for m in on(street["messages"], f"{PREFIX}/{SOURCE}/status")] == ["online", "offline"]
    assert street["retained"][f"{PREFIX}/available"].text == "offline"
    assert street["retained"][f"{PREFIX}/{SOURCE}/status"].text == "offline"


def test_stats_come_every_interval_with_fps_latency_and_drops(street: dict[str, Any]) -> None:
    stats = [json.loads(m.payload) for m in on(street["messages"], f"{PREFIX}/stats")]
    assert len(stats) >= 2, "stats_interval 0.3 s, and the last one at the end"
    last = stats[-1]["sources"][SOURCE]
    assert last["frames"]["processed"] == 41
    assert last["fps"] > 0 and last["latency_ms"]["p95"] > 0
    assert last["mqtt"]["dropped"] == 0 and last["mqtt"]["published"] > 41


def test_home_assistant_discovers_a_device_per_source(street: dict[str, Any]) -> None:
    configs = {
        m.topic: json.loads(m.payload) for m in street["messages"] if m.topic.startswith("homeassistant/")
    }
    assert all(street["retained"][topic].retain for topic in configs), (
        "retained: Home Assistant reads them later"
    )
    published = {m.topic for m in street["messages"]}
    by_kind = Counter(topic.split("/")[1] for topic in configs)
    assert by_kind["binary_sensor"] == 2, "one per zone"
    assert by_kind["image"] >= len(CLASSES) and by_kind["sensor"] >= len(CLASSES) + 2  # + all, status
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1, "one device"
    for topic, config in configs.items():
        assert topic.endswith("/config")
        assert config["availability_topic"] == f"{PREFIX}/available"
        component = topic.split("/")[1]  # object_id: deprecated by Home Assistant 2025.10, gone in 2026.4
        assert "object_id" not in config and re.fullmatch(
            rf"{component}\.(?!_)(?!.*__)[a-z0-9_]+(?<!_)", config["default_entity_id"]
        ), config.get("default_entity_id")
        if "state_topic" in config:  # an image has no picture until its class had an event
            assert config["state_topic"] in published, f"{topic}: nothing on {config['state_topic']}"
    zones = {c["state_topic"] for t, c in configs.items() if "/binary_sensor/" in t}
    assert zones == {f"{PREFIX}/{SOURCE}/lot/all", f"{PREFIX}/{SOURCE}/driveway/all"}
    images = {c["image_topic"] for t, c in configs.items() if "/image/" in t}
    assert {f"{PREFIX}/{SOURCE}/{n}/snapshot" for n in CLASSES} <= images
    assert {t for t in published if t.endswith("/snapshot")} <= images


def test_the_report_counts_the_messages_and_no_password_shows(street: dict[str, Any]) -> None:
    mqtt = street["report"]["mqtt"]
    assert mqtt["dropped"] == 0
    own = [m for m in street["messages"] if m.topic not in (f"{PREFIX}/available", f"{PREFIX}/stats")]
    assert mqtt["published"] == len(own), "the source's messages, all of them out before the report"
    assert mqtt["broker"] == f"mqtt://127.0.0.1:{street['report']['mqtt']['broker'].split(':')[2]}"
    assert f"mqtt       {mqtt['published']} messages to mqtt://127.0.0.1:" in street["stderr"]
    everything = street["stderr"] + json.dumps(street["report"])
    everything += "".join(m.payload.decode("latin-1") for m in street["messages"])
    assert PASSWORD not in everything


def test_a_wrong_password_is_one_line_and_exit_2(
    cli: Capture, broker: Broker, model_path: Path, footage: Callable[[str], Path], tmp_path: Path
) -> None:
    url = f"mqtt://{USER}:not-{PASSWORD}@127.0.0.1:{broker.port}"
    message = cli.error(
        "run", footage(GIF), "--model", model_path, "--mqtt", url, "--json", tmp_path / "o.jsonl"
    )
    assert message.startswith(f"MQTT broker mqtt://127.0.0.1:{broker.port}/detector refused the connection")
    assert "user name and password" in message and PASSWORD not in message
    assert not (tmp_path / "o.jsonl").exists()


def test_no_broker_is_one_line_and_exit_2(
    cli: Capture, model_path: Path, footage: Callable[[str], Path]
) -> None:
    port = free_port()
    message = cli.error("run", footage(GIF), "--model", model_path, "--mqtt", f"mqtt://u:pw@127.0.0.1:{port}")
    assert message == f"MQTT broker mqtt://127.0.0.1:{port}/detector cannot be reached: Connection refused"


def test_the_password_can_come_from_the_environment_and_a_bare_url_from_the_config(
    cli: Capture, broker: Broker, model_path: Path, videos_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(f"mqtt: mqtt://{USER}@127.0.0.1:{broker.port}/envtest\nshow: false\n")
    monkeypatch.setenv("DETECTOR_MQTT_PASSWORD", PASSWORD)
    with Subscriber(broker, "envtest/#") as sub:
        code, lines, _ = cli.run("run", videos_dir / GIF, "--model", model_path, "--config", config, "-q")
        assert code == 0, lines
        sub.wait_for(
            "offline", lambda: [m.text for m in sub.on("envtest/available")] == ["online", "offline"]
        )
        assert sub.on(f"envtest/{SOURCE}/car")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "http://u:hunter2@127.0.0.1",
            "should be mqtt://[user:pass@]host[:port][/prefix] (or mqtts:// for TLS)",
        ),
        ("mqtt://u:hunter2@127.0.0.1:http", "has a port that is not a number from 1 to 65535"),
        ("mqtt://u:hunter2@127.0.0.1/cams/#", "has a topic prefix with a wildcard (+ or #) or a '?'"),
    ],
)
def test_a_bad_mqtt_url_is_one_line_without_its_password(
    cli: Capture, clip: Path, url: str, says: str
) -> None:
    message = cli.error("run", clip, "--mqtt", url)
    assert message == f"--mqtt {says}"


def test_review_items_are_published_as_new_updates_and_end(street: dict[str, Any]) -> None:
    updates = [json.loads(m.payload) for m in on(street["messages"], f"{PREFIX}/reviews")]
    assert updates, "the street's zone entries make review items"
    events = {r["id"] for r in street["records"] if "event" in r}
    by_item: dict[str, list[dict[str, Any]]] = {}
    for update in updates:
        assert set(update) == {"type", "before", "after"}
        assert update["before"]["id"] == update["after"]["id"]
        by_item.setdefault(update["after"]["id"], []).append(update)
    for item_id, steps in by_item.items():
        types = [s["type"] for s in steps]
        assert types[0] == "new" and types[-1] == "end" and set(types[1:-1]) <= {"update"}, types
        assert steps[0]["before"] == steps[0]["after"], "new: before is the item itself"
        last = steps[-1]["after"]
        assert last["end_time"] is not None and last["source"] == SOURCE
        assert last["severity"] == "alert", "zone events make alerts"
        assert set(last["events"]) <= events and last["zones"]
        for a, b in itertools.pairwise(steps):
            assert b["before"] == a["after"], f"{item_id}: each update starts where the last one ended"


def test_tls_with_the_brokers_ca_and_not_without(
    cli: Capture, model_path: Path, footage: Callable[[str], Path], tmp_path: Path
) -> None:
    with Broker(tmp_path, tls=True) as secure:
        assert secure.ca is not None
        config = tmp_path / "tls.yaml"
        mqtt = {"ca_certs": str(secure.ca), "count_interval": 0}  # every change: more than one a frame
        config.write_text(yaml.safe_dump({"show": False, "mqtt": mqtt}))
        argv = ("run", footage(GIF), "--model", model_path, "--mqtt", secure.url)
        code, lines, _ = cli.run(*argv, "--config", config, "--report", tmp_path / "r.json", "-q")
        assert code == 0, lines
        assert json.loads((tmp_path / "r.json").read_text())["mqtt"]["published"] > 41
        message = cli.error(*argv)  # the system's CAs do not know this one
        assert message == (
            f"MQTT broker mqtts://127.0.0.1:{secure.port}/detector: its TLS certificate is not trusted "
            "(self-signed certificate in certificate chain); give the CA that signed it with mqtt.ca_certs"
        )


def test_the_classes_a_run_keeps_are_announced_as_the_detections_name_them() -> None:
    """``--classes Person,2`` announces (and zeroes) ``person`` and ``car``, the topics the counts go
    to, not a ``Person`` topic that nothing ever updates."""
    names = {0: "person", 1: "bicycle", 2: "car"}
    assert kept_classes(["Person", 2, " car"], names) == ["person", "car"]
    assert kept_classes(None, names) == [] and kept_classes([], names) == []
    with pytest.raises(UserError, match="unknown class name 'persn'; did you mean 'person'"):
        kept_classes(["persn"], names)


@pytest.mark.parametrize(
    ("url", "tls", "port", "name"),
    [
        ("mqtt://u:secret@127.0.0.1/cams", False, 1883, "mqtt://127.0.0.1:1883/cams"),
        ("mqtt://127.0.0.1/cams", True, 8883, "mqtts://127.0.0.1:8883/cams"),  # mqtt.tls: as connected to
        ("mqtts://[::1]:8884", False, 8884, "mqtts://[::1]:8884/detector"),
    ],
)
def test_messages_name_the_broker_as_it_is_connected_to(url: str, tls: bool, port: int, name: str) -> None:
    link = BrokerLink(MqttSettings(url=url, tls=tls))
    assert (link.name, link.port, link.tls) == (name, port, name.startswith("mqtts"))
