"""`detector batch`: real model on real clips, local processes and Ray, failures, Ctrl-C and resume.

About 2 minutes on 2 cores (most of it the model on ~500 frames); the input/plan tests take < 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, decode, write_clip

from detector.batch import Job, check_outputs, collect_inputs, count_video_frames, plan_jobs
from detector.cli import main
from detector.errors import UserError

CLIPS = ("book.mkv", "person-bicycle-car-detection.gif", "bottle-detection.mp4")
NAMES = (CLIPS[1], CLIPS[0], CLIPS[2])  # resume test order: the gif, then book.mkv (interrupted)
MAX_FRAMES = 40  # per file, in batch and in the reference `detector run` alike


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def latest(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in manifest(out)}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_detections(got: list[dict], want: list[dict]) -> None:
    assert [r["frame"] for r in got] == [r["frame"] for r in want]
    for g, w in zip(got, want, strict=True):
        gd, wd = g["detections"], w["detections"]
        assert [d["class_name"] for d in gd] == [d["class_name"] for d in wd], f"frame {g['frame']}"
        if gd:
            boxes_g = np.array([d["xyxy"] for d in gd])
            boxes_w = np.array([d["xyxy"] for d in wd])
            assert np.abs(boxes_g - boxes_w).max() <= 0.5, f"frame {g['frame']}"


def ray_processes() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,comm=,args="], capture_output=True, text=True).stdout
    return {
        int(line.split()[0])
        for line in out.splitlines()
        if any(name in line for name in ("raylet", "gcs_server", "ray::"))
    }


def batch_cmd(model_path: Path, out: Path, *inputs: Path | str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "detector",
        "batch",
        *map(str, inputs),
        "--output-dir",
        str(out),
        "--model",
        str(model_path),
        *extra,
    ]


@pytest.fixture(scope="module")
def clips(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The three real clips with a corrupt 'video' (a text file named .mp4) in the middle."""
    broken = tmp_path_factory.mktemp("broken") / "broken.mp4"
    broken.write_text("this is not a video\n")
    return [videos_dir / CLIPS[0], broken, videos_dir / CLIPS[1], videos_dir / CLIPS[2]]


