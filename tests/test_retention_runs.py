"""Retention in real ``detector run`` processes (the model, real segments): a cap too small for the
room retention keeps still keeps each source's newest segment and says what it needs (issue 29), and
two runs recording into one folder, each deleting and rewriting ``segments.jsonl``, leave every
segment on disk listed (issue 30)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from detector_process import DetectorProcess

from detector.eventstore.queries import ReviewQuery, StoreReader
from detector.sinks.jsonl import read_jsonl

pytestmark = pytest.mark.model

CLIP = "car-detection.mp4"  # 768x432, 12.5 fps: about 100 kB per 1 s annotated segment


def record(
    videos_dir: Path, model: Path, folder: Path, rec: Path, sources: int, *extra: str
) -> DetectorProcess:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        "detector",
        "run",
        *[str(videos_dir / CLIP)] * sources,
        "--model",
        str(model),
        "--record",
        str(rec),
    ]
    cmd += ["--record-segment", "1", "--max-frames", "60", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return DetectorProcess(cmd, folder, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})


def on_disk(rec: Path) -> set[str]:
    """The segments in ``rec`` (not a faststart rewrite's temporary ``.NAME.PID.N.tmp.mp4`` a kill left)."""
    return {p.relative_to(rec).as_posix() for p in rec.rglob("*.mp4") if not p.name.startswith(".")}


def test_a_small_cap_keeps_each_sources_newest_segment(
    videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    """Two sources, 1 s segments of about 100 kB, a 300 kB cap: the room for three segments of each
    (600 kB) is more than the cap. Before, every finished segment was deleted."""
    rec = tmp_path / "rec"
    run = record(videos_dir, model_path, tmp_path, rec, 2, "--retain-max-size", "300kB", "--report",
                 str(tmp_path / "report-{name}.json"))  # fmt: skip
    try:
        assert run.finish(180) == 0, run.stderr
    finally:
        run.kill()
    kept = on_disk(rec)
    sources = {p.split("/")[0] for p in kept}
    assert len(sources) == 2, f"a segment of each source is kept: {kept}\n{run.stderr}"
    assert {line["path"] for line in read_jsonl(rec / "segments.jsonl")} == kept, "each listed"
    assert "more than retain.max_size 300.0 kB" in run.stderr and "or more" in run.stderr
    assert "retention: deleted" in run.stderr, "the older ones went"
    report = json.loads(next(tmp_path.glob("report-*.json")).read_text())
    [figures] = report["retention"]["folders"].values()
    du = sum(p.lstat().st_blocks * 512 for p in rec.rglob("*"))
    assert figures["needs_bytes"] > 300_000 and figures["used_bytes"] == du > 0, figures


def test_two_runs_sharing_a_folder_list_every_segment(
    videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    """Each run deletes its older segments and rewrites ``segments.jsonl`` while the other appends.
    Before, the other run went on appending to the replaced file: its lines were lost. (Both start
    at once into a folder that does not exist yet: each one's check of it sees the other's.)"""
    rec = tmp_path / "rec"
    runs = [
        record(
            videos_dir,
            model_path,
            tmp_path / name,
            rec,
            1,
            "--retain-max-size",
            "400kB",
            "--max-frames",
            "150",
        )
        for name in ("a", "b")
    ]
    try:
        codes = [run.finish(240) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert codes == [0, 0], "\n".join(run.stderr for run in runs)
    assert all("retention: deleted" in run.stderr for run in runs), "both rewrote the index"
    listed = [line["path"] for line in read_jsonl(rec / "segments.jsonl")]
    assert sorted(listed) == sorted(on_disk(rec)), "every segment on disk listed, once"
    assert any(p.endswith("-2.mp4") for p in listed), "the second run's segments are among them"


DOORWAY = "one-by-one-person-detection.mp4"  # a person walks in within the first seconds


def test_a_killed_runs_last_segment_and_clip_are_listed_by_the_next(
    videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    """Issue 30: after ``kill -9`` and a restart the killed run's open segment stayed unlisted (or
    empty on disk) and its clip out of the store. The restart comes a minute later (the killed run's
    files are dated back: a file written in the last 30 s may be another run's open one)."""
    rec, clips = tmp_path / "rec", tmp_path / "clips"
    cmd = ["detector", "run", str(videos_dir / DOORWAY), "--model", str(model_path), "--track",
           "--clip-on", "person", "--clips", str(clips), "--record", str(rec), "--record-segment", "1",
           "--retain-days", "30"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env = {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"}
    (tmp_path / "killed").mkdir()
    killed = DetectorProcess(cmd, tmp_path / "killed", env)
    try:
        killed.wait_until("an item in the store with its clip's events", lambda: item_stored(clips), 180)
        killed.wait_until("two segments listed", lambda: len(listed(rec)) >= 2, 60)
        killed.proc.send_signal(signal.SIGKILL)
        killed.finish(30)
    finally:
        killed.kill()
    unlisted = on_disk(rec) - set(listed(rec))
    assert unlisted, "the open segment the kill left (empty, or fragments) is not listed"
    an_hour_ago = time.time() - 60
    for path in [*rec.rglob("*"), *clips.rglob("*")]:
        os.utime(path, (an_hour_ago, an_hour_ago), follow_symlinks=False)
    (tmp_path / "next").mkdir()
    restart = DetectorProcess([*cmd, "--max-frames", "3"], tmp_path / "next", env)
    try:
        assert restart.finish(120) == 0, restart.stderr
    finally:
        restart.kill()
    empty = [p for p in rec.rglob("*.mp4") if p.stat().st_size == 0]
    assert empty == [], "a segment reserved and never written is removed"
    assert set(listed(rec)) == on_disk(rec), "every segment on disk listed"
    db = clips / "events.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT path, review_id FROM media WHERE kind = 'clip'").fetchall()
    on_disk_clips = {p.name for p in clips.glob("*-clip-*.mp4")}
    assert {path for path, _ in rows} == on_disk_clips, "the killed run's clip is in the store"
    assert all(review for _, review in rows), "with its item"


def listed(rec: Path) -> list[str]:
    index = rec / "segments.jsonl"
    return [line["path"] for line in read_jsonl(index)] if index.exists() else []


def item_stored(clips: Path) -> bool:
    """An item's events are in the store, and in ``events.jsonl`` with their clip's name."""
    index = clips / "events.jsonl"
    lines = read_jsonl(index) if index.exists() else []
    try:
        with sqlite3.connect(f"{(clips / 'events.db').as_uri()}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT count(*) FROM events WHERE review_id IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return False
    return stored > 0 and any(line.get("clip") for line in lines)


def test_the_only_clip_of_a_camera_and_its_item_outlive_a_small_cap(
    videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    """Issue 29: an item's clip and snapshots over the cap were deleted the moment the item ended (at
    the run's end), and the item with them: the camera was gone from the history."""
    clips = tmp_path / "clips"
    cmd = ["detector", "run", str(videos_dir / DOORWAY), "--model", str(model_path), "--track",
           "--clip-on", "person", "--clips", str(clips), "--retain-max-size", "10kB",
           "--max-frames", "120"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = DetectorProcess(cmd, tmp_path, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})
    try:
        assert run.finish(180) == 0, run.stderr
    finally:
        run.kill()
    kept = sorted(p.name for p in clips.glob("*-clip-*.mp4"))
    assert len(kept) >= 1, run.stderr
    items, _ = StoreReader(clips / "events.db").reviews(ReviewQuery())
    assert items, "the item is still in the store"
    newest = StoreReader(clips / "events.db").review(items[0]["id"])
    assert newest is not None and [m["name"] for m in newest["media"] if m["kind"] == "clip"] == [kept[-1]]
    assert "more than retain.max_size 10.0 kB" in run.stderr
