"""CSV and MOT sinks (unit and through the pipeline on a real clip) and the run report (runtime ~2 s)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeDetector, write_clip

from detector.errors import UserError
from detector.events import LineCross
from detector.pipeline.engine import Pipeline
from detector.report import build_report, format_summary, write_report
from detector.settings import LineSpec, ZoneSpec
from detector.sinks.paths import check_report_path
from detector.sinks.tables import CSV_HEADER, CsvSink, MotSink
from detector.sources import SourceInfo, open_source
from detector.stages.lines import LineCounter
from detector.stages.overlay import OverlayStage
from detector.stages.track import TrackBook, TrackTally
from detector.stages.zones import ZoneCounter
from detector.stats import RunStats
from detector.types import Detections, Frame, FrameResult

NAMES = {0: "person", 2: "car"}


def result(index: int, dets: Detections, pts: float | None = None) -> FrameResult:
    img = np.zeros((48, 64, 3), np.uint8)
    frame = Frame(img, index, index / 10 if pts is None else pts, 0.0)
    return FrameResult(frame=frame, detections=dets, annotated=img, latency_ms=5.0)


def two_dets(tracked: bool = True) -> Detections:
    return Detections(
        xyxy=np.array([[10.04, 20.0, 30.5, 40.26], [1, 2, 3, 4]], np.float32),
        confidence=np.array([0.91234, 0.5], np.float32),
        class_id=np.array([0, 2]),
        tracker_id=np.array([7, 8]) if tracked else None,
        names=NAMES,
    )


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_header_one_row_per_detection_flushed_per_frame(tmp_path: Path):
    path = tmp_path / "dets.csv"
    sink = CsvSink(path)
    sink.write(result(0, two_dets()))
    assert len(read_rows(path)) == 3, "rows are on disk before close"
    sink.write(result(1, Detections.empty(NAMES)))
    sink.write(result(2, two_dets(tracked=False), pts=0.123456789))
    sink.event(LineCross(line="door", direction="in", frame=2, pts=0.2))  # ignored
    sink.close()
    sink.close()  # idempotent
    rows = read_rows(path)
    assert tuple(rows[0]) == CSV_HEADER
    assert ",".join(rows[0]) == "frame,pts,track_id,class_id,class_name,confidence,x1,y1,x2,y2"
    assert rows[1:] == [
        ["0", "0.000000", "7", "0", "person", "0.9123", "10.0", "20.0", "30.5", "40.3"],
        ["0", "0.000000", "8", "2", "car", "0.5000", "1.0", "2.0", "3.0", "4.0"],
        ["2", "0.123457", "", "0", "person", "0.9123", "10.0", "20.0", "30.5", "40.3"],
        ["2", "0.123457", "", "2", "car", "0.5000", "1.0", "2.0", "3.0", "4.0"],
    ]
    assert sink.rows_written == 4


def test_mot_rows_are_one_based_with_width_and_height(tmp_path: Path):
    path = tmp_path / "mot.txt"
    sink = MotSink(path)
    sink.write(result(0, two_dets()))
    sink.write(result(4, two_dets(tracked=False)))
    sink.close()
    rows = [[float(v) for v in r] for r in read_rows(path)]
    assert all(len(r) == 10 for r in rows) and len(rows) == 4, "no header, 10 columns"
    frame, tid, x, y, w, h, conf, *rest = rows[0]
    assert (frame, tid, rest) == (1, 7, [-1, -1, -1]), "frame = index + 1"
    assert (x, y, w, h, conf) == pytest.approx((10.04, 20.0, 20.46, 20.26, 0.9123), abs=0.006)
    assert [r[0] for r in rows] == [1, 1, 5, 5] and [r[1] for r in rows] == [7, 8, -1, -1]
    assert rows[3][2:6] == [1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("sink_cls", [CsvSink, MotSink])
def test_table_output_path_checked_up_front(tmp_path: Path, sink_cls: type[CsvSink]):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match=r"folder .* is not a folder"):
        sink_cls(tmp_path / "a-file" / "out.csv")
    deep = sink_cls(tmp_path / "missing" / "deeper" / "out.csv")
    assert not (tmp_path / "missing").exists(), "nothing is made before the first frame"
    deep.write(result(0, two_dets()))
    deep.close()
    assert (tmp_path / "missing" / "deeper" / "out.csv").is_file(), "missing folders are made"
    existing = tmp_path / "out.csv"
    existing.write_text("old\n")
    with pytest.raises(UserError, match="exists; pass --overwrite"):
        sink_cls(existing)
    assert existing.read_text() == "old\n", "a refused file is left alone"
    sink_cls(existing, overwrite=True).close()
    assert existing.read_text() == "old\n", "a sink that got no frame never opened the old file"
    sink = sink_cls(existing, overwrite=True)
    sink.write(result(0, two_dets()))
    sink.close()
    assert "old" not in existing.read_text()
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        sink_cls(tmp_path / "dir.csv", overwrite=True)


def test_tables_through_the_pipeline_on_a_real_clip(tmp_path: Path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    csv_path, mot_path = tmp_path / "d.csv", tmp_path / "d.mot"
    sinks = [CsvSink(csv_path), MotSink(mot_path)]
    [stats] = Pipeline.single(open_source(str(clip)), FakeDetector(), [OverlayStage()], sinks).run()
    assert stats.frames_processed == 20
    rows = read_rows(csv_path)
    assert len(rows) == 21, "header + one row per detection (the square, once per frame)"
    assert [int(r[0]) for r in rows[1:]] == list(range(20))
    assert {r[4] for r in rows[1:]} == {"person"} and {r[2] for r in rows[1:]} == {""}
    mot = read_rows(mot_path)
    assert [int(r[0]) for r in mot] == list(range(1, 21)) and {r[1] for r in mot} == {"-1"}
    for c, m in zip(rows[1:], mot, strict=True):
        x1, y1, x2, y2 = (float(v) for v in c[6:10])
        assert [float(v) for v in m[2:6]] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.06)


# ---- report ----------------------------------------------------------------------------------------


def tracked(tid: int, cid: int, y2: float) -> Detections:
    return tracks([(tid, cid, y2)])


def tracks(objects: list[tuple[int, int, float]]) -> Detections:
    """Tracked boxes (id, class id, bottom y), side by side 20 px apart."""
    boxes = [[100 + 20 * k, y2 - 30, 116 + 20 * k, y2] for k, (_, _, y2) in enumerate(objects)]
    return Detections(
        boxes, [0.9] * len(objects), [o[1] for o in objects], tracker_id=[o[0] for o in objects], names=NAMES
    )


def fed_counters() -> tuple[LineCounter, ZoneCounter]:
    line = LineCounter(LineSpec(name="gate", start=(0, 0.5), end=(1, 0.5)), (320, 240))
    zone = ZoneCounter(ZoneSpec(name="lot", polygon=[(0, 0), (1, 0), (1, 0.5), (0, 0.5)]), (320, 240))
    # person 1 walks down across the line at y=120; car 2 walks up; car 3 stays in the lot.
    for i in range(10):
        dets = tracks([(1, 0, 60 + 15 * i), (2, 2, 200 - 15 * i), (3, 2, 50)])
        line.update(dets, i, i / 10)
        zone.update(dets, i, i / 10)
    return line, zone


def sample_stats() -> RunStats:
    stats = RunStats(source="clip.mp4", backend="fake")
    stats.frames_read, stats.frames_processed, stats.frames_dropped = 120, 118, 2
    stats.frames_detected, stats.frames_motion_skipped = 40, 78
    stats.wall_seconds = 4.0
    for ms in range(1, 101):
        stats.latency.add(float(ms))
    stats.detections_per_class.update({"person": 50, "car": 20})
    stats.outputs.append("out.mp4")
    return stats


def test_report_holds_what_it_was_fed(tmp_path: Path):
    line, zone = fed_counters()
    info = SourceInfo(
        name="clip.mp4", kind="file", width=640, height=360, fps=Fraction(179, 6), frame_count=120,
        codec="h264", duration=4.022,
    )  # fmt: skip
    stage_reports = [
        {"tracks_per_class": {"person": 1, "car": 2}},
        {"lines": {line.name: line.summary()}},
        {"zones": {zone.name: zone.summary()}},
    ]
    report = build_report(
        sample_stats(), info, "yolo11n.pt", "openvino", stage_reports, ["out.jsonl", "out.mp4"]
    )
    path = write_report(check_report_path(tmp_path / "report.json", False), report)
    back = json.loads(path.read_text())
    assert back["source"] == {
        "name": "clip.mp4", "kind": "file", "codec": "h264", "width": 640, "height": 360,
        "fps": "179/6", "fps_value": 29.8333, "frame_count": 120, "duration_s": 4.022,
    }  # fmt: skip
    assert (back["model"], back["backend"]) == ("yolo11n.pt", "openvino")
    assert back["frames"] == {
        "read": 120, "processed": 118, "dropped": 2, "corrupt": 0, "detected": 40, "motion_skipped": 78,
        "rate_skipped": 0,
    }  # fmt: skip
    assert back["fps"] == 29.5
    assert back["latency_ms"]["p50"] == pytest.approx(50.5, abs=0.1) and back["latency_ms"]["max"] == 100
    assert back["detections_per_class"] == {"person": 50, "car": 20}
    assert back["tracks_per_class"] == {"car": 2, "person": 1}
    assert back["lines"] == {"gate": {"in": {"person": 1}, "out": {"car": 1}, "total": {"in": 1, "out": 1}}}
    lot = back["zones"]["lot"]
    assert lot["entered"] == {"car": 2, "person": 1} and lot["exited"] == {"person": 1}
    assert lot["max_inside"] == 2
    assert back["outputs"] == ["out.mp4", "out.jsonl"], "stats outputs and extra ones, no duplicates"
    assert list(tmp_path.iterdir()) == [path], "no temp file left behind"

    table = format_summary(back)
    assert "source     clip.mp4  (h264, 640x360, 29.83 fps, 4.0 s)" in table
    assert "frames     read 120, processed 118, dropped 2, corrupt 0" in table
    assert "model      ran on 40 of 118 frames (motion-skipped 78)" in table
    assert "line       gate: in 1 (person 1), out 1 (car 1)" in table
    assert "zone       lot: entered 3, exited 1, most inside at once 2" in table
    assert "detections person 50, car 20" in table and "tracks     car 2, person 1" in table
    assert table.splitlines()[-1] == "outputs    out.mp4, out.jsonl"


def test_report_path_errors(tmp_path: Path):
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    with pytest.raises(UserError, match=r"report .* exists; pass --overwrite"):
        check_report_path(existing, False)
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match=r"writing report .* failed"):
        write_report(tmp_path / "taken", {"x": 1})  # a folder in the way
    write_report(tmp_path / "missing" / "r.json", {"x": 1})  # missing folders are made
    assert json.loads((tmp_path / "missing" / "r.json").read_text()) == {"x": 1}
    write_report(existing, {"x": float("nan"), "y": np.int64(3)})
    assert json.loads(existing.read_text()) == {"x": None, "y": 3}


def test_track_tally_counts_distinct_tracks_with_flat_memory():
    book = TrackBook(lost_frames=10)
    tally = TrackTally(book)
    for i in range(100):  # track 1 (person) all along; a new car track every 10 frames
        frame = tracks([(1, 0, 100), (100 + i // 10, 2, 100)])
        book.update(frame.tracker_id.tolist())
        tally.count(frame)
        tally.count(Detections([[0, 0, 1, 1]], [0.5], [2], names=NAMES))  # untracked: ignored
    assert tally.per_class() == {"car": 10, "person": 1}
    assert len(tally._seen) <= 3
