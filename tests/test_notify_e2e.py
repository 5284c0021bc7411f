"""Notifications end to end: the real model on real footage (people walking into a room, the whole
frame a zone, so each one's visit is an alert review item), Apprise posting to a loopback ``json://``
server: one POST per alert item, its snapshot attached (a JPEG of the footage); the cooldown holds;
a dead endpoint (it accepts and never answers) does not slow the run: the pipeline never waits for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from mosquitto import Broker, Subscriber
from user_errors import Capture
from webhook import Blackhole, Webhook, attachments

pytestmark = [pytest.mark.model, pytest.mark.slow]

CLIP = "one-by-one-person-detection.mp4"  # 768x432, 10 fps: people come in at 6.4 s and 23.1 s
FRAMES = 300
TIMEOUT = 5.0  # notify.timeout of the dead endpoint's run


def config(folder: Path, **notify: Any) -> Path:
    data = {
        "classes": ["person"],
        "show": False,
        "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "review": {"gap": 1.0},  # one visit, one item
        "notify": notify,
    }
    path = folder / "room.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(cli: Capture, model: Path, clip: Path, folder: Path, url: str, *extra: str, **notify: Any) -> dict:
    report = folder / "report.json"
    code, lines, _ = cli.run(
        "run", clip, "--model", model, "--config", config(folder, **notify), "--notify", url,
        "--max-frames", FRAMES, "--json", folder / "out.jsonl", "--report", report, *extra,
    )  # fmt: skip
    assert code == 0, lines
    assert not [line for line in lines if "Traceback" in line]
    return json.loads(report.read_text())


def test_one_post_per_alert_with_its_snapshot(
    cli: Capture, model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with Broker(tmp_path) as broker, Subscriber(broker, "detector/reviews") as sub, Webhook() as hook:
        report = run(cli, model_path, videos_dir / CLIP, tmp_path, hook.url, "--mqtt", broker.url,
                     cooldown=0, url_base="http://127.0.0.1:8080")  # fmt: skip
        updates = [json.loads(m.payload) for m in sub.on("detector/reviews")]
        posts = hook.received()
    alerts = {u["after"]["id"] for u in updates if u["after"]["severity"] == "alert"}
    assert len(alerts) == 2, "two people, two visits"
    assert len(posts) == len(alerts), "one notification per alert item, not per frame or event"
    assert report["notify"]["sent"] == 2 and report["notify"]["failed"] == 0
    for post in posts:
        body = post["json"]
        assert body["title"].startswith("person at one-by-one-person-detection")
        assert " in room at " in body["message"]
        link = body["message"].rsplit("\n", 1)[1]
        assert link.startswith("http://127.0.0.1:8080/history?review=") and link.split("=")[1] in alerts
        [(name, mime, data)] = attachments(post)
        assert name == "snapshot.jpg"
        assert mime == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (432, 768, 3)


def test_the_cooldown_holds(cli: Capture, model_path: Path, videos_dir: Path, tmp_path: Path) -> None:
    with Webhook() as hook:
        report = run(cli, model_path, videos_dir / CLIP, tmp_path, hook.url, cooldown=3600)
        posts = hook.received()
    assert len(posts) == 1, "the second visit falls within the first one's cooldown"
    assert report["notify"]["sent"] == 1 and report["notify"]["skipped"] == 1


def test_a_dead_endpoint_does_not_slow_the_run(
    cli: Capture, model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with Blackhole() as dead:
        report = run(cli, model_path, videos_dir / CLIP, tmp_path, dead.url, cooldown=0, timeout=TIMEOUT)
        assert dead.connections >= 1
    notify = report["notify"]
    assert notify["sent"] == 0 and notify["failed"] + notify["dropped"] == 2
    frames = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    frames = [f for f in frames if "detections" in f]
    assert len(frames) == FRAMES
    # A frame waits in a queue of 4 while the one before it is handled: had the pipeline waited for a
    # try (each takes TIMEOUT), some frame would have waited that long between decoder and sinks.
    worst = max(f["latency_ms"] for f in frames)
    assert worst < TIMEOUT * 1000 / 2, f"a frame waited {worst:.0f} ms"
