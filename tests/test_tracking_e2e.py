"""Tracking, line counting, CSV/MOT and the report, end to end on real footage with the real model."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT

from detector.cli import main

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def doorway_run(
    model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("door")
    kinds = (("json", "jsonl"), ("csv", "csv"), ("mot", "txt"), ("report", "json"), ("output", "mp4"))
    files = {k: out / f"door.{ext}" for k, ext in kinds}
    code = main([
        "run", str(videos_dir / "one-by-one-person-detection.mp4"), "--model", str(model_path),
        "--config", str(ROOT / "configs" / "count-people-doorway.yaml"),
        "--vid-stride", "2", "--max-frames", "350", "-q",
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
    _, events = records(doorway_run["json"])
    crossings = [e for e in events if e["event"] == "line_cross"]
    assert len(crossings) >= 2
    assert all(
        e["line"] == "door" and e["direction"] == "out" and e["class_name"] == "person" for e in crossings
    )
    ids = [e["track_id"] for e in crossings]
    assert len(ids) == len(set(ids)), "each object counts at most once per line"


def test_report_matches_the_jsonl(doorway_run):
    frames, events = records(doorway_run["json"])
    report = json.loads(doorway_run["report"].read_text())
    per_class: Counter[str] = Counter(d["class_name"] for r in frames for d in r["detections"])
    assert report["frames"]["processed"] == len(frames) == 350
    assert report["detections_per_class"] == dict(per_class)
    assert report["lines"]["door"]["total"]["out"] == sum(1 for e in events if e["event"] == "line_cross")
    ids = {d["track_id"] for r in frames for d in r["detections"]}
    assert report["tracks_per_class"] == {"person": len(ids)}
    assert report["source"]["fps"] == "10/1" and report["source"]["codec"] == "h264"
    assert report["backend"] == "openvino"
    assert set(report["outputs"]) >= {str(doorway_run["output"]), str(doorway_run["json"])}


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
    report = tmp_path / "r.json"
    clip = str(videos_dir / "person-bicycle-car-detection.gif")
    assert main(["run", clip, "--model", str(model_path), "--track", "--report", str(report), "-q"]) == 0
    tracks = json.loads(report.read_text())["tracks_per_class"]
    assert tracks.get("car", 0) >= 1 and tracks.get("person", 0) >= 1, tracks
