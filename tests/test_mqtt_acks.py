"""What the broker acknowledged, said honestly: with QoS 1 the summary and the report count the PUBACKs.
A broker that answers acknowledges every message; a real mosquitto frozen (SIGSTOP) once the run is
connected, then killed after it, takes messages into the socket's buffers and acknowledges none of
them: the summary says so instead of "0 dropped" alone."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from detector_process import DetectorProcess
from mosquitto import Broker, Subscriber

pytestmark = pytest.mark.model

GIF = "person-bicycle-car-detection.gif"


def start(broker: Broker, model: Path, videos: Path, folder: Path) -> DetectorProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    cmd = ["detector", "run", str(videos / GIF), "--model", str(model), "--no-show", "--max-frames", "20"]
    cmd += [
        "--mqtt",
        broker.url,
        "--report",
        str(folder / "report.json"),
        "--json",
        str(folder / "out.jsonl"),
    ]
    return DetectorProcess(cmd, folder, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})


def summary(run: DetectorProcess) -> str:
    [line] = [line for line in run.stderr.splitlines() if line.startswith("mqtt ")]
    return line


def test_a_broker_that_answers_acknowledges_everything(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with Broker(tmp_path) as broker:
        run = start(broker, model_path, videos_dir, tmp_path)
        try:
            assert run.finish(120) == 0, run.stderr
        finally:
            run.kill()
    mqtt = json.loads((tmp_path / "report.json").read_text())["mqtt"]
    assert mqtt["run_published"] > 10
    assert mqtt["run_acknowledged"] == mqtt["run_published"]
    assert "acknowledged" not in summary(run) and "may be lost" not in run.stderr


def test_a_frozen_broker_is_not_said_to_have_taken_everything(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with Broker(tmp_path) as broker, Subscriber(broker, "detector/available") as sub:
        run = start(broker, model_path, videos_dir, tmp_path)
        try:
            sub.wait_for("online", lambda: [m.text for m in sub.on("detector/available")] == ["online"])
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGSTOP)  # connections stay open; nothing is read
            code = run.finish(120)
        finally:
            run.kill()
            broker.stop()  # killed while frozen: what it never acknowledged is gone
    assert code == 0, run.stderr
    mqtt = json.loads((tmp_path / "report.json").read_text())["mqtt"]
    assert mqtt["dropped"] == 0, "handed to the client, never dropped by the outbox"
    assert mqtt["run_acknowledged"] < mqtt["run_published"]
    line = summary(run)
    said = f"the broker acknowledged only {mqtt['run_acknowledged']} of the run's {mqtt['run_published']}"
    assert said in line, line
    assert "may be lost" in run.stderr
