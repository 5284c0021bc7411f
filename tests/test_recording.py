"""``--record DIR`` on files, through ``detector.cli.main`` with the real model: segments named from the
media time that start on keyframes and decode, the annotated video encoded once for ``--output``, the
clips and the recording, raw mode copying the source's own packets, ``segments.jsonl``, and retention
on a real small disk (a tmpfs) deleting only what is ours: old segments, and old clips with their
snapshots and ``events.jsonl`` lines."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from user_errors import Capture

from detector.sinks.jsonl import read_jsonl

pytestmark = pytest.mark.model

DAY = 86400.0


def packets(path: Path) -> list[str]:
    """The video packets' payloads (hashes), in decode order."""
    with av.open(str(path)) as c:
        return [hashlib.md5(bytes(p)).hexdigest() for p in c.demux(c.streams.video[0]) if p.size]


def top_boxes(path: Path) -> list[bytes]:
    data, pos, kinds = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += size if size >= 8 else len(data)
    return kinds


def decoded(path: Path) -> list[tuple[float, bool]]:
    """(time, keyframe) of every frame."""
    with av.open(str(path)) as c:
        return [(float(f.time), f.key_frame) for f in c.decode(c.streams.video[0])]


def segments(root: Path, source: str) -> list[Path]:
    """This run's segments of ``source`` (in today's folder)."""
    return sorted(p for p in (root / source).glob("*/*.mp4") if p.parent.name in days())


def days() -> set[str]:
    return {date.today().isoformat(), date.fromtimestamp(time.time() - 3600).isoformat()}


def test_a_file_is_recorded_in_segments_from_the_one_encode(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path
) -> None:
    """8 s at 30 fps, 2 s segments: four faststart MP4s named by media time, each starting on a keyframe
    and decoding to 60 frames; together they are the very packets of ``--output``, as is each clip
    (encoded once); ``segments.jsonl`` lists each with its source, times, size and path."""
    rec, out, clips = tmp_path / "rec", tmp_path / "out.mp4", tmp_path / "clips"
    code, lines, _ = cli.run("run", sample_clip, "--model", model_path, "--record", rec,
                             "--record-segment", "2", "-o", out, "--clips", clips, "--track",
                             "--clip-on", "person")  # fmt: skip
    assert code == 0, lines
    files = segments(rec, "sample")
    assert [f.name for f in files] == ["00.00.00.mp4", "00.00.02.mp4", "00.00.04.mp4", "00.00.06.mp4"]
    assert {f.parent.name for f in files} <= days(), "under the day the run started"
    for f in files:
        frames = decoded(f)
        assert len(frames) == 60 and frames[0] == (0.0, True), f
        assert top_boxes(f).index(b"moov") < top_boxes(f).index(b"mdat") and b"moof" not in top_boxes(f)
    whole = packets(out)
    assert [p for f in files for p in packets(f)] == whole, "the segments hold the packets of --output"
    made = sorted(clips.glob("*.mp4"))
    assert made, "the run made clips"
    for clip in made:
        own = packets(clip)
        start = whole.index(own[0])
        assert whole[start : start + len(own)] == own, f"{clip.name} is cut from the same packets"
    listed = read_jsonl(rec / "segments.jsonl")
    assert [line["path"] for line in listed] == [f.relative_to(rec).as_posix() for f in files]
    for line, f in zip(listed, files, strict=True):
        assert line["source"] == "sample" and line["mode"] == "annotated" and line["frames"] == 60
        assert line["bytes"] == f.stat().st_size and line["start"] <= line["end"]
    assert [line["media_start"] for line in listed] == [0.0, 2.0, 4.0, 6.0]
    assert (
        f"recording  4 segments ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB, annotated) in {rec}"
        in lines
    )


def test_raw_mode_copies_the_sources_own_packets(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path
) -> None:
    """No decode, no encode: the segments hold the source file's packets byte for byte, split at its
    keyframes (every 2 s), while detection runs on the decoded frames as ever."""
    rec, js = tmp_path / "rec", tmp_path / "out.jsonl"
    code, lines, _ = cli.run("run", sample_clip, "--model", model_path, "--record", rec,
                             "--record-mode", "raw", "--record-segment", "2", "--json", js)  # fmt: skip
    assert code == 0, lines
    files = segments(rec, "sample")
    assert len(files) == 4
    assert [p for f in files for p in packets(f)] == packets(sample_clip), "the source's packets, unaltered"
    for f in files:
        frames = decoded(f)
        assert len(frames) == 60 and frames[0] == (0.0, True)
    assert [line["mode"] for line in read_jsonl(rec / "segments.jsonl")] == ["raw"] * 4
    detected = [r for r in read_jsonl(js) if "event" not in r]
    assert len(detected) == 240 and sum(len(r["detections"]) for r in detected) > 100


