"""Gated detection end to end, with the real model on real footage: a quiet camera (issue 23's, made
with ffmpeg from the doorway clip) from a file with ``--motion`` and served live on loopback (where
motion gating is on by itself), a box on every frame of the annotated video with ``--detect-fps``,
and a parked object that is one ``track_new``.

Runtime: ~90 s (one 30 s live stream, five short runs of the model).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT
from quiet_camera import DOORWAY, ffmpeg, make_quiet_camera
from streaming import StreamServer

from detector.cli import main
from detector.drawing import class_color

pytestmark = pytest.mark.model

FRAMES = 300  # the quiet camera: 3 times 8 s still, then 2 s of the clip (from 15 s: a person walks out)


def records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [r for r in lines if "event" not in r], [r for r in lines if "event" in r]


def counted(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["event"] for e in events if e["event"] in ("line_cross", "zone_enter"))


def tracks(frames: list[dict[str, Any]]) -> set[int]:
    return {d["track_id"] for r in frames for d in r["detections"]}


@pytest.fixture(scope="module")
def quiet(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The quiet camera (the clip's own 768x432, 10 fps) and the doorway config with a zone at the door."""
    out = tmp_path_factory.mktemp("quiet")
    config = yaml.safe_load((ROOT / "configs" / "count-people-doorway.yaml").read_text())
    config["zones"] = [{"name": "exit", "polygon": [[0.7, 0.5], [1, 0.5], [1, 1], [0.7, 1]]}]
    (out / "door.yaml").write_text(yaml.safe_dump(config))
    clip = make_quiet_camera(videos_dir / DOORWAY, out / "quiet.mp4", start=15, cycles=3, size=(768, 432))
    return {"clip": clip, "config": out / "door.yaml", "dir": out}


@pytest.fixture(scope="module")
def file_runs(model_path: Path, quiet: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The quiet camera as a file, with --motion and with --no-motion."""
    runs: dict[str, dict[str, Any]] = {}
    for mode in ("--motion", "--no-motion"):
        js, report = quiet["dir"] / f"{mode[2:]}.jsonl", quiet["dir"] / f"{mode[2:]}.json"
        code = main([
            "run", str(quiet["clip"]), "--model", str(model_path), "--config", str(quiet["config"]), mode,
            "--json", str(js), "--report", str(report), "-q",
        ])  # fmt: skip
        assert code == 0
        frames, events = records(js)
        runs[mode] = {"frames": frames, "events": events, "report": json.loads(report.read_text())}
    return runs


def test_a_quiet_file_with_motion_on_runs_the_model_on_few_frames_and_counts_the_same(
    file_runs: dict[str, dict[str, Any]],
) -> None:
    on, off = file_runs["--motion"], file_runs["--no-motion"]
    assert len(on["frames"]) == len(off["frames"]) == FRAMES, "every frame still gets its line"
    ran = [r["frame"] for r in on["frames"] if r["inference"]]
    assert 10 <= len(ran) <= 0.4 * FRAMES, f"the model ran on {len(ran)} of {FRAMES} frames"
    assert all(isinstance(r["motion"], list) for r in on["frames"])
    gaps = [(b - a, on["frames"][b]["motion"]) for a, b in zip([-100, *ran[:-1]], ran, strict=True)]
    assert all(gap >= 50 for gap, motion in gaps if not motion), "without motion, a run every 5 s"
    assert all("inference" not in r and "motion" not in r for r in off["frames"]), "off: lines as before"
    assert counted(on["events"]) == counted(off["events"])
    assert counted(off["events"])["line_cross"] == 1 and counted(off["events"])["zone_enter"] >= 1
    assert len(tracks(on["frames"])) == len(tracks(off["frames"]))
    frames = on["report"]["frames"]
    assert (frames["detected"], frames["motion_skipped"], frames["rate_skipped"]) == (
        len(ran), FRAMES - len(ran), 0,
    )  # fmt: skip
    assert off["report"]["frames"]["detected"] == FRAMES and "motion" not in off["report"]["stage_ms"]


def test_the_summary_and_the_html_report_say_how_often_the_model_ran(
    model_path: Path, quiet: dict[str, Path], capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    args = ["--model", str(model_path), "--motion", "--max-frames", "100", "--report", str(page)]
    assert main(["run", str(quiet["clip"]), *args]) == 0
    err = capfd.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("model      ran on"))
    ran = int(line.split()[3])
    assert line == f"model      ran on {ran} of 100 frames (motion-skipped {100 - ran})" and ran < 50
    assert f"ran on {ran} of 100 frames (motion-skipped {100 - ran})" in page.read_text()


def test_a_quiet_camera_served_live_runs_the_model_on_few_frames_and_counts_the_same(
    model_path: Path, quiet: dict[str, Path], file_runs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Live, motion gating is on by itself (motion: auto)."""
    js = tmp_path / "live.jsonl"
    with StreamServer(quiet["clip"], lifetime=120) as server:
        code = main([
            "run", server.url, "--model", str(model_path), "--config", str(quiet["config"]),
            "--json", str(js), "--reconnect-max", "0", "-q",
        ])  # fmt: skip
    assert code == 0
    frames, events = records(js)
    assert len(frames) >= 0.9 * FRAMES, f"{len(frames)} of {FRAMES} frames analysed"
    ran = sum(r["inference"] for r in frames)
    assert ran <= 0.5 * len(frames), f"the model ran on {ran} of {len(frames)} frames"
    assert counted(events) == counted(file_runs["--no-motion"]["events"])


@pytest.fixture(scope="module")
def walking(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of the doorway clip (10 fps) in which a person walks out through the door."""
    out = tmp_path_factory.mktemp("walk") / "walk.mp4"
    ffmpeg("-ss", "17", "-t", "3", "-i", str(videos_dir / DOORWAY), "-an", "-c:v", "libx264", str(out))
    return out


def edge_error(image: np.ndarray, box: list[float], color: tuple[int, int, int]) -> float:
    """Mean colour distance from ``color`` along the box's top and left edges (inset from the corners)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, y1 = min(max(x1, 1), w - 2), min(max(y1, 1), h - 2)
    top = image[y1, x1 + 8 : max(x1 + 9, min(x2, w) - 8)]
    left = image[y1 + 8 : max(y1 + 9, min(y2, h) - 8), x1]
    pixels = np.concatenate([top, left]).astype(float)
    return float(np.abs(pixels - np.array(color, float)).mean())


def test_detect_fps_gives_a_box_on_every_frame_of_the_annotated_video(
    model_path: Path, walking: Path, tmp_path: Path
) -> None:
    """The model runs twice a second; the tracker's prediction draws the walking person's box on the
    frames in between, and it moves on with them. Checked on the MP4, decoded back."""
    video, js, config = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"overlay": {"line_width": 3, "labels": False, "panel": False}}))
    code = main([
        "run", str(walking), "--model", str(model_path), "--config", str(config), "--classes", "person",
        "--track", "--detect-fps", "2", "-o", str(video), "--json", str(js), "-q",
    ])  # fmt: skip
    assert code == 0
    frames, _ = records(js)
    assert len(frames) == 30
    assert sum(r["inference"] for r in frames) == 6, "twice a second, over 3 s"
    assert all(len(r["detections"]) == 1 for r in frames[1:]), "one person, boxed on every frame"
    between = [r["detections"][0]["xyxy"][0] for r in frames[1:] if not r["inference"]]
    assert np.median(np.abs(np.diff(between))) > 1, "predicted boxes move on with the person"
    cap, source = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(walking))
    person = class_color(0)
    errors, plain = [], []
    for r in frames:
        ok, image = cap.read()
        ok2, raw = source.read()
        assert ok and ok2
        if r["frame"] == 0:  # a track is confirmed on its second sighting
            continue
        box = r["detections"][0]["xyxy"]
        errors.append(edge_error(image, box, person))
        plain.append(edge_error(raw, box, person))
    cap.release()
    source.release()
    assert max(errors) < 50 < min(plain), f"box edges off by {max(errors):.0f} (unboxed: {min(plain):.0f})"


