"""A notification endpoint that trickles its reply (a byte every 3 s, so no read ever times out) does
not keep ``detector`` alive: ``notify.timeout`` bounds the whole try, and the process exits within
``notify.timeout`` + 5 s of its summary, the notification counted as not sent. The real model on real
footage, in a real subprocess (what keeps a process alive is the interpreter's exit)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from detector_process import DetectorProcess
from webhook import Trickle

from detector.notify.sender import STUCK, targets
from detector.notify.worker import Note

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"  # 10 fps: a person comes in at 6.4 s
TIMEOUT = 4.0  # notify.timeout: longer than the 3 s between bytes, so no read times out


def test_a_trickling_endpoint_does_not_keep_the_process_alive(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "room.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "classes": ["person"],
                "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                "notify": {"cooldown": 0, "timeout": TIMEOUT, "retries": 0},
            }
        )
    )
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with Trickle(every=3.0) as slow:
        cmd = ["detector", "run", str(videos_dir / CLIP), "--model", str(model_path), "--no-show"]
        cmd += ["--config", str(config), "--notify", slow.url, "--max-frames", "90"]
        cmd += ["--report", str(report), "--json", str(tmp_path / "out.jsonl")]
        run = DetectorProcess(cmd, tmp_path, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})
        try:
            run.wait_until("the summary", lambda: "notify " in run.stderr, timeout=120)
            summary = time.monotonic()
            code = run.finish(TIMEOUT + 5)
            assert time.monotonic() - summary < TIMEOUT + 5
            assert slow.connections >= 1, "the notification went to the endpoint"
        finally:
            run.kill()
    assert code == 0, run.stderr
    notify = json.loads(report.read_text())["notify"]
    assert notify["sent"] == 0 and notify["failed"] + notify["dropped"] == 1
    assert "Traceback" not in run.stderr


def test_ctrl_c_while_a_notification_trickles_ends_the_process_at_once(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    """The run is over and the notifier gives what waits one more ``notify.timeout`` (30 s here): a
    Ctrl-C, then a second, end the process within seconds, not when the endpoint stops."""
    config = tmp_path / "room.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "classes": ["person"],
                "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                "notify": {"cooldown": 0, "timeout": 30, "retries": 0},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with Trickle(every=3.0) as slow:
        cmd = ["detector", "run", str(videos_dir / CLIP), "--model", str(model_path), "--no-show"]
        cmd += ["--config", str(config), "--notify", slow.url, "--max-frames", "90"]
        cmd += ["--json", str(tmp_path / "out.jsonl")]
        run = DetectorProcess(cmd, tmp_path, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})
        try:
            run.wait_until("every frame", lambda: len(run.frames()) == 90 and slow.connections, timeout=120)
            time.sleep(1.0)  # the notifier's last wait
            for _ in range(2):
                run.proc.send_signal(signal.SIGINT)
                time.sleep(0.3)
            code = run.finish(10)
        finally:
            run.kill()
    assert code in (130, -signal.SIGINT), run.stderr
    assert "Traceback" not in run.stderr


def test_tries_that_hang_are_bounded() -> None:
    """Each try against a trickling endpoint is given up after the timeout; past ``STUCK`` of them
    still hanging, a try fails without connecting: threads and sockets stay bounded."""
    with Trickle(every=0.3) as slow:  # a byte sooner than the read timeout: only the deadline ends a try
        [target] = targets([slow.url], timeout=0.5)
        note = Note("t", "b")
        assert [target.send(note) for _ in range(STUCK + 3)] == [False] * (STUCK + 3)
        assert slow.connections == STUCK