@pytest.fixture(scope="module")
def reference(model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`detector run` on each clip, one at a time: what every batch backend must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    refs = {}
    for name in CLIPS:
        js = out / f"{name}.jsonl"
        argv = ["run", str(videos_dir / name), "--model", str(model_path), "--json", str(js)]
        assert main([*argv, "--max-frames", str(MAX_FRAMES)]) == 0
        refs[name] = jsonl(js)
    return refs


def check_batch_outputs(out: Path, reference: dict) -> None:
    rec = latest(out)
    assert rec["broken.mp4"]["status"] == "failed"
    assert "not a video" in rec["broken.mp4"]["error"]
    for name in CLIPS:
        r = rec[name]
        stem = Path(name).stem
        assert r["status"] == "done", r
        assert r["frames"] == MAX_FRAMES and r["error"] is None
        assert r["outputs"][:2] == [str(out / f"{stem}.mp4"), str(out / f"{stem}.jsonl")]
        assert_same_detections(jsonl(out / f"{stem}.jsonl"), reference[name])
        _, n, _, _, codec = decode(out / f"{stem}.mp4")
        assert (n, codec) == (MAX_FRAMES, "h264")


@pytest.mark.model
def test_local_batch_matches_run_and_contains_a_corrupt_input(model_path, clips, reference, tmp_path, capfd):
    out = tmp_path / "out"
    argv = ["batch", *map(str, clips), "-d", str(out), "--model", str(model_path), "--workers", "2"]
    code = main([*argv, "--max-frames", str(MAX_FRAMES), "--report"])
    _, err = capfd.readouterr()
    assert code == 3, err
    check_batch_outputs(out, reference)
    assert len(manifest(out)) == 4
    assert "[w1] start" in err and "[w2] start" in err, "each worker says which file it is on"
    assert "batch: 4/4 files" in err and "3 done, 1 failed, 0 skipped of 4" in err
    report = json.loads((out / "book.report.json").read_text())
    assert report["frames"]["processed"] == MAX_FRAMES, "--report: the run report of each input"
    assert latest(out)["book.mkv"]["outputs"][-1] == str(out / "book.report.json")


@pytest.mark.model
def test_ray_batch_matches_run_and_leaves_no_ray_processes(model_path, clips, reference, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
    before = ray_processes()
    out = tmp_path / "out"
    extra = ("--backend", "ray", "--workers", "2", "--max-frames", str(MAX_FRAMES))
    proc = subprocess.run(
        batch_cmd(model_path, out, *clips, extra=extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    check_batch_outputs(out, reference)
    time.sleep(1.0)
    assert not (ray_processes() - before), "the local Ray runtime was not shut down"


@pytest.mark.model
def test_ctrl_c_then_rerun_redoes_only_unfinished(model_path, videos_dir, tmp_path):
    out = tmp_path / "out"
    gif, book, bottle = (videos_dir / n for n in NAMES)
    cmd = batch_cmd(model_path, out, gif, book, bottle, extra=("--workers", "1", "--max-frames", "100"))
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "book.jsonl").is_file() or not (out / "book.jsonl").read_bytes().count(b"\n"):
            assert proc.poll() is None and time.monotonic() < deadline, "book.mkv never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err
    rec = latest(out)
    assert rec["person-bicycle-car-detection.gif"]["status"] == "done"
    assert rec["book.mkv"]["status"] == "failed" and rec["book.mkv"]["error"] == "interrupted"
    assert rec["book.mkv"]["frames"] < 100
    assert "bottle-detection.mp4" not in rec, "never started: no line"
    gif_mtime = (out / "person-bicycle-car-detection.mp4").stat().st_mtime_ns

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rec = latest(out)
    assert [rec[n]["status"] for n in NAMES] == ["skipped", "done", "done"]
    assert (out / "person-bicycle-car-detection.mp4").stat().st_mtime_ns == gif_mtime
    for stem in ("book", "bottle-detection"):
        assert len(jsonl(out / f"{stem}.jsonl")) == 100
        assert decode(out / f"{stem}.mp4")[1] == 100

    # a 'done' input whose output was cut short is redone; the others stay skipped
    gif_json = out / "person-bicycle-car-detection.jsonl"
    gif_json.write_bytes(gif_json.read_bytes()[:2000])
    book_mtime = (out / "book.mp4").stat().st_mtime_ns
    third = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "redoing person-bicycle-car-detection.gif: person-bicycle-car-detection.jsonl has" in third.stderr
    rec = latest(out)
    assert [rec[n]["status"] for n in NAMES] == ["done", "skipped", "skipped"]
    assert len(jsonl(gif_json)) == 41
    assert (out / "book.mp4").stat().st_mtime_ns == book_mtime
    assert len(manifest(out)) == 2 + 3 + 3


# -- inputs, names, checks and usage errors (no model) ---------------------------------------------------


def test_inputs_from_files_folders_and_globs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/x.mp4", "a/deep/y.MKV", "a/notes.txt", "a/.hidden.mp4", "b.gif", "c.webm"):
        (tmp_path / rel).write_bytes(b"x")
    out = tmp_path / "a" / "out"
    out.mkdir()
    (out / "x.mp4").write_bytes(b"old output")
    got = collect_inputs(
        [str(tmp_path / "a"), str(tmp_path / "*.gif"), str(tmp_path / "c.webm")], exclude=out
    )
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a/deep/y.MKV", "a/x.mp4", "b.gif", "c.webm"]
    assert collect_inputs([str(tmp_path / "b.gif"), str(tmp_path / "*.gif")]) == [tmp_path / "b.gif"]
    with pytest.raises(UserError, match="not found"):
        collect_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(UserError, match="no video inputs found"):
        collect_inputs([str(tmp_path / "*.avi")])


def test_output_names_are_unique_and_stay_with_their_input(tmp_path):
    inputs = [
        tmp_path / "a" / "clip.mp4",
        tmp_path / "b" / "clip.mp4",
        tmp_path / "Clip.mkv",
        tmp_path / "manifest.mp4",
    ]
    names = [j.name for j in plan_jobs(inputs, tmp_path, {})]
    assert names == ["clip", "clip-2", "Clip-3", "manifest-2"]
    earlier = {str(inputs[1]): {"name": "clip"}}  # b/clip.mp4 got 'clip' in an earlier run
    jobs = plan_jobs(inputs, tmp_path, earlier)
    assert [j.name for j in jobs] == ["clip-2", "clip", "Clip-3", "manifest-2"]
    assert jobs[1].video == tmp_path / "clip.mp4" and jobs[1].json == tmp_path / "clip.jsonl"


def test_truncated_outputs_are_not_complete(tmp_path):
    video = write_clip(tmp_path / "v.mp4", frames=30)
    job = Job(tmp_path / "in.mp4", "v", video, tmp_path / "v.jsonl")
    job.json.write_text("".join(json.dumps({"frame": i, "detections": []}) + "\n" for i in range(30)))
    assert check_outputs(job, 30) is None
    assert check_outputs(job, 31) == "v.jsonl has 30 of 31 frames"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    assert count_video_frames(video) < 30
    assert "v.mp4 has" in (check_outputs(job, 30) or "")
    job.json.write_text(job.json.read_text()[:-30])  # a torn last line
    assert check_outputs(job, 30) == "v.jsonl has 29 of 30 frames"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["batch", "{tmp}/nothing-here", "-d", "{tmp}/out"], "input {tmp}/nothing-here not found"),
        (["batch", "{tmp}/empty", "-d", "{tmp}/out"], "no video inputs found"),
        (["batch", "{tmp}/v.mp4", "-d", "{tmp}/file.txt"], "is a file; give a folder"),
        (["batch", "{tmp}/empty"], "--output-dir"),
        (["batch", "{tmp}/empty", "-d", "{tmp}/out", "--workers", "0"], "must be at least 1"),
        (["batch", "{tmp}/empty", "-d", "{tmp}/out", "--ray-address", "auto"], "need --backend ray"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "v.mp4").write_bytes(b"x")
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("detector: error: ") and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err


def test_ray_missing_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    (tmp_path / "v.mp4").write_bytes(b"x")
    code = main(["batch", str(tmp_path / "v.mp4"), "-d", str(tmp_path / "out"), "--backend", "ray"])
    assert code == 2
    assert capsys.readouterr().err == "detector: error: ray is not installed; pip install -e '.[ray]'\n"