@pytest.fixture(scope="module")
def parked(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A person sitting still (book.mkv's frame 50, frozen, 10 fps, with sensor noise) for 6 s, hidden
    behind a grey board for 2 s (the model misses them), then there again for 6 s."""
    out = tmp_path_factory.mktemp("parked")
    still = out / "still.png"
    ffmpeg("-i", str(videos_dir / "book.mkv"), "-vf", r"select=eq(n\,50)", "-frames:v", "1", str(still))
    board = "drawbox=x=170:y=60:w=280:h=420:color=gray:t=fill:enable='between(t,6,7.95)'"
    graph = f"fps=10,{board},noise=alls=6:allf=t,format=yuv420p"
    ffmpeg(
        "-loop", "1", "-t", "14", "-i", str(still), "-vf", graph,
        "-c:v", "libx264", str(out / "parked.mp4"),
    )  # fmt: skip
    return out / "parked.mp4"


@pytest.mark.parametrize(("stationary", "expected"), [(None, 2), (3, 1)])
def test_a_parked_object_is_one_track_new(
    model_path: Path, parked: Path, tmp_path: Path, stationary: int | None, expected: int
) -> None:
    """Without ``stationary``, the person found again after the board is a new track: a second
    ``track_new`` (and clip). Stationary for 3 s before the board, they keep their id."""
    js = tmp_path / "out.jsonl"
    extra = ["--stationary-seconds", str(stationary)] if stationary else []
    code = main([
        "run", str(parked), "--model", str(model_path), "--classes", "person", "--track", "--json", str(js),
        "--clips", str(tmp_path / "clips"), "--clip-on", "person", "-q", *extra,
    ])  # fmt: skip
    assert code == 0
    frames, events = records(js)
    assert [e["event"] for e in events].count("track_new") == expected
    hidden = [r for r in frames if 61 <= r["frame"] <= 78]
    assert all(not r["detections"] for r in hidden), "the model does not see them behind the board"
    if stationary:
        assert all(r["stationary"] == [1] for r in frames if 40 <= r["frame"] < 60 or r["frame"] > 100)
