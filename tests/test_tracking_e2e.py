"""Tracking, line counting, CSV/MOT and the report, end to end on real footage with the real model."""

from __future__ import annotations

import csv
import itertools
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from detector.cli import main

pytestmark = pytest.mark.model

# The doorway clip's first 78 s at stride 2 (every 2nd frame is needed: at every 3rd the tracker
# loses people). Three people walk out through the door in them, at 19 s, 44 s and 69 s; the next
# one comes at 86 s (the whole clip has six).
DOOR_FRAMES = 390


@pytest.fixture(scope="module")
def doorway_run(
    model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("door")
    kinds = (("json", "jsonl"), ("csv", "csv"), ("mot", "txt"), ("report", "json"), ("output", "mp4"))
    files = {k: out / f"door.{ext}" for k, ext in kinds}
    code = main([
        "run", str(videos_dir / "one-by-one-person-detection.mp4"), "--model", str(model_path),
        "--config", str(ROOT / "configs" / "count-people-doorway.yaml"), "--vid-stride", "2",
        "--max-frames", str(DOOR_FRAMES), "-q",
        *(x for k, p in files.items() for x in (f"--{k}", str(p))),
    ])  # fmt: skip
    assert code == 0
    return files


def records(path: Path) -> tuple[list[dict], list[dict]]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [r for r in lines if "frame" in r and "event" not in r], [r for r in lines if "event" in r]


def test_tracks_persist_and_ids_are_unique_per_frame(doorway_run):
    frames, _ = records(doorway_run["json"])
    lengths: Counter[int] = Counter()
    for r in frames:
        ids = [d["track_id"] for d in r["detections"]]
        assert None not in ids, "with tracking on, every box has a track id"
        assert len(ids) == len(set(ids)), f"frame {r['frame']}: one id on two live objects"
        lengths.update(ids)
    assert len(lengths) >= 3, "several people walk through this clip"
    assert statistics.median(lengths.values()) >= 10, f"tracks break up: {sorted(lengths.values())}"


def test_door_line_counts_people_leaving_once_each(doorway_run):
    """Three people walk out through the doorway, one at a time, and nobody comes in."""
    _, events = records(doorway_run["json"])
    crossings = [e for e in events if e["event"] == "line_cross"]
    seen = [(e["line"], e["direction"], e["class_name"]) for e in crossings]
    assert seen == [("door", "out", "person")] * 3
    ids = [e["track_id"] for e in crossings]
    assert len(ids) == len(set(ids)), "each object counts at most once per line"
    times = [e["pts"] for e in crossings]
    assert all(b - a >= 10 for a, b in itertools.pairwise(times)), f"one at a time, not twice each: {times}"


def test_report_matches_the_jsonl(doorway_run):
    frames, events = records(doorway_run["json"])
    report = json.loads(doorway_run["report"].read_text())
    per_class: Counter[str] = Counter(d["class_name"] for r in frames for d in r["detections"])
    assert report["frames"]["processed"] == len(frames) == DOOR_FRAMES
    assert report["detections_per_class"] == dict(per_class)
    assert report["lines"]["door"]["total"]["out"] == sum(1 for e in events if e["event"] == "line_cross")
    ids = {d["track_id"] for r in frames for d in r["detections"]}
    assert report["tracks_per_class"] == {"person": len(ids)}
    # Ultralytics' ByteTrack gave these four tracks too (the fourth person walks in at the end), box
    # for box; ours numbers them in the order they are confirmed.
    assert sorted(ids) == [1, 2, 3, 4]
    assert report["source"]["fps"] == "10/1" and report["source"]["codec"] == "h264"
    assert report["backend"] == "openvino"
    assert set(report["outputs"]) >= {str(doorway_run["output"]), str(doorway_run["json"])}


def test_a_tracked_run_imports_no_torch(model_path, videos_dir, tmp_path):
    """ByteTrack is ours, on NumPy: a --track run never imports torch (1.5 s at start)."""
    clip = videos_dir / "one-by-one-person-detection.mp4"
    code = (
        "import sys; from detector.cli import main; "
        f"code = main(['run', {str(clip)!r}, '--model', {str(model_path)!r}, '--track', '--max-frames', '3', "
        f"'--report', {str(tmp_path / 'r.json')!r}, '-q']); "
        "print(code, sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.split() == ["0", "[]"], out.stdout + out.stderr
    assert json.loads((tmp_path / "r.json").read_text())["frames"]["processed"] == 3


def test_csv_and_mot_have_one_row_per_detection(doorway_run):
    frames, _ = records(doorway_run["json"])
    total = sum(len(r["detections"]) for r in frames)
    with doorway_run["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == total > 0
    assert list(rows[0]) == ["frame", "pts", "track_id", "class_id", "class_name", "confidence",
                             "x1", "y1", "x2", "y2"]  # fmt: skip
    mot = [line.split(",") for line in doorway_run["mot"].read_text().splitlines()]
    assert len(mot) == total
    first_json = next(r for r in frames if r["detections"])
    assert int(mot[0][0]) == first_json["frame"] + 1, "MOT frames are 1-based"
    assert all(len(row) == 10 and row[7:] == ["-1", "-1", "-1"] for row in mot)
    d = first_json["detections"][0]
    x, y, w, h = map(float, mot[0][2:6])
    assert (x, y) == pytest.approx(d["xyxy"][:2], abs=0.06)  # JSONL keeps 0.1 px
    assert (w, h) == pytest.approx((d["xyxy"][2] - d["xyxy"][0], d["xyxy"][3] - d["xyxy"][1]), abs=0.11)


def test_report_counts_tracks_without_lines_or_zones(model_path, videos_dir, tmp_path):
    """The street clip: one car and one bicycle in view the whole time (one track each), two people
    walking, and the cyclist once taken for a third person."""
    report = tmp_path / "r.json"
    clip = str(videos_dir / "person-bicycle-car-detection.gif")
    assert main(["run", clip, "--model", str(model_path), "--track", "--report", str(report), "-q"]) == 0
    tracks = json.loads(report.read_text())["tracks_per_class"]
    assert tracks.get("car") == 1 and tracks.get("bicycle") == 1 and 2 <= tracks.get("person", 0) <= 3, tracks


def _inside_rect(rect: list[list[float]], size: tuple[int, int], x: float, y: float) -> float:
    """Signed distance (px) of (x, y) from an axis-aligned rectangle given in frame fractions."""
    (x0, y0), (x1, y1) = (min(p) for p in zip(*rect, strict=True)), (max(p) for p in zip(*rect, strict=True))
    x0, x1, y0, y1 = x0 * size[0], x1 * size[0], y0 * size[1], y1 * size[1]
    inside = min(x - x0, x1 - x, y - y0, y1 - y)
    if inside >= 0:
        return inside
    dx, dy = max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1)
    return -((dx * dx + dy * dy) ** 0.5)


def test_traffic_zones_end_to_end(model_path, videos_dir, tmp_path):
    """configs/traffic-zones.yaml on the street clip it was made for, through the CLI. What the clip
    shows: a car drives up the road (across the line, out of the driveway, through the lot), a cyclist
    rides through the lot, two people stand in it at the start. The JSONL's occupancy agrees with the
    boxes in the CSV, each enter has its exit, and the report adds the events up."""
    config = ROOT / "configs" / "traffic-zones.yaml"
    files = {"json": tmp_path / "t.jsonl", "csv": tmp_path / "t.csv", "report": tmp_path / "t.json"}
    clip = str(videos_dir / "person-bicycle-car-detection.gif")
    argv = ["run", clip, "--model", str(model_path), "--config", str(config), "-q"]
    assert main([*argv, *(x for k, p in files.items() for x in (f"--{k}", str(p)))]) == 0
    frames, events = records(files["json"])
    report = json.loads(files["report"].read_text())
    zones = {z["name"]: z for z in yaml.safe_load(config.read_text())["zones"]}
    size = (480, 270)

    assert report["lines"]["road"]["total"] == {"in": 0, "out": 1} and report["lines"]["road"]["out"] == {
        "car": 1
    }
    assert frames[0]["zones"] == {"lot": {"person": 2}, "driveway": {"car": 1}}
    assert report["zones"]["driveway"]["entered"] == report["zones"]["driveway"]["exited"] == {"car": 1}
    lot = report["zones"]["lot"]["entered"]
    assert lot.get("car") == 1 and lot.get("bicycle") == 1 and 2 <= lot.get("person", 0) <= 3, lot

    # occupancy per frame against the CSV's boxes: certain inside (beyond the border band) <= count
    # <= inside or on the band, by the zone's own classes
    band = 0.005 * (size[0] ** 2 + size[1] ** 2) ** 0.5
    with files["csv"].open() as f:
        rows = list(csv.DictReader(f))
    for r in frames:
        boxes = [row for row in rows if int(row["frame"]) == r["frame"]]
        for name, z in zones.items():
            dist = [
                _inside_rect(z["polygon"], size, (float(b["x1"]) + float(b["x2"])) / 2,
                             (float(b["y1"]) + float(b["y2"])) / 2)
                for b in boxes if z["classes"] is None or b["class_name"] in z["classes"]
            ]  # fmt: skip
            count = sum(r["zones"][name].values())
            assert sum(d > band for d in dist) <= count <= sum(d >= -band for d in dist), (r["frame"], name)

    # every enter has its exit, in order; dwell is the time between them (up to the last sighting)
    for name in zones:
        per_track: dict[int, list[dict]] = {}
        for e in events:
            if e.get("zone") == name:
                per_track.setdefault(e["track_id"], []).append(e)
        for tid, seq in per_track.items():
            kinds = [e["event"] for e in seq]
            assert kinds == ["zone_enter", "zone_exit"] * (len(seq) // 2), (name, tid, kinds)
            for enter, leave in zip(seq[::2], seq[1::2], strict=True):
                assert enter["class_name"] == leave["class_name"] and enter["frame"] <= leave["frame"]
                assert 0 <= leave["dwell_s"] <= leave["pts"] - enter["pts"] + 1e-3
                if "reason" not in leave:
                    assert leave["dwell_s"] == pytest.approx(leave["pts"] - enter["pts"], abs=1e-3)
        summary = report["zones"][name]
        mine = [e for e in events if e.get("zone") == name]
        exits = [e for e in mine if e["event"] == "zone_exit"]
        assert summary["entered"] == dict(
            Counter(e["class_name"] for e in mine if e["event"] == "zone_enter")
        )
        assert summary["exited"] == dict(Counter(e["class_name"] for e in exits))
        assert summary["dwell_s"]["count"] == len(exits)
        assert summary["dwell_s"]["max"] == max(e["dwell_s"] for e in exits)
        assert summary["max_inside"] == max(sum(r["zones"][name].values()) for r in frames)
