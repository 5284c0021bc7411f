"""MQTT when things go wrong, with a real broker (mosquitto) and the real ``detector`` in a subprocess:
the broker is killed mid-run and started again (the run goes on, reconnects, says ``online`` again,
and later events arrive; what could not wait is dropped and counted in the report and on
``/metrics``), and kill -9 of detector makes the broker publish its last will, ``offline``.

The source is the doorway footage served live, in real time, so the run lasts as long as the stream
and the broker's outage falls between two of its events.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from detector_process import DetectorProcess, launched
from mosquitto import Broker, Subscriber
from streaming import StreamServer, free_port
from test_live import headless_env

from detector.sources.naming import source_name

pytestmark = [pytest.mark.model, pytest.mark.slow]

CLIP = "one-by-one-person-detection.mp4"  # 10 fps; a person enters the room at 6.4 s and leaves at 20.6 s
PREFIX = "detector"


class Detector(DetectorProcess):
    def __init__(self, source: str, model: Path, folder: Path, *extra: str) -> None:
        self.report = folder / "report.json"
        cmd = ["detector", "run", source, "--model", str(model), *extra]
        cmd += ["--json", str(folder / "out.jsonl"), "--report", str(self.report)]
        super().__init__(cmd, folder, headless_env())


@pytest.fixture
def launch(model_path: Path, tmp_path: Path) -> Iterator[Callable[..., Detector]]:
    yield from launched(lambda source, *extra: Detector(source, model_path, tmp_path, *extra))


def room_config(folder: Path, **mqtt: object) -> Path:
    """Every person in the room (the whole frame) enters a zone, and leaves it."""
    data = {
        "classes": ["person"],
        "show": False,
        "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "mqtt": mqtt,
    }
    path = folder / "room.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def metric(port: int, name: str) -> float:
    """The sum of a counter over its labels, from the web view's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    assert values, f"no {name} in /metrics"
    return sum(values)


def test_the_run_rides_out_a_broker_restart(
    launch: Callable[..., Detector], videos_dir: Path, tmp_path: Path
) -> None:
    broker = Broker(tmp_path)
    web = free_port()
    config = room_config(tmp_path, stats_interval=0.2, outbox=10)
    with (
        broker,
        Subscriber(broker) as sub,
        StreamServer(videos_dir / CLIP, duration=26, lifetime=120) as stream,
    ):
        run = launch(stream.url, "--config", str(config), "--mqtt", broker.url, "--serve", f"127.0.0.1:{web}",
                     "--reconnect-max", "0")  # fmt: skip
        source = source_name(stream.url)
        events = f"{PREFIX}/events"
        run.wait_until("a first event on MQTT", lambda: sub.on(events), timeout=60)
        first = [json.loads(m.payload) for m in sub.on(events)]
        assert first[0]["event"] == "zone_enter" and first[0]["source"] == source

        broker.stop()
        time.sleep(3.0)  # 15 stats messages fall due meanwhile: 10 wait, the oldest are dropped
        assert run.proc.poll() is None, "the run goes on without its broker"
        back = time.time()
        broker.start()
        run.wait_until("online again", lambda: any(m.at > back for m in sub.on(f"{PREFIX}/available")), 30)
        assert [m.text for m in sub.on(f"{PREFIX}/available") if m.at > back] == ["online"]
        run.wait_until("an event after the restart", lambda: any(m.at > back for m in sub.on(events)), 40)
        later = [json.loads(m.payload) for m in sub.on(events) if m.at > back]
        assert later[0]["event"] == "zone_exit" and later[0]["track_id"] == first[0]["track_id"]
        retained = {f"{PREFIX}/{source}/status", f"{PREFIX}/{source}/person", "homeassistant/"}
        again = {m.topic for m in sub.messages if m.at > back}
        assert all(any(t.startswith(r) for t in again) for r in retained), "states sent again"
        dropped_seen = metric(web, "detector_mqtt_messages_dropped_total")
        assert dropped_seen >= 5
        assert metric(web, "detector_mqtt_reconnects_total") == 1
        code = run.finish(timeout=60)
    assert code == 0, run.stderr
    report = json.loads(run.report.read_text())["mqtt"]
    assert report["reconnects"] == 1
    assert report["run_dropped"] >= dropped_seen
    assert "MQTT: lost mqtt://127.0.0.1:" in run.stderr and "MQTT: reconnected to" in run.stderr
    assert f"dropped ({report['run_dropped']} in the whole run), reconnected 1x" in run.stderr
    assert "Traceback" not in run.stderr and broker.password not in run.stderr


def test_kill_9_makes_the_broker_say_offline(
    launch: Callable[..., Detector], footage: Callable[[str], Path], tmp_path: Path
) -> None:
    clip = footage(CLIP)  # any clip: the sample one without the shared footage
    with Broker(tmp_path) as broker, Subscriber(broker) as sub:
        run = launch(str(clip), "--mqtt", broker.url, "--max-frames", "1000")
        available = f"{PREFIX}/available"
        run.wait_until("online", lambda: [m.text for m in sub.on(available)] == ["online"], timeout=60)
        source = source_name(str(clip))
        run.wait_until("counts", lambda: sub.on(f"{PREFIX}/{source}/all"), timeout=30)
        run.proc.kill()
        run.proc.wait(10)
        killed = time.monotonic()
        sub.wait_for(
            "the last will", lambda: [m.text for m in sub.on(available)] == ["online", "offline"], 10
        )
        assert time.monotonic() - killed < 5, "the broker tells at once, not after the keep-alive"
        with Subscriber(broker) as late:
            late.wait_for("the retained offline", lambda: late.on(available), timeout=10)
            assert [m.text for m in late.on(available)] == ["offline"]
