"""Clips from the real console script: cut off by Ctrl-C or SIGTERM (closed and playable), and from a
real live stream (ffmpeg serving the doorway footage in real time on loopback)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import av
import pytest
from detector_process import DetectorProcess
from streaming import StreamServer

from detector.eventstore.queries import StoreReader

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"  # 10 fps; person 1 appears at 6.4 s


def headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"}


def start(source: str, model: Path, folder: Path, *extra: str) -> DetectorProcess:
    cmd = ["detector", "run", source, "--model", str(model), "--track", "--clip-on", "person"]
    cmd += ["--clips", str(folder / "clips"), "--json", str(folder / "out.jsonl"), *extra]
    return DetectorProcess(cmd, folder, headless_env())


def logged(folder: Path) -> list[dict[str, Any]]:
    path = folder / "clips" / "events.jsonl"
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def decoded(path: Path) -> tuple[int, float]:
    """Frames and the time (s) of the last one."""
    with av.open(str(path)) as c:
        times = [float(f.time) for f in c.decode(c.streams.video[0])]
    return len(times), times[-1]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_clip_cut_off_by_a_signal_is_closed_and_plays(
    model_path: Path, videos_dir: Path, tmp_path: Path, sig: int, code: int
) -> None:
    run = start(str(videos_dir / CLIP), model_path, tmp_path, "--clip-before", "3", "--clip-after", "60")
    try:
        run.wait_until("an event", lambda: logged(tmp_path), timeout=120)
        run.wait_until("frame 100", lambda: any(r.get("frame", 0) >= 100 for r in run.frames()), timeout=120)
        run.proc.send_signal(sig)
        assert run.finish(60) == code, run.stderr
    finally:
        run.kill()
    assert "Traceback" not in run.stderr
    assert f"clips      1 clips, 1 events, in {tmp_path / 'clips'}" in run.stderr, "the summary says it"
    [event] = logged(tmp_path)
    last = max(r["frame"] for r in run.frames())
    frames, end = decoded(tmp_path / "clips" / event["clip"])
    start_frame = round((event["pts"] - event["clip_offset_s"]) * 10)
    assert start_frame == 30, "3 s before the event at 6.4 s, from the keyframe at 3.0 s"
    assert frames == last - start_frame + 1, "every frame up to the last one processed"
    assert end == pytest.approx((last - start_frame) / 10, abs=0.01)
    assert not list((tmp_path / "clips").glob(".*tmp")), "finished, not left as a temporary file"


def test_clips_from_a_live_stream(model_path: Path, videos_dir: Path, tmp_path: Path) -> None:
    """The first person's review item (from their arrival at 6.4 s to 2 s after they leave, ~20 s) is
    one clip, finished while the stream goes on, from 2 s before the item to 2 s after it."""
    config = tmp_path / "gap.yaml"
    config.write_text("review: {gap: 2}\n")
    db = tmp_path / "clips" / "events.db"

    def clip_listed() -> bool:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                return bool(con.execute("SELECT 1 FROM media WHERE kind = 'clip'").fetchall())
        except sqlite3.Error:
            return False

    with StreamServer(videos_dir / CLIP, duration=27.0, lifetime=80.0) as server:
        run = start(
            server.url, model_path, tmp_path, "--clip-before", "2", "--clip-after", "2", "-c", str(config)
        )
        try:
            run.wait_until("an event", lambda: logged(tmp_path), timeout=40)
            event = logged(tmp_path)[0]
            run.wait_until("the first clip to be finished", clip_listed, timeout=60)
            clip = tmp_path / "clips" / event["clip"]
            assert clip.is_file(), "a finished clip is written while the stream goes on"
            run.proc.send_signal(signal.SIGINT)
            assert run.finish(60) == 130, run.stderr
        finally:
            run.kill()
    frames, end = decoded(clip)
    assert event["clip"] == f"127.0.0.1_{server.port}-clip-0001.mp4", "named after the source's name"
    # 2 s of pre-roll from a keyframe up to 1 s earlier, or all there was (ffmpeg sends a burst at first,
    # of which a live source keeps the newest frame, so stream time runs ahead of the file's).
    assert min(2.0, event["pts"]) - 0.05 <= event["clip_offset_s"] <= 3.2
    reader = StoreReader(db)
    item = reader.review(str((reader.event(event["id"]) or {})["review_id"]))
    assert item is not None and item["clip"]["name"] == event["clip"] and not item["in_progress"]
    assert item["media_end"] - item["media_start"] > 5, "the item lasts while the person is in view"
    assert end == pytest.approx(item["media_end"] - item["clip"]["media_start"] + 2.0, abs=0.3), (
        "2 s after it"
    )
    assert frames >= 0.8 * 10 * end, "the stream's frames, at its real-time rate"
