"""Several sources in one run (`detector run SRC1 SRC2 ...`): one model, each source its own lane.

Real parts throughout: the bundled model, `videos/sample.mp4` and copies of it made with ffmpeg,
ffmpeg's real-time HTTP stream and GStreamer's RTSP server on loopback, a real X server for the
grid window. Runtime: about 40 s (the live streams play in real time).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import decode
from detector_process import DetectorProcess
from rtsp import RtspServer, rtsp_missing
from streaming import StreamServer, ffmpeg_exe

from detector.cli import main
from detector.sinks.jsonl import read_jsonl

pytestmark = pytest.mark.model
TIMING = ("latency_ms", "source")
PERSON_BGR = (255, 42, 4)  # class 0 in the overlay's palette


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def clips(sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample, a half-size copy (another frame size through the same model), and a 10 fps copy."""
    folder = tmp_path_factory.mktemp("clips")
    small, slow = folder / "small.mp4", folder / "slow.mp4"
    _ffmpeg("-i", str(sample_clip), "-vf", "scale=320:180", "-frames:v", "90", "-c:v", "libx264", str(small))
    _ffmpeg("-i", str(sample_clip), "-vf", "fps=10", "-c:v", "libx264", "-g", "10", "-bf", "0", str(slow))
    return {"sample": sample_clip, "small": small, "slow": slow}


def frames_of(records: list[dict[str, Any]], source: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records if "event" not in r and (source is None or r.get("source") == source)]


def strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_each_source_equals_its_own_run(clips, model_path, tmp_path, capsys):
    """Two files of different sizes through one model: each source's JSONL equals a run of it alone."""
    shared = tmp_path / "all.jsonl"
    argv = [
        "run",
        str(clips["sample"]),
        str(clips["small"]),
        "--model",
        str(model_path),
        "--max-frames",
        "40",
    ]
    assert main([*argv, "--json", str(shared), "--output", str(tmp_path / "{name}.mp4")]) == 0
    together = read_jsonl(shared)
    assert Counter(r["source"] for r in together) == {"sample": 40, "small": 40}, "every line says its source"
    for name in ("sample", "small"):
        alone = tmp_path / f"alone-{name}.jsonl"
        assert (
            main(
                [
                    "run",
                    str(clips[name]),
                    "--model",
                    str(model_path),
                    "--max-frames",
                    "40",
                    "--json",
                    str(alone),
                ]
            )
            == 0
        )
        single = read_jsonl(alone)
        assert "source" not in single[0], "a one-source run is as before"
        assert strip(frames_of(together, name)) == strip(single)
        _, n, _, _, codec = decode(tmp_path / f"{name}.mp4")
        assert (n, codec) == (40, "h264")
    summaries = capsys.readouterr().err
    assert summaries.count("source     ") >= 2, "a summary per source"


def test_name_templates_and_their_clash_rules(clips, model_path, tmp_path, capsys):
    base = ["run", str(clips["sample"]), str(clips["sample"]), "--model", str(model_path)]
    for flag, value in (
        ("--output", "out.mp4"),
        ("--csv", "d.csv"),
        ("--mot", "m.txt"),
        ("--report", "r.json"),
    ):
        assert main([*base, flag, str(tmp_path / value)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"detector: error: {flag} ") and "put {name} in the path" in err, err
        assert err.count("\n") == 0
    out = tmp_path / "o"
    out.mkdir()
    argv = [
        *base,
        "--output",
        str(out / "{name}.mp4"),
        "--json",
        str(out / "{name}.jsonl"),
        "--max-frames",
        "3",
    ]
    assert main([*argv, "--report", str(out / "{name}.json")]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sample-2.json", "sample-2.jsonl", "sample-2.mp4", "sample.json", "sample.jsonl", "sample.mp4",
    ]  # fmt: skip
    assert {r["source"] for r in read_jsonl(out / "sample-2.jsonl")} == {"sample-2"}
    assert json.loads((out / "sample-2.json").read_text())["frames"]["processed"] == 3
    # names from the config's sources:, and an output that is an input
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"sources": [{"source": str(clips["sample"]), "name": "door"}, {"source": str(clips["small"])}]}
        )
    )
    assert (
        main(
            [
                "run",
                "--config",
                str(cfg),
                "--model",
                str(model_path),
                "--json",
                str(tmp_path / "{name}.jsonl"),
                "--max-frames",
                "2",
            ]
        )
        == 0
    )
    assert (tmp_path / "door.jsonl").is_file() and (tmp_path / "small.jsonl").is_file()
    onto_input = str(clips["small"].parent / "{name}.mp4")
    assert (
        main(["run", str(clips["small"]), str(clips["sample"]), "--output", onto_input, "--overwrite"]) == 2
    )
    assert "is the input file" in capsys.readouterr().err


