"""`detector run` end to end with the real model on real footage, through main() and the console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT, decode, frame_times, write_clip

from detector.cli import main

pytestmark = pytest.mark.model


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def classes_seen(records: list[dict]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for r in records:
        for d in r.get("detections", []):
            seen[d["class_name"]] = seen.get(d["class_name"], 0) + 1
    return seen


def test_people_clip_yields_persons(capsys, model_path, videos_dir, tmp_path):
    out = tmp_path / "people.jsonl"
    code, _, err = run_main(
        capsys,
        "run",
        str(videos_dir / "one-by-one-person-detection.mp4"),
        "--model",
        str(model_path),
        "--json",
        str(out),
        "--vid-stride",
        "10",
    )
    assert code == 0, err
    recs = jsonl(out)
    assert len(recs) == 140  # 1394 frames, every 10th
    assert [r["frame"] for r in recs[:3]] == [0, 10, 20]
    frames_with_person = sum(1 for r in recs if any(d["class_name"] == "person" for d in r["detections"]))
    assert frames_with_person >= 40, f"persons in only {frames_with_person}/140 frames"
    assert "processed 140" in err and "person" in err.split("detections")[-1]


def test_bottle_clip_yields_bottles_and_keeps_179_6_fps(capsys, model_path, videos_dir, tmp_path):
    video, js = tmp_path / "bottles.mp4", tmp_path / "bottles.jsonl"
    code, _, err = run_main(
        capsys,
        "run",
        str(videos_dir / "bottle-detection.mp4"),
        "--model",
        str(model_path),
        "--output",
        str(video),
        "--json",
        str(js),
        "--max-frames",
        "90",
    )
    assert code == 0, err
    assert classes_seen(jsonl(js)).get("bottle", 0) >= 30
    _, n, rate, size, codec = decode(video)
    assert (n, rate, size, codec) == (90, Fraction(179, 6), (640, 360), "h264")
    # frame pts follow the source's real rate, not a rounded 30 fps
    assert jsonl(js)[89]["pts"] == pytest.approx(89 * 6 / 179, abs=1e-3)


def test_gif_yields_person_and_car(capsys, model_path, videos_dir, tmp_path):
    video, js = tmp_path / "street.mp4", tmp_path / "street.jsonl"
    code, _, err = run_main(
        capsys,
        "run",
        str(videos_dir / "person-bicycle-car-detection.gif"),
        "--model",
        str(model_path),
        "--output",
        str(video),
        "--json",
        str(js),
    )
    assert code == 0, err
    seen = classes_seen(jsonl(js))
    assert seen.get("person", 0) >= 10 and seen.get("car", 0) >= 10, seen
    _, n, _, size, codec = decode(video)
    assert (n, size, codec) == (41, (480, 270), "h264")
    source, ours = frame_times(videos_dir / "person-bicycle-car-detection.gif"), frame_times(video)
    assert max(abs(a - b) for a, b in zip(source, ours, strict=True)) < 0.001, (
        "GIF delays (8 or 9 cs) are kept"
    )


def test_mkv_with_lying_header_gives_109_frames(capsys, model_path, videos_dir, tmp_path):
    video, js = tmp_path / "book.mp4", tmp_path / "book.jsonl"
    code, _, err = run_main(
        capsys,
        "run",
        str(videos_dir / "book.mkv"),
        "--model",
        str(model_path),
        "--output",
        str(video),
        "--json",
        str(js),
    )
    assert code == 0, err
    recs = jsonl(js)
    assert len(recs) == 109 and recs[-1]["frame"] == 108
    _, n, rate, size, codec = decode(video)
    assert (n, rate, size, codec) == (109, Fraction(30), (640, 480), "h264")
    assert classes_seen(recs).get("person", 0) >= 50


def test_image_folder_to_video(capsys, model_path, assets_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name in enumerate(["bus.jpg", "zidane.jpg", "bus.jpg"]):
        shutil.copy(assets_dir / name, folder / f"img{i + 1}.jpg")
    video, js = tmp_path / "imgs.mp4", tmp_path / "imgs.jsonl"
    code, _, err = run_main(
        capsys, "run", str(folder), "--model", str(model_path), "--output", str(video), "--json", str(js)
    )
    assert code == 0, err
    recs = jsonl(js)
    assert [r["frame"] for r in recs] == [0, 1, 2]
    first = [d["class_name"] for d in recs[0]["detections"]]
    assert first.count("person") >= 3 and "bus" in first
    _, n, rate, size, _ = decode(video)
    assert (n, rate, size) == (3, Fraction(30), (810, 1080))


def test_classes_filter_by_name(capsys, model_path, assets_dir, tmp_path):
    js = tmp_path / "bus.jsonl"
    code, _, err = run_main(
        capsys,
        "run",
        str(assets_dir / "bus.jpg"),
        "--model",
        str(model_path),
        "--json",
        str(js),
        "--classes",
        "bus",
    )
    assert code == 0, err
    assert [d["class_name"] for d in jsonl(js)[0]["detections"]] == ["bus"]


def test_json_to_stdout_keeps_stdout_clean(capsys, model_path, tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=5)
    code, out, err = run_main(capsys, "run", str(clip), "--model", str(model_path), "--json", "-")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 5 and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))


def test_readme_main_command_through_the_console_script(model_path, sample_clip, tmp_path):
    """`detector run videos/sample.mp4 --output videos/out/sample.mp4`, as the README says, in a folder
    of its own (tests never write into the checkout: videos/out/sample.mp4 would make the README's
    first command say "exists; pass --overwrite")."""
    exe = shutil.which("detector")
    assert exe, "the console script is installed by pip install -e ."
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "sample.mp4").symlink_to(sample_clip)
    out = tmp_path / "videos" / "out" / "sample.mp4"
    env = {**os.environ, "DETECTOR_MODEL": str(model_path), "YOLO_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    proc = subprocess.run(
        [exe, "run", "videos/sample.mp4", "--output", "videos/out/sample.mp4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    _, n_in, rate_in, size_in, _ = decode(sample_clip)
    _, n, rate, size, codec = decode(out)
    assert (n, rate, size, codec) == (n_in, rate_in, size_in, "h264")
    assert "person" in proc.stderr.split("detections")[-1], "the sample clip shows people"


def test_python_dash_m_and_help_show_defaults():
    proc = subprocess.run(
        [sys.executable, "-m", "detector", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for text in ("default: 0.25", "default: 0.7", "default: 640", "bundled YOLO11n", "--output", "--json"):
        assert text in proc.stdout


def _vfr_clip(path: Path) -> Path:
    """What a phone records: 2 s at 30 fps, then 2 s at 10 fps (ffmpeg's setpts), with 4 s of audio."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    pts = "if(lt(N,60),N/30,2+(N-60)/10)/TB"
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
        "-frames:v", "80", "-vf", f"setpts='{pts}'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=60)
    return path


def test_variable_frame_rate_keeps_source_timing_and_audio_sync(capsys, model_path, tmp_path):
    clip = _vfr_clip(tmp_path / "phone.mp4")
    source = frame_times(clip)
    assert len(source) == 80 and source[-1] == pytest.approx(3.9, abs=0.01), "the clip is variable frame rate"
    out = tmp_path / "out.mp4"
    code, _, err = run_main(capsys, "run", str(clip), "--model", str(model_path), "--output", str(out))
    assert code == 0, err
    ours = frame_times(out)
    assert len(ours) == 80
    worst = max(abs(a - b) for a, b in zip(source, ours, strict=True))
    assert worst < 1 / 30, f"an output frame is {worst:.3f} s from its source time"
    import av

    with av.open(str(out)) as c:
        video_s = float(c.streams.video[0].duration * c.streams.video[0].time_base)
        audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert 3.9 < video_s < 4.05, video_s  # the last frame starts at 3.9 s, as in the source
    assert audio_s == pytest.approx(video_s, abs=0.05), (video_s, audio_s)
