"""Figures a user can trust (issue 29): the summary of several sources says the run-wide lines (the
event store, retention) once, not under each camera; ``detections`` says it counts box-frames; the
panel says its rate is the processing rate, and has one from the first frame on; the live page's event
list says the class and the time of each event.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from detector.cli import main
from detector.stages.build import panel_status
from detector.stages.overlay import rate_line
from detector.stats import RunStats

STATIC = Path(__file__).resolve().parent.parent / "detector" / "web" / "static"


@pytest.mark.model
def test_two_sources_say_the_store_once_and_detections_are_box_frames(
    capfd: pytest.CaptureFixture[str], model_path: Path, assets_dir: Path, tmp_path: Path
) -> None:
    a, b = (tmp_path / "a.jpg", tmp_path / "b.jpg")
    for path in (a, b):
        shutil.copy(assets_dir / "bus.jpg", path)  # people and a bus: detections to count
    argv = ["run", str(a), str(b), "--model", str(model_path), "--no-show"]
    assert main([*argv, "--events-db", str(tmp_path / "events.db"), "--json", str(tmp_path / "d.jsonl")]) == 0
    lines = capfd.readouterr().err.splitlines()
    sources = [i for i, line in enumerate(lines) if line.startswith("source     ")]
    stores = [i for i, line in enumerate(lines) if line.startswith("store ")]
    assert len(sources) == 2 and len(stores) == 1, "\n".join(lines)
    assert stores[0] > sources[1], "after the last source's block"
    detections = [line for line in lines if line.startswith("detections ")]
    assert len(detections) == 2 and all("(box-frames: each box in each frame" in d for d in detections)


def test_the_panel_says_processing_rate_and_has_a_rate_on_the_first_frame() -> None:
    stats = RunStats()
    first = panel_status(stats, live=True, source_fps=30.0)()
    assert rate_line(first) == ["src fps 30.0"], "the first frame: the source's rate, said as such"
    stats.fps_meter.tick(0.0)
    stats.fps_meter.tick(1 / 33.2)
    assert rate_line(panel_status(stats, live=True, source_fps=30.0)()) == ["proc fps 33.2"]


def test_the_live_page_lists_an_event_with_its_class_and_time(chromium: Any, tmp_path: Path) -> None:
    """``[front] track_new`` told neither what nor when."""
    page = tmp_path / "page.html"
    scripts = "".join(f"<script>{(STATIC / n).read_text()}</script>" for n in ("common.js", "app.js"))
    page.write_text(f"<!doctype html><html><body>{scripts}</body></html>")  # app.js stops at its first
    chromium.get(page.as_uri())  # missing element; its functions are declared by then
    event = {
        "event": "track_new", "id": "e1", "source": "front", "wall_time": "2026-12-01T14:03:27.123+00:00",
        "frame": 40, "pts": 4.0, "track_id": 3, "class_name": "person",
    }  # fmt: skip
    text = chromium.execute_script(f"return describe({json.dumps(event)})")
    local = chromium.execute_script(
        "return new Date(arguments[0]).toTimeString().slice(0, 8)", event["wall_time"]
    )
    assert text == f"{local} [front] person #3 appeared (new track) at 4.0 s"
