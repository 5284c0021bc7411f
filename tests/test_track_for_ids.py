"""Lines, zone events and trails need track ids: without --track they get ByteTrack, said in one log
line (issue 19, item 5). Before, a line without --track warned, exited 0 and counted "in 0, out 0"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from detector.cli import main
from detector.settings import Settings, load_settings

LINE = {"name": "door", "start": [0.5, 0.0], "end": [0.5, 1.0]}
ZONE = {"name": "lot", "polygon": [[0, 0], [0.5, 0], [0.5, 0.5]]}


@pytest.mark.parametrize(
    "data",
    [
        {"lines": [LINE]},
        {"zones": [ZONE]},
        {"trails": {"length": 10}},
        {"sources": [{"source": "a.mp4", "lines": [LINE]}, {"source": "b.mp4"}]},
        {"sources": [{"source": "a.mp4", "zones": [ZONE]}], "tracker": None},
    ],
)
def test_what_needs_ids_turns_bytetrack_on(data: dict) -> None:
    assert Settings.model_validate(data).tracker == "bytetrack"


def test_a_chosen_tracker_stays_and_nothing_else_turns_tracking_on() -> None:
    assert Settings.model_validate({"lines": [LINE], "tracker": "botsort"}).tracker == "botsort"
    assert Settings.model_validate({"classes": ["person"], "sources": [{"source": "a.mp4"}]}).tracker is None


def test_clip_on_with_a_line_needs_no_track_flag(tmp_path: Path) -> None:
    settings = Settings.model_validate({"lines": [LINE], "clips": str(tmp_path), "clip_on": ["person"]})
    assert settings.tracker == "bytetrack" and settings.clip_on == ["person"]


def test_one_log_line_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"lines": [LINE], "zones": [ZONE]}))
    with caplog.at_level("INFO", logger="detector"):
        load_settings(config, env={})
    assert [r.getMessage() for r in caplog.records] == [
        "lines and zones need track ids: tracking is on (ByteTrack; --track=botsort for BoT-SORT)"
    ]
    caplog.clear()
    with caplog.at_level("INFO", logger="detector"):
        load_settings(config, {"tracker": "bytetrack"}, env={})
    assert not caplog.records, "with --track nothing is said"


@pytest.mark.model
def test_a_line_without_track_gets_ids_on_the_sample_clip(
    capfd: pytest.CaptureFixture[str], model_path: Path, sample_clip: Path, tmp_path: Path
) -> None:
    config = tmp_path / "line.yaml"
    config.write_text(yaml.safe_dump({"lines": [LINE]}))
    js = tmp_path / "d.jsonl"
    argv = ["run", str(sample_clip), "--model", str(model_path), "-c", str(config), "--max-frames", "10"]
    assert main([*argv, "--json", str(js)]) == 0
    err = capfd.readouterr().err
    assert err.count("need track ids") == 1 and "add --track" not in err
    boxes = [d for line in js.read_text().splitlines() for d in json.loads(line)["detections"]]
    assert boxes and all(d["track_id"] is not None for d in boxes)


@pytest.mark.model
def test_traffic_zones_without_a_tracker_count_as_with_one(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    """configs/traffic-zones.yaml on its street clip, with its `tracker:` line removed: the same line
    counts, zone totals and events as with it."""
    full = yaml.safe_load((ROOT / "configs" / "traffic-zones.yaml").read_text())
    assert full.pop("tracker") == "bytetrack"
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(full))
    clip = str(videos_dir / "person-bicycle-car-detection.gif")
    reports = []
    for name, config in (("with", ROOT / "configs" / "traffic-zones.yaml"), ("without", bare)):
        report = tmp_path / f"{name}.json"
        assert (
            main(["run", clip, "--model", str(model_path), "-c", str(config), "--report", str(report), "-q"])
            == 0
        )
        reports.append(json.loads(report.read_text()))
    with_tracker, without = reports
    assert without["lines"] == with_tracker["lines"] and without["zones"] == with_tracker["zones"]
    assert sum(line["total"]["in"] + line["total"]["out"] for line in without["lines"].values()) >= 1
    assert without["tracks_per_class"] == with_tracker["tracks_per_class"]
