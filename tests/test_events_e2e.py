"""Events you can look at, end to end: the real model on real footage (people walking through a doorway),
with clips, snapshots, blur, a heatmap and an HTML report all on, everything read back like a user
would: clips decoded, the page opened in headless Chromium and its screenshot checked for charts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT

from detector.cli import main

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"  # 10 fps, 768x432
FRAMES = 300
BEFORE, AFTER = 2.0, 2.0


@pytest.fixture(scope="module")
def door(model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("events")
    files = {
        "clips": out / "clips", "json": out / "door.jsonl", "output": out / "door.mp4",
        "heatmap": out / "heat.png", "report": out / "page" / "report.html",
    }  # fmt: skip
    files["report"].parent.mkdir()
    code = main([
        "run", str(videos_dir / CLIP), "--model", str(model_path),
        "--config", str(ROOT / "configs" / "count-people-doorway.yaml"), "--max-frames", str(FRAMES),
        "--clip-on", "person", "--clip-before", str(BEFORE), "--clip-after", str(AFTER), "--blur", "person",
        "-q", *(x for k, p in files.items() for x in (f"--{k}", str(p))),
    ])  # fmt: skip
    assert code == 0
    return files


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    return [f.to_ndarray(format="bgr24") for f in frames], [float(f.time) for f in frames]


def test_every_event_has_a_clip_and_a_snapshot(door: dict[str, Path]) -> None:
    events = [r for r in jsonl(door["json"]) if r.get("event") in ("line_cross", "zone_enter", "track_new")]
    logged = jsonl(door["clips"] / "events.jsonl")
    kinds = {e["event"] for e in events}
    assert {"line_cross", "track_new"} <= kinds, "the clip has a door crossing and new people"
    assert logged == events, (
        "events.jsonl holds every clip event: the same records (id, source, clip, snapshot) as --json"
    )
    starts = {}
    for record in logged:
        frames, times = decode(door["clips"] / record["clip"])
        t = record["clip_offset_s"]
        assert times[0] == 0.0 and len(frames) == pytest.approx(times[-1] * 10 + 1, abs=1)
        assert t >= min(BEFORE, record["pts"]) - 0.05, "the clip starts at least BEFORE s ahead"
        if record["clip"] not in starts:  # the event that opened it: from the keyframe (1 s apart) before
            starts[record["clip"]] = record
            assert t <= BEFORE + 1.0 + 0.05, record
        room = min(AFTER, (FRAMES - 1) / 10 - record["pts"])
        assert times[-1] - t >= room - 0.05, "the clip runs AFTER s past the event (or to the end)"
        snapshot = cv2.imread(str(door["clips"] / record["snapshot"]))
        assert snapshot is not None and snapshot.shape == (432, 768, 3)


def test_clips_are_cut_from_the_output_video(door: dict[str, Path]) -> None:
    """Not a second encode: a clip's first frame is the --output frame at the same time, pixel for pixel."""
    record = jsonl(door["clips"] / "events.jsonl")[0]
    clip_frames, _ = decode(door["clips"] / record["clip"])
    out_frames, out_times = decode(door["output"])
    start = record["pts"] - record["clip_offset_s"]
    index = min(range(len(out_times)), key=lambda i: abs(out_times[i] - start))
    assert np.array_equal(clip_frames[0], out_frames[index])
    assert np.array_equal(clip_frames[-1], out_frames[index + len(clip_frames) - 1])


def test_heatmap_is_the_sources_size_and_hot_where_people_were(
    door: dict[str, Path], videos_dir: Path
) -> None:
    heat = cv2.imread(str(door["heatmap"]))
    assert heat.shape == (432, 768, 3)
    centres = [
        ((d["xyxy"][0] + d["xyxy"][2]) / 2, (d["xyxy"][1] + d["xyxy"][3]) / 2)
        for r in jsonl(door["json"])
        if "detections" in r
        for d in r["detections"]
    ]
    grid, _, _ = np.histogram2d([y for _, y in centres], [x for x, _ in centres], bins=(9, 16),
                                range=((0, 432), (0, 768)))  # fmt: skip
    row, col = np.unravel_index(np.argmax(grid), grid.shape)
    hot = heat[
        int((row + 0.5) * 48) - 4 : int((row + 0.5) * 48) + 4,
        int((col + 0.5) * 48) - 4 : int((col + 0.5) * 48) + 4,
    ]
    b, g, r = hot.reshape(-1, 3).mean(axis=0)
    assert r > b + 40, f"the most visited place is drawn hot (red), got BGR {b:.0f},{g:.0f},{r:.0f}"
    # Far from every detection the picture is the scene itself (the camera does not move).
    with av.open(str(videos_dir / CLIP)) as c:
        first_frame = next(c.decode(c.streams.video[0])).to_ndarray(format="bgr24")
    quiet = [
        (y, x)
        for y in range(1, 9)
        for x in range(4, 16)
        if grid[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].sum() == 0
    ]
    assert quiet, "some of the frame never had anyone near it"
    for y, x in quiet:
        cell = (slice(y * 48, y * 48 + 48), slice(x * 48, x * 48 + 48))
        diff = np.abs(heat[cell].astype(int) - first_frame[cell].astype(int)).mean()
        assert diff < 12, f"cell {y},{x} of the heatmap is coloured where nobody was ({diff:.1f})"


def _screenshot(page: Path, out: Path) -> np.ndarray:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless chromium is not installed (apt-get install chromium; .ci/run does)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1280,3000",
            "--hide-scrollbars", page.as_uri(),
        ]  # fmt: skip
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    shot = cv2.imread(str(out))
    assert shot is not None, "chromium wrote no screenshot"
    return shot


def _pixels_like(image: np.ndarray, hex_rgb: str, tolerance: int = 40) -> int:
    rgb = tuple(int(hex_rgb[i : i + 2], 16) for i in (1, 3, 5))
    bgr = np.array(rgb[::-1])
    return int((np.abs(image.astype(int) - bgr).max(axis=2) < tolerance).sum())


def test_html_report_is_one_self_contained_page_with_charts(door: dict[str, Path], tmp_path: Path) -> None:
    page = door["report"]
    html = page.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing is loaded from the network"
    assert re.findall(r'src="data:image/(png|jpeg);base64,', html), "pictures are inlined"
    links = re.findall(r'href="([^"#]+)(?:#t=[0-9.]+)?"', html)
    assert links and all((page.parent / link).is_file() for link in links), "clip links resolve from the page"
    shot = _screenshot(page, tmp_path / "shot.png")
    # What the charts are drawn with (detector.charts): series 1 blue, series 2 orange, histogram purple.
    assert _pixels_like(shot, "#0072B2") > 1500, "the detections-per-class line is drawn"
    assert _pixels_like(shot, "#E69F00") > 300, "the door's out line is drawn"
    assert _pixels_like(shot, "#7B3FA0") > 3000, "the latency histogram is drawn"
    hsv = cv2.cvtColor(shot, cv2.COLOR_BGR2HSV)
    assert ((hsv[..., 1] > 150) & (hsv[..., 2] > 150) & (hsv[..., 0] < 15)).sum() > 200, "the heatmap shows"
    assert os.path.getsize(page) < 5_000_000