def test_raw_mode_needs_a_source_with_packets(
    cli: Capture, videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    images = tmp_path / "frames"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.jpg"), np.full((64, 64, 3), 40 * i, np.uint8))
    rec = tmp_path / "rec"
    assert cli.error("run", images, "--model", model_path, "--record", rec, "--record-mode", "raw") == (
        "--record-mode raw copies a source's own packets, and frames is a folder of images, which has "
        "none; use --record-mode annotated"
    )
    gif = videos_dir / "person-bicycle-car-detection.gif"
    assert cli.error("run", gif, "--model", model_path, "--record", rec, "--record-mode", "raw") == (
        "--record-mode raw: person-bicycle-car-detection is gif video, which cannot be copied into MP4 as "
        "it is (av1, h264, hevc, mpeg4, vp9 can); use --record-mode annotated"
    )
    assert not rec.exists(), "a run that does not start makes no folder"


def test_a_recording_folder_that_cannot_be_used(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "rec"
    taken.write_text("a file")
    assert cli.error("run", sample_clip, "--model", model_path, "--record", taken) == (
        f"recording folder {taken} is a file; give a folder"
    )
    both = tmp_path / "media"
    assert cli.error("run", sample_clip, "--model", model_path, "--record", both, "--clips", both) == (
        f"--record and --clips both use {both}; give each its own folder"
    )


def put(path: Path, data: bytes, days_old: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    t = time.time() - days_old * DAY
    os.utime(path, (t, t))
    return path


def test_retention_on_a_small_disk_deletes_old_segments_and_keeps_foreign_files(
    cli: Capture, small_disk: Callable[[str], Path], sample_clip: Path, model_path: Path
) -> None:
    """A 6 MB tmpfs holding last week's segments (ours, listed in segments.jsonl) and files that are not
    ours: ``--retain-days 1`` deletes the old segments and their lines, logging each, and nothing else."""
    rec = small_disk("6m") / "rec"
    mp4 = b"\0\0\0\x20ftypisom".ljust(100_000, b"\0")  # starts as an MP4: retention deletes no other
    old = [put(rec / "sample" / "2026-01-01" / f"10.0{i}.00.mp4", mp4, 7 - i) for i in range(3)]
    with open(rec / "segments.jsonl", "w") as f:
        for p in old:
            line = {"source": "sample", "path": p.relative_to(rec).as_posix(), "bytes": 100_000}
            f.write(json.dumps(line) + "\n")
    foreign = [
        put(rec / "notes.txt", b"mine", 30),
        put(rec / "sample" / "2026-01-01" / "holiday.mp4", b"mine", 30),
        put(rec / "sample" / "keep" / "10.00.00.mp4", b"mine", 30),
        put(rec / "10.00.00.mp4", b"mine", 30),
    ]
    code, lines, _ = cli.run("run", sample_clip, "--model", model_path, "--record", rec,
                             "--record-segment", "2", "--retain-days", "1")  # fmt: skip
    assert code == 0, lines
    assert not any(p.exists() for p in old)
    assert all(p.read_bytes() == b"mine" for p in foreign), "files not in our naming stay"
    new = segments(rec, "sample")
    assert len(new) == 4 and all(len(decoded(f)) == 60 for f in new)
    assert [line["path"] for line in read_jsonl(rec / "segments.jsonl")] == [
        f.relative_to(rec).as_posix() for f in new
    ], "the deleted segments' lines are gone, the new ones listed"
    for p in old:
        assert f"retention: deleted {p} (100.0 kB; older than 1 days)" in lines
    assert any(line.startswith(f"retention of {rec} (recordings): 3 segments, 300.0 kB;") for line in lines)
    assert "retention  deleted 3 files (300.0 kB)" in lines


def test_old_clips_go_with_their_snapshots_and_index_lines(
    cli: Capture, small_disk: Callable[[str], Path], sample_clip: Path, model_path: Path
) -> None:
    """A first run's clips, made old, are deleted by a second run's retention with their snapshots and
    their events.jsonl lines; the second run's clips and lines, and a foreign file, stay."""
    clips = small_disk("8m") / "clips"
    flags = ("--model", model_path, "--clips", clips, "--track", "--clip-on", "person", "--max-frames", "90")
    assert cli.run("run", sample_clip, *flags)[0] == 0
    first = sorted(p for p in clips.iterdir() if not p.name.startswith("events.db"))  # the store stays
    first_lines = read_jsonl(clips / "events.jsonl")
    assert any(p.suffix == ".mp4" for p in first) and any(p.suffix == ".jpg" for p in first)
    for p in first:
        if p.name != "events.jsonl":
            put(p, p.read_bytes(), 3)
    foreign = put(clips / "sample-clip-best.mp4", b"mine", 30)
    code, lines, _ = cli.run("run", sample_clip, *flags, "--retain-days", "1")
    assert code == 0, lines
    assert not any(p.exists() for p in first if p.name != "events.jsonl")
    assert foreign.exists()
    kept = read_jsonl(clips / "events.jsonl")
    assert kept and not {line["id"] for line in kept} & {line["id"] for line in first_lines}
    for line in kept:
        assert (clips / line["clip"]).exists() and (clips / line["snapshot"]).exists()
