"""``--record`` on a real live stream (ffmpeg serving the doorway footage in real time on loopback),
through the console script, onto real small disks (tmpfs mounts: CI runs as root): retention keeps a
folder under its cap, a disk that fills loses nothing already written while detection and the JSONL
on another disk go on (``storage_full``, ``/healthz`` 503, ``/metrics``, exit 4), recording resumes
in a new segment once space comes back, and kill -9 leaves every segment playable."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest
from detector_process import DetectorProcess, launched
from streaming import StreamServer
from web_client import get

from detector.sinks.jsonl import read_jsonl

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"  # 768x432, 10 fps: about 270 kB per 2 s annotated segment


class RecordRun(DetectorProcess):
    """``detector run URL --record REC --record-segment 2 --json out.jsonl --serve 127.0.0.1:0``."""

    def __init__(self, url: str, model: Path, folder: Path, rec: Path, *extra: str) -> None:
        cmd = ["detector", "run", url, "--model", str(model), "--record", str(rec), "--record-segment", "2"]
        cmd += ["--reconnect-max", "0", "--json", str(folder / "out.jsonl"), "--serve", "127.0.0.1:0", *extra]
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        super().__init__(cmd, folder, {**env, "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"})
        self.rec = rec
        self._web: str | None = None

    def web(self) -> str:
        if self._web is None:
            found: list[str] = []

            def logged() -> bool:
                found[:] = re.findall(r"web view on (http://127\.0\.0\.1:\d+/)", self.stderr)
                return bool(found)

            self.wait_until("the web view's address", logged)
            self._web = found[0]
        return self._web

    def health(self) -> tuple[int, dict[str, Any]]:
        reply = get(self.web(), "/healthz", timeout=5)
        return reply.status, reply.json()

    def metric(self, name: str) -> float:
        text = get(self.web(), "/metrics", timeout=5).body.decode()
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
        return sum(values)

    def listed(self) -> list[dict[str, Any]]:
        path = self.rec / "segments.jsonl"
        return read_jsonl(path) if path.exists() else []

    def logged(self, prefix: str) -> list[str]:
        return [line.removeprefix(prefix) for line in self.stderr.splitlines() if line.startswith(prefix)]


@pytest.fixture
def launch(model_path: Path, tmp_path: Path) -> Iterator[Callable[..., RecordRun]]:
    def make(url: str, rec: Path, *extra: str) -> RecordRun:
        return RecordRun(url, model_path, tmp_path, rec, *extra)

    yield from launched(make)


def frames(path: Path) -> int:
    """Frames that decode; a packet cut short (a kill mid-write) is skipped, as a player does."""
    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            if packet.size and not packet.is_corrupt:
                n += len(stream.decode(packet))
        n += len(stream.decode(None))  # the frames a decoder holds back (B-frames)
    return n


def top_boxes(path: Path) -> set[bytes]:
    data, pos, kinds = path.read_bytes(), 0, set()
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kinds.add(data[pos + 4 : pos + 8])
        pos += size if size >= 8 else len(data)
    return kinds


def disk_used(folder: Path) -> int:
    st = os.statvfs(folder)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def on_disk(rec: Path) -> list[Path]:
    return sorted(rec.glob("*/*/*.mp4"))


def test_retention_keeps_a_live_recording_under_its_cap(
    launch: Callable[..., RecordRun], small_disk: Callable[[str], Path], videos_dir: Path
) -> None:
    """2 s segments, ``--retain-max-size 1500kB`` on an 8 MB disk, 24 s of stream (about 3 MB): the disk
    never holds more than the cap, the oldest segments are the ones deleted (each logged, counted in
    ``/metrics`` and the summary), and every segment left decodes and is listed."""
    disk = small_disk("8m")
    cap = 1_500_000
    with StreamServer(videos_dir / CLIP, duration=24, lifetime=90) as server:
        run = launch(server.url, disk / "rec", "--retain-max-size", "1500kB")
        peak, deleted_seen = 0, 0.0
        run.web()
        while run.proc.poll() is None:
            peak = max(peak, disk_used(disk))
            if not deleted_seen and run.logged("retention: deleted "):
                deleted_seen = run.metric("detector_retention_deleted_files_total")
            time.sleep(0.05)
        assert run.finish(60) == 0, run.stderr
    made = [m.split(":")[0] for m in run.logged("segment ")]
    deleted = [d.split(" (")[0] for d in run.logged("retention: deleted ")]
    left = [str(p) for p in on_disk(disk / "rec")]
    assert len(made) >= 10 and len(deleted) >= 5, run.stderr
    assert peak <= cap, f"the disk held {peak} bytes, over the {cap} cap"
    assert deleted == made[: len(deleted)], "the oldest go first"
    assert left == made[len(deleted) :] and left, "and only they"
    listed = run.listed()
    assert [str(disk / "rec" / line["path"]) for line in listed] == left
    for line in listed:
        assert frames(disk / "rec" / line["path"]) == line["frames"], f"{line} decodes whole"
    assert all(line["frames"] >= 15 for line in listed[:-1]), "2 s at 10 fps (the last one: to the end)"
    assert deleted_seen >= 1, "/metrics counts the deletions"
    assert f"retention  deleted {len(deleted)} files" in run.stderr


def test_a_disk_that_fills_mid_run_loses_nothing_written(
    launch: Callable[..., RecordRun], small_disk: Callable[[str], Path], videos_dir: Path, tmp_path: Path
) -> None:
    """The recording's 1 MB disk fills after a few segments (no retention): ``/healthz`` answers 503
    with the reason, ``/metrics`` shows it, a ``storage_full`` event reaches the JSONL on another
    disk, which goes on with every frame; the run ends with exit 4, and every segment decodes."""
    disk = small_disk("1m")
    with StreamServer(videos_dir / CLIP, duration=16, lifetime=90) as server:
        run = launch(server.url, disk / "rec")
        run.wait_until("/healthz 503", lambda: run.health()[0] == 503, timeout=40)
        _, body = run.health()
        assert body["status"] == "storage_full", body
        assert str(disk / "rec") in body["reason"] and body["reason"].endswith("No space left on device")
        assert (
            run.metric("detector_storage_full{") == 1 and run.metric("detector_storage_failures_total") >= 1
        )
        [event] = [r for r in run.records() if r.get("event") == "storage_full"]
        assert event["output"].startswith(str(disk / "rec")) and event["error"] == "No space left on device"
        run.wait_until(
            "3 s of frames after it",
            lambda: any(r.get("frame", 0) > event["frame"] + 30 for r in run.frames()),
        )
        code = run.finish(60)
    assert code == 4, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"detector: error: writing .* failed: No space left on device; the video up to here is kept", last
    )
    assert "Traceback" not in run.stderr
    processed = [r["frame"] for r in run.frames()]
    assert len(processed) >= 130 and max(processed) > event["frame"] + 30, "detection went on"
    files = on_disk(disk / "rec")
    assert len(files) >= 2
    for path in files:
        assert frames(path) >= 1, f"{path} is kept up to its last whole fragment"
    for line in run.listed():
        if "incomplete" not in line:
            assert frames(disk / "rec" / line["path"]) == line["frames"], line


def test_recording_resumes_in_a_new_segment_once_space_comes_back(
    launch: Callable[..., RecordRun], small_disk: Callable[[str], Path], videos_dir: Path
) -> None:
    """A 1.5 MB disk, 0.9 MB of it taken by someone else's file: the recording fills the rest and
    pauses (503); the file is deleted; the recording goes on in a new segment and ``/healthz`` is 200
    again. The segment the disk cut short, and every one after it, decodes."""
    disk = small_disk("1500k")
    other = disk / "theirs.bin"
    other.write_bytes(b"\0" * 900_000)
    with StreamServer(videos_dir / CLIP, duration=20, lifetime=90) as server:
        run = launch(server.url, disk / "rec")
        run.wait_until("/healthz 503", lambda: run.health()[0] == 503, timeout=40)
        full_at = time.time()
        other.unlink()
        run.wait_until("/healthz 200 again", lambda: run.health()[0] == 200, timeout=20)
        code = run.finish(60)
    assert code == 4, "an output was cut short"
    assert "recording resumed (the disk has room again)" in run.stderr
    [event] = [r for r in run.records() if r.get("event") == "storage_full"][:1]
    cut = Path(event["output"])
    listed = run.listed()
    assert [line["path"] for line in listed] == [
        p.relative_to(disk / "rec").as_posix() for p in on_disk(disk / "rec")
    ], "every segment on disk is listed, the lines the full disk kept out too"
    if cut.exists():  # unless it was cut before its first frame (then removed, and said)
        [line] = [x for x in listed if disk / "rec" / x["path"] == cut]
        assert line["incomplete"] == "No space left on device" and frames(cut) >= 1
    else:
        assert f"{cut} was cut short before its first frame; removed" in run.stderr
    after = [x for x in listed if datetime.fromisoformat(x["start"]).timestamp() > full_at]
    assert after and "incomplete" not in after[0], "recording went on in a new, whole segment"
    for line in listed:
        assert frames(disk / "rec" / line["path"]) >= 1, line


@pytest.mark.parametrize("mode", ["annotated", "raw"])
def test_kill_9_leaves_every_segment_playable(
    launch: Callable[..., RecordRun], videos_dir: Path, tmp_path: Path, mode: str
) -> None:
    """Killed with SIGKILL while recording: each closed segment is a faststart MP4 that decodes whole,
    and the one being written is a fragmented MP4 that decodes up to its last fragment."""
    rec = tmp_path / "rec"
    with StreamServer(videos_dir / CLIP, duration=40, lifetime=90) as server:
        run = launch(server.url, rec, "--record-mode", mode)
        run.wait_until("two closed segments", lambda: len(run.listed()) >= 2, timeout=40)
        time.sleep(1.5)  # into the next segment: a fragment written
        run.proc.send_signal(signal.SIGKILL)
        assert run.finish(30) == -signal.SIGKILL
    listed = {rec / line["path"]: line for line in run.listed()}
    files = on_disk(rec)
    [open_one] = [p for p in files if p not in listed]
    assert open_one == files[-1], "the newest one was being written"
    for path, line in listed.items():
        assert b"moof" not in top_boxes(path) and frames(path) == line["frames"], path
    assert b"moof" in top_boxes(open_one), "fragmented while written"
    assert frames(open_one) >= 5, "all but the last fragment"
