"""Event clips from the encoded-packet ring: synthetic frames through the real video sink and recorder,
driven by the real reviewer as a lane drives them (one review item is one clip), every clip decoded
back with PyAV (no model). What a user would check: how long each clip is, where it starts, that
activity within ``review.gap`` shares one clip and an object in view keeps it going, that clips are
the --output's own packets (the video is encoded once), and that every clip plays."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from detector import reviews as reviews_mod
from detector.catalog import MediaFile
from detector.events import EventRecord, LineCross, ZoneExit, stamp
from detector.media.encoder import H264Encoder
from detector.reviews import Reviewer
from detector.settings.model import EncoderSettings
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder, EventsFile
from detector.storage.clips import ClipRecorder
from detector.types import Detections, Frame, FrameResult

FPS = 10
SIZE = (320, 240)
WALL0 = 1_790_000_000.0  # the Unix time of frame 0


def image(i: int) -> np.ndarray:
    """A frame that shows its own index (decoded frames can be identified) and a moving square."""
    img = np.full((SIZE[1], SIZE[0], 3), 50, np.uint8)
    x = (i * 7) % (SIZE[0] - 40)
    img[100:140, x : x + 40] = (0, 0, 255)
    cv2.putText(img, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    return img


def result(i: int, *, live: bool = False, seen: bool = True) -> FrameResult:
    """Frame ``i``; ``seen``: track 7 (the person) is in it."""
    box = Detections(
        xyxy=np.array([[(i * 7) % (SIZE[0] - 40), 100, (i * 7) % (SIZE[0] - 40) + 40, 140]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0]),
        tracker_id=np.array([7]),
        names={0: "person"},
    )
    if not seen:
        box = Detections.empty({0: "person"})
    t = i / FPS
    frame = Frame(image=image(i), index=i, pts=t, capture_time=100.0 + t * (1.02 if live else 1.0))
    return FrameResult(frame, box, image(i), 20.0)


def crossing(i: int) -> EventRecord:
    return LineCross(
        line="door", track_id=7, class_name="person", direction="in", frame=i, pts=round(i / FPS, 3)
    )


def run(
    folder: Path,
    frames: int,
    events: dict[int, EventRecord],
    *,
    output: Path | None = None,
    before: float = 2.0,
    after: float = 1.5,
    live: bool = False,
    preset: str = "ultrafast",
    catalog: Any = None,
    gap: float = 2.0,
    seen: set[int] | None = None,
) -> tuple[VideoWriterSink, ClipRecorder, list[dict[str, Any]]]:
    """Frames 0..frames-1 through a video sink with a clip recorder and a reviewer, as a lane runs
    them; ``events`` by frame index, each finished as a lane does it (stamped, seen by the reviewer,
    then attached) and written to ``events.jsonl``. ``seen``: the frames the person is in (default:
    those of the events)."""
    clip_folder = ClipFolder(folder)
    recorder = ClipRecorder(clip_folder, before=before, after=after, source="cam", catalog=catalog, gap=gap)
    reviewer = Reviewer("cam", [recorder], gap=gap)
    index = EventsFile(clip_folder)
    sink = VideoWriterSink(
        output,
        fps=Fraction(FPS),
        live=live,
        encoder=EncoderSettings(preset=preset, threads=2),
        outputs=[recorder],
    )
    sent = []
    seen = set(events) if seen is None else seen
    for i in range(frames):
        frame = result(i, live=live, seen=i in seen)
        wall = WALL0 + i / FPS
        sink.write(frame)
        reviewer.frame(frame, wall)
        if i in events:
            record = stamp(events[i], "cam", wall)
            reviewer.event(record, wall)
            record = recorder.attach(record)
            index.event(record)
            sent.append(record.to_dict())
    reviewer.finish()
    sink.close()
    index.close()
    return sink, recorder, sent


def decoded_indices(path: Path) -> tuple[list[int], list[float]]:
    """The frame index drawn in each decoded frame (by matching against the source images), and times."""
    refs = {i: cv2.cvtColor(image(i), cv2.COLOR_BGR2GRAY)[40:70, 5:100].astype(int) for i in range(200)}
    indices, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            gray = cv2.cvtColor(f.to_ndarray(format="bgr24"), cv2.COLOR_BGR2GRAY)[40:70, 5:100].astype(int)
            candidates = [i for i in refs if np.abs(refs[i] - gray).mean() < 6]
            best = min(candidates, key=lambda i: np.abs(refs[i] - gray).mean())
            indices.append(best)
            times.append(float(f.time))
    return indices, times


def events_file(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def test_each_clip_spans_before_to_after_from_a_keyframe(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    _, recorder, _sent = run(clips, 120, {40: crossing(40), 95: crossing(95)})
    records = events_file(clips)
    assert [r["clip"] for r in records] == ["cam-clip-0001.mp4", "cam-clip-0002.mp4"]
    # Event at 4.0 s, 2 s before: the keyframe at 2.0 s (one a second); 1.5 s after: frame 55.
    first, times = decoded_indices(clips / records[0]["clip"])
    assert first == list(range(20, 56))
    assert times[0] == 0.0 and times[-1] == pytest.approx(3.5)
    # Event at 9.5 s: keyframe at 7.0 s (the last one at or before 7.5 s) to 11.0 s.
    second, _ = decoded_indices(clips / records[1]["clip"])
    assert second == list(range(70, 111))
    assert [r["clip_offset_s"] for r in records] == [pytest.approx(2.0), pytest.approx(2.5)]
    assert recorder.report()["clips"]["clips"] == 2


def test_activity_within_the_gap_is_one_item_and_one_clip(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    # 4.0 s and 7.0 s, 3 s apart, within the 3.5 s gap: one item from 4.0 to 7.0, one clip to 8.5 s.
    run(clips, 120, {40: crossing(40), 70: crossing(70)}, gap=3.5)
    records = events_file(clips)
    assert [r["clip"] for r in records] == ["cam-clip-0001.mp4"] * 2
    indices, _ = decoded_indices(clips / "cam-clip-0001.mp4")
    assert indices == list(range(20, 86))
    assert [r["clip_offset_s"] for r in records] == [pytest.approx(2.0), pytest.approx(5.0)]
    assert sorted(p.name for p in clips.glob("*.mp4")) == ["cam-clip-0001.mp4"]


def test_an_item_lasts_while_its_objects_are_in_view(tmp_path: Path) -> None:
    """The person crosses at 4.0 s and stays in view until 8.0 s: one item to 8.0 s, its clip to 9.5 s
    (where an event's own window would have ended at 5.5 s)."""
    clips = tmp_path / "clips"
    run(clips, 150, {40: crossing(40)}, seen=set(range(40, 81)))
    indices, _ = decoded_indices(clips / "cam-clip-0001.mp4")
    assert indices == list(range(20, 96))
    assert sorted(p.name for p in clips.glob("*.mp4")) == ["cam-clip-0001.mp4"]


def test_a_busy_scene_makes_clips_of_bounded_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reviews_mod, "MAX_ITEM_S", 6.0)
    clips = tmp_path / "clips"
    run(clips, 200, {i: crossing(i) for i in range(30, 180, 15)})  # an event every 1.5 s
    records = events_file(clips)
    names = sorted({r["clip"] for r in records})
    assert len(names) >= 3, "not one endless clip"
    for name in names:
        indices, times = decoded_indices(clips / name)
        # an item of at most 6 s (and a frame), 2 s before it (from a keyframe up to 1 s earlier), 1.5 s after
        assert times[-1] <= 6.1 + 3.0 + 1.5 and indices == list(range(indices[0], indices[0] + len(indices)))
    covered = {i for name in names for i in decoded_indices(clips / name)[0]}
    assert all(r["frame"] in covered for r in records), "every event is in a clip"