def test_a_source_that_cannot_be_opened_stops_the_run_before_it_starts(clips, model_path, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    argv = ["run", str(clips["sample"]), str(tmp_path / "missing.mp4"), "--model", str(model_path)]
    assert main([*argv, "--output", str(out / "{name}.mp4"), "--json", str(out / "all.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"detector: error: input {tmp_path / 'missing.mp4'} not found"
    assert list(out.iterdir()) == [], "nothing ran, nothing was left behind"


def headless() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def rtsp_clip(clips: dict[str, Path]) -> Iterator[RtspServer]:
    missing = rtsp_missing()
    if missing:
        pytest.skip(missing)
    server = RtspServer(clips["slow"]).start()
    yield server
    server.stop()


def test_killed_stream_rejoins_while_the_others_go_on(clips, rtsp_clip, model_path, tmp_path):
    """An RTSP camera dies and comes back; an HTTP stream and a file beside it are not disturbed."""
    with StreamServer(clips["slow"], loop=True) as http:  # looped: a loaded machine needs more than 8 s
        cmd = ["detector", "run", rtsp_clip.url, http.url, str(clips["sample"]), "--model", str(model_path)]
        cmd += ["--json", str(tmp_path / "out.jsonl"), "--max-frames", "60", "--stall-timeout", "2"]
        run = DetectorProcess(cmd, tmp_path, headless())
        try:
            cam = f"127.0.0.1_{rtsp_clip.port}_cam"
            run.wait_until("20 RTSP frames", lambda: len(frames_of(run.records(), cam)) >= 20, timeout=60)
            rtsp_clip.stop()
            time.sleep(1.5)
            rtsp_clip.restart()
            assert run.finish(timeout=90) == 0, run.stderr
        finally:
            run.kill()
    records = run.records()
    gaps = [r for r in records if r.get("event") == "gap"]
    assert [g["source"] for g in gaps] == [cam], "the camera rejoined with a gap record, only it"
    cam_frames = [r["frame"] for r in frames_of(records, cam)]
    assert len(cam_frames) == 60 and cam_frames == sorted(cam_frames), "it went on after the gap"
    web = [r["frame"] for r in frames_of(records, f"127.0.0.1_{http.port}")]
    steady = web[20:]  # after the first second (the start-up burst of a stream may drop its oldest frames)
    missing = steady[-1] - steady[0] + 1 - len(steady)
    assert len(web) == 60 and missing <= 4, f"the HTTP stream lost frames while the camera was away: {web}"
    assert [r["frame"] for r in frames_of(records, "sample")] == list(range(60)), "a file never drops a frame"


def test_a_source_that_fails_during_the_run_gives_exit_3(clips, model_path, tmp_path):
    with StreamServer(clips["slow"]) as http:
        cmd = [
            "detector",
            "run",
            http.url,
            str(clips["sample"]),
            "--model",
            str(model_path),
            "--reconnect-max",
            "1",
        ]
        cmd += ["--json", str(tmp_path / "{name}.jsonl"), "--output", str(tmp_path / "{name}.mp4")]
        run = DetectorProcess(cmd, tmp_path, headless())
        try:
            stream = f"127.0.0.1_{http.port}"
            run.jsonl = tmp_path / f"{stream}.jsonl"
            run.wait_until("10 stream frames", lambda: len(run.frames()) >= 10, timeout=60)
            http.stop()
            code = run.finish(timeout=90)
        finally:
            run.kill()
    last = run.stderr.strip().splitlines()[-1]
    assert code == 3, run.stderr
    assert last.startswith(f"detector: error: 1 of 2 sources failed: {stream}: lost {http.url}"), last
    assert len(read_jsonl(tmp_path / "sample.jsonl")) == 240, "the file ran to its end"
    assert decode(tmp_path / "sample.mp4")[1] == 240
    assert decode(tmp_path / f"{stream}.mp4")[1] == len(run.frames()), (
        "the failed source's video is closed and playable"
    )


@pytest.mark.display
def test_grid_window_shows_every_source_with_boxes(clips, model_path, tmp_path):
    display = os.environ.get("DETECTOR_TEST_DISPLAY")
    if not display:
        pytest.skip("DETECTOR_TEST_DISPLAY is not set (CI starts Xvfb and sets it; see .ci/run)")
    env = {**headless(), "DISPLAY": display}
    cmd = ["detector", "run", str(clips["sample"]), str(clips["small"]), "--model", str(model_path), "--show"]
    run = DetectorProcess([*cmd, "--json", str(tmp_path / "out.jsonl")], tmp_path, env)
    try:

        def xdotool(*args: str) -> str:
            done = subprocess.run(["xdotool", *args], capture_output=True, text=True, env=env, timeout=10)
            return done.stdout.strip()

        def window_id() -> str:
            found = xdotool("search", "--onlyvisible", "--name", "^detector - 2 sources$").split()
            return found[0] if found else ""

        run.wait_until("the window", window_id)
        wid = window_id()

        def sources_seen() -> Counter[str]:
            return Counter(r["source"] for r in run.frames())

        run.wait_until(
            "20 frames of each", lambda: len(seen := sources_seen()) == 2 and min(seen.values()) >= 20
        )
        xdotool("key", "--window", wid, "space")  # pause, so the screenshot and the frames agree
        shot = tmp_path / "grid.png"
        counts = [0, 0]

        def boxes_in_both_tiles() -> bool:
            """A screenshot (retried: under Xvfb the window's first paint after a key can lag)."""
            geo = dict(
                line.split("=", 1) for line in xdotool("getwindowgeometry", "--shell", wid).splitlines()
            )
            x, y, w, h = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            grab = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "x11grab"]
            grab += ["-video_size", f"{w}x{h}", "-i", f"{display}+{x},{y}", "-frames:v", "1", str(shot)]
            subprocess.run(grab, check=True, timeout=30)
            image = cv2.imread(str(shot))
            assert image is not None and w > h, "two tiles side by side"
            person = np.abs(image.astype(np.int16) - np.array(PERSON_BGR, np.int16)).max(axis=2) <= 40
            counts[:] = [int(person[:, : w // 2].sum()), int(person[:, w // 2 :].sum())]
            return min(counts) > 100

        deadline = time.monotonic() + 10
        while not boxes_in_both_tiles():
            assert time.monotonic() < deadline, f"boxes in both tiles: {counts} person-colour pixels"
            time.sleep(0.5)
        xdotool("key", "--window", wid, "space")
        xdotool("key", "--window", wid, "q")
        assert run.finish(timeout=60) == 0, run.stderr
    finally:
        run.kill()


def test_torch_path_takes_several_sources_in_one_batch(clips, tmp_path, capsys):
    """Ultralytics' backend (random weights: the mechanics only) batches frames of equal size."""
    js = tmp_path / "all.jsonl"
    argv = [
        "run",
        str(clips["sample"]),
        str(clips["sample"]),
        "--model",
        "yolo11n.yaml",
        "--backend",
        "torch",
    ]
    assert main([*argv, "--conf", "0.01", "--max-frames", "4", "--json", str(js)]) == 0, (
        capsys.readouterr().err
    )
    assert Counter(r["source"] for r in frames_of(read_jsonl(js))) == {"sample": 4, "sample-2": 4}