def test_clips_are_the_outputs_own_packets(tmp_path: Path) -> None:
    """The video is encoded once: a clip's packets are byte for byte those of --output at the same times."""
    out = tmp_path / "out.mp4"
    calls = []
    original = H264Encoder.encode

    def counting(self: H264Encoder, *args: Any) -> Any:
        calls.append(1)
        return original(self, *args)

    H264Encoder.encode = counting  # type: ignore[method-assign]
    try:
        run(tmp_path / "clips", 80, {40: crossing(40)}, output=out)
    finally:
        H264Encoder.encode = original  # type: ignore[method-assign]
    assert len(calls) == 80, "one encode per frame, with --output and --clips both on"

    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]

    whole, clip = packets(out), packets(tmp_path / "clips" / "cam-clip-0001.mp4")
    assert len(clip) == 36 and clip == whole[20:56]


def test_without_output_snapshots_and_records(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    sink, _, sent = run(clips, 60, {30: crossing(30)})
    assert sink.path is None and not list(tmp_path.glob("*.mp4"))
    [record] = events_file(clips)
    assert record["event"] == "line_cross" and record["source"] == "cam"
    assert record["snapshot"] == "cam-event-0001.jpg" and record["clip"] == "cam-clip-0001.mp4"
    assert sent == [record], "every sink (--json too) gets the one finished record"
    snap = cv2.imread(str(clips / record["snapshot"]))
    assert snap.shape == (SIZE[1], SIZE[0], 3)
    # The object of the event is outlined in yellow around its box (x 210..250, y 100..140 at frame 30).
    ring = snap[90:150, 195:265].reshape(-1, 3).astype(int)
    yellow = (np.abs(ring - (0, 255, 255)).max(axis=1) < 60).sum()
    assert yellow > 100, "the snapshot highlights the object of the event"


def test_events_that_make_no_clip_are_left_out(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    exit_ = ZoneExit(zone="z", dwell_s=1.0, track_id=7, frame=30, pts=3.0)
    run(clips, 50, {30: exit_})
    assert not clips.exists(), "no clip events: no folder"


def test_clip_cut_off_by_the_end_is_closed_and_plays(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    run(clips, 50, {45: crossing(45)}, after=3.0)
    indices, _ = decoded_indices(clips / "cam-clip-0001.mp4")
    assert indices == list(range(20, 50)), "from the keyframe at 2.0 s to the last frame of the run"
    with open(clips / "cam-clip-0001.mp4", "rb") as f:
        head = f.read(64)
    assert b"ftyp" in head and not list(clips.glob(".*tmp")), "finished as a normal MP4"


def test_ring_memory_stays_bounded(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    _, recorder, _ = run(clips, 200, {150: crossing(150)}, before=2.0, after=1.0)
    report = recorder.report()["clips"]
    per_second = report["preroll_bytes_per_s"]
    assert per_second and report["ring_peak_bytes"] <= per_second * (2.0 + 1.0 + 1.5) * 1.5, report
    assert len(recorder.ring) == 0, "the ring is released at the end"


def test_live_timestamps_and_b_frames(tmp_path: Path) -> None:
    """A live source (capture-clock times) with a preset that uses B-frames: clips still start clean."""
    clips = tmp_path / "clips"
    run(clips, 90, {50: crossing(50)}, live=True, preset="fast")
    indices, times = decoded_indices(clips / "cam-clip-0001.mp4")
    # Every frame from the keyframe at 3.0 s to 6.5 s, in order, none missing; a B-frame at the end may
    # bring the frame or two it refers to along.
    assert indices[:36] == list(range(30, 66)) and indices == list(range(30, 30 + len(indices)))
    assert len(indices) <= 36 + 3
    assert times[0] == 0.0 and all(b > a for a, b in itertools.pairwise(times))
    assert times[35] == pytest.approx(35 * 1.02 / FPS, abs=0.02), "live clips keep capture timing"


class ListCatalog:
    def __init__(self) -> None:
        self.files: list[MediaFile] = []

    def added(self, media: MediaFile) -> None:
        self.files.append(media)

    def removed(self, paths: Any) -> None:
        raise AssertionError("nothing is deleted here")


def test_finished_clips_and_snapshots_are_listed_with_their_events(tmp_path: Path) -> None:
    """What a catalog (segments list, event store) hears: each snapshot, then each clip once finished,
    with its events' ids, its size and its media times."""
    clips, catalog = tmp_path / "clips", ListCatalog()
    _, _, sent = run(clips, 120, {40: crossing(40), 50: crossing(50), 95: crossing(95)}, catalog=catalog)
    kinds = [(m.kind, m.path.name) for m in catalog.files]
    # Clips are finished on the recorder's own thread: each is listed after its events' snapshots.
    snapshots = ["cam-event-0001.jpg", "cam-event-0002.jpg", "cam-event-0003.jpg"]
    assert [n for k, n in kinds if k == "snapshot"] == snapshots
    assert [n for k, n in kinds if k == "clip"] == ["cam-clip-0001.mp4", "cam-clip-0002.mp4"]
    assert kinds.index(("clip", "cam-clip-0001.mp4")) > kinds.index(("snapshot", "cam-event-0002.jpg"))
    assert kinds.index(("clip", "cam-clip-0002.mp4")) > kinds.index(("snapshot", "cam-event-0003.jpg"))
    first, second = (m for m in catalog.files if m.kind == "clip")
    assert first.events == (sent[0]["id"], sent[1]["id"]) and first.source == "cam"
    assert isinstance(first.extra["review"], str) and first.extra["review"] != second.extra["review"]
    assert first.bytes == (clips / "cam-clip-0001.mp4").stat().st_size > 0
    assert first.media_start == pytest.approx(2.0) and first.media_end == pytest.approx(6.5)
    assert first.start is not None and first.end - first.start == pytest.approx(4.5)
