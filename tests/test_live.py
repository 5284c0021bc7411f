"""`detector run` on real live streams: the console script reading ffmpeg's real-time HTTP stream on
loopback (tests/streaming.py), with the real model. Latency stays low and flat, the output's
timeline is the stream's, a lost stream reconnects (with a gap record) or ends with one error line.

No assertion rests on absolute wall-clock limits (2 shared cores): latency is measured against the
run's own per-frame work, durations against times the test takes itself, and waits the code must
make (timeouts, backoff) as lower bounds. The only fixed seconds are hang guards, several times
the expected duration, on every wait.

Runtime: about 45 s (the streams play in real time).
"""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest
from detector_process import DetectorProcess, launched
from streaming import StreamServer, ffmpeg_exe, free_port

pytestmark = pytest.mark.model

HD_SECONDS = 8  # the sample clip, whole
HD_FPS = 30


def headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Detector(DetectorProcess):
    """The real ``detector run`` console script in a subprocess, writing JSONL, MP4 and the run report
    into ``folder``."""

    def __init__(self, source: str, model: Path, folder: Path, *extra: str, outputs: bool = True) -> None:
        cmd = ["detector", "run", source, "--model", str(model), *extra]
        self.report = folder / "report.json"
        if outputs:
            cmd += ["--json", str(folder / "out.jsonl"), "--output", str(folder / "out.mp4")]
            cmd += ["--report", str(self.report), "--overwrite"]
        super().__init__(cmd, folder, headless_env())


@pytest.fixture
def launch(model_path: Path, tmp_path: Path) -> Iterator[Callable[..., Detector]]:
    def make(source: str, *extra: str, outputs: bool = True) -> Detector:
        return Detector(source, model_path, tmp_path, *extra, outputs=outputs)

    yield from launched(make)


@pytest.fixture(scope="session")
def hd_clip(sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 8 s sample clip upscaled to 1280x720 at 30 fps, a keyframe a second (like a camera)."""
    out = tmp_path_factory.mktemp("live") / "sample-720p30.mp4"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-t", str(HD_SECONDS)]
    cmd += ["-i", str(sample_clip), "-vf", f"scale=1280:720,fps={HD_FPS}"]
    cmd += [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        str(HD_FPS),
        "-pix_fmt",
        "yuv420p",
        "-an",
        str(out),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    return out


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("detector: error:")]


def mp4_duration_and_frames(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return float(s.duration * s.time_base), n


def test_hd_stream_in_real_time_keeps_latency_low_and_the_streams_timeline(launch, hd_clip):
    """720p30 for 10 s: latency stays within a few frames' work and does not grow, and the output
    is as long as the stream was watched."""
    with StreamServer(hd_clip) as server:
        # No --show and no DISPLAY: a headless run, no window, exit 0 at the end of the stream.
        run = launch(server.url, "--reconnect-max", "0", "--stall-timeout", "3")
        first_line_at = None
        while server.running:  # the server exits once it has sent the whole clip
            if first_line_at is None and run.jsonl.exists() and run.jsonl.stat().st_size:
                first_line_at = time.monotonic()
            if time.monotonic() - run.started > 6 * HD_SECONDS:
                pytest.fail(f"hang: the {HD_SECONDS} s stream still plays after {6 * HD_SECONDS} s")
            time.sleep(0.02)
        stream_ended_at = time.monotonic()
        code = run.finish(timeout=30)  # hang guard; ending at EOF, not by the stall timeout, is code 0
    err = run.stderr
    assert code == 0, err
    assert error_lines(err) == []
    assert first_line_at is not None, "no frame was processed while the stream played"

    frames = run.frames()
    indices = [r["frame"] for r in frames]
    assert indices == sorted(set(indices)), "frames out of order or repeated"
    # Every frame of the stream was decoded (those not processed were dropped for being stale),
    # including the first second that FFmpeg read while probing the stream.
    assert indices[-1] + 1 >= HD_SECONDS * HD_FPS - 10, f"last frame index {indices[-1]}"
    assert len(frames) >= 30, f"only {len(frames)} frames processed in {HD_SECONDS} s"

    # Latency against the run's own work per frame (its report): only the newest frame is kept, so
    # a frame waits for at most the one in the model, then takes its own turn (about 1x here). A
    # queue of stale frames adds a whole frame's work per frame held, and a growing one grows.
    stage_ms = json.loads(run.report.read_text())["stage_ms"]
    work = sum(stage_ms[k]["mean"] for k in ("inference", "stages", "write"))
    latency = [r["latency_ms"] for r in frames]
    third = len(latency) // 3
    p95 = sorted(latency)[int(0.95 * (len(latency) - 1))]
    first, last = statistics.median(latency[:third]), statistics.median(latency[-third:])
    print(f"latency median {statistics.median(latency):.0f}, p95 {p95:.0f} ms, thirds {first:.0f} -> "
          f"{last:.0f} ms; work {work:.0f} ms a frame")  # fmt: skip
    assert statistics.median(latency) <= 3 * work, f"median latency against {work:.0f} ms of work"
    assert p95 <= 6 * work, f"p95 latency {p95:.0f} ms, {work:.0f} ms of work per frame"
    assert last <= first + 2 * work, (
        f"latency grows: median {first:.0f} ms in the first third, {last:.0f} last"
    )

    # Live timestamps come from capture time, so the video lasts as long as the stream was watched
    # (from the first processed frame to the stream's end), whatever the number of frames dropped.
    duration, n = mp4_duration_and_frames(run.mp4)
    assert n == len(frames)
    watched = stream_ended_at - first_line_at
    assert duration == pytest.approx(watched, rel=0.1), (
        f"video {duration:.2f} s, stream watched {watched:.2f} s"
    )
    assert frames[-1]["pts"] == pytest.approx(duration, abs=0.5)


def test_reconnects_when_the_server_comes_back(launch, sample_clip):
    """Server killed mid-stream, back 2 s later: the run resumes and records the gap, then gives up."""
    with StreamServer(sample_clip) as server:
        run = launch(server.url, "--reconnect-max", "3", "--stall-timeout", "2")
        run.wait_until("10 frames", lambda: len(run.frames()) >= 10)
        stopped_at = time.monotonic()
        server.stop()
        time.sleep(2.0)
        server.duration = 3.0  # the second life of the stream is short; then it is gone for good
        server.restart()
        run.wait_until("frames after the reconnect", lambda: any("event" in r for r in run.records()))
        resumed_seen_at = time.monotonic()
        server.wait(timeout=20)
        ended_at = time.monotonic()
        code = run.finish(timeout=30)  # hang guard
        exited_after = time.monotonic() - ended_at
    err = run.stderr
    records = run.records()
    gaps = [i for i, r in enumerate(records) if r.get("event") == "gap"]
    assert len(gaps) == 1, records
    gap = records[gaps[0]]
    before = [r for r in records[: gaps[0]] if "event" not in r]
    after = [r for r in records[gaps[0] + 1 :] if "event" not in r]
    assert len(before) >= 10
    assert len(after) >= 5, f"only {len(after)} frames after the reconnect:\n{err}"
    assert after[0]["frame"] > before[-1]["frame"], "frame numbers restart after a reconnect"
    assert gap["after_frame"] >= before[-1]["frame"]
    # The server was away 2 s (a sleep), and the gap ends before the test saw the frames after it.
    assert 1.5 <= gap["seconds"] <= resumed_seen_at - stopped_at, gap
    assert gap["to_pts"] - gap["from_pts"] == pytest.approx(gap["seconds"], abs=0.5)
    assert 2 <= gap["attempts"] <= 3
    assert after[0]["pts"] - before[-1]["pts"] >= 2.0
    assert "reconnected after" in err

    # The video keeps the gap as time (no fake frames, no collapsed timeline).
    duration, n = mp4_duration_and_frames(run.mp4)
    assert n == len(before) + len(after)
    assert duration == pytest.approx(after[-1]["pts"] - before[0]["pts"], abs=0.5)

    # The stream's final end: 3 more attempts after 0.5 + 1 + 2 s of backoff, then exit 2, one line.
    assert code == 2, err
    (line,) = error_lines(err)
    assert "could not reconnect after 3 attempts" in line and server.url in line
    assert exited_after >= 0.5 + 1 + 2 - 0.2, f"gave up {exited_after:.1f} s after the end: backoff skipped"


@pytest.mark.parametrize("how", ["killed", "stalled"])
def test_lost_stream_without_restart_exits_2_after_the_attempts(launch, sample_clip, how):
    """The server dies (EOF) or freezes (no data: --stall-timeout fires); nothing comes back."""
    with StreamServer(sample_clip) as server:
        run = launch(server.url, "--reconnect-max", "2", "--stall-timeout", "1")
        run.wait_until("5 frames", lambda: len(run.frames()) >= 5)
        lost_at = time.monotonic()
        if how == "killed":
            server.stop()
        else:
            server.pause()  # SIGSTOP: the connection stays open, silent
        code = run.finish(timeout=30)  # hang guard
        took = time.monotonic() - lost_at
    err = run.stderr
    assert code == 2, err
    (line,) = error_lines(err)
    assert "could not reconnect after 2 attempts" in line and server.url in line
    assert ("no data from" if how == "stalled" else "the stream ended") in err
    # what it must wait: 0.5 + 1 s of backoff, after noticing a stall for 1 s (--stall-timeout)
    assert took >= 0.5 + 1 + (1 if how == "stalled" else 0) - 0.2, f"gave up after {took:.1f} s"
    _, n = mp4_duration_and_frames(run.mp4)  # the outputs up to the loss are finalized
    assert n == len(run.frames()) >= 5
    assert not any("event" in r for r in run.records())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{port}/live", "could not connect to http://127.0.0.1:{port}/live"),
        ("foo://x", "URL scheme 'foo' is not supported"),
        ("http://", "has no host"),
    ],
)
def test_dead_or_malformed_url_exits_2_at_once(launch, url, message):
    """One line and no reconnect attempts (each would log a line first); nothing written."""
    port = free_port()  # nothing listens there
    run = launch(url.format(port=port))
    code = run.finish(timeout=30)  # hang guard
    assert code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines == error_lines(run.stderr), lines
    assert message.format(port=port) in lines[0]
    assert not run.jsonl.exists() and not run.mp4.exists()


def test_server_that_never_answers_times_out(launch, tmp_path):
    """Accepts the connection, then silence: connect_timeout ends the wait with one line."""
    config = tmp_path / "live.yaml"
    config.write_text("connect_timeout: 1.5\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live"
        run = launch(url, "--config", str(config))
        code = run.finish(timeout=30)  # hang guard
    took = time.monotonic() - run.started
    assert code == 2
    (line,) = error_lines(run.stderr)
    assert f"could not connect to {url} within 1.5 s" in line
    assert took >= 1.5, f"gave up after {took:.1f} s, before its timeout"
    # that it is this timeout and not the default one: test_bad_inputs.py::test_silent_server_times_out


def test_ctrl_c_while_connecting_exits_130_at_once(launch, tmp_path):
    """The server accepts, then says nothing; Ctrl-C during the 60 s connect wait ends the run there,
    as an interrupt (130), not as a failed connect (2) once the timeout is over."""
    config = tmp_path / "live.yaml"
    config.write_text("connect_timeout: 60\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        silent.settimeout(60)  # hang guard: the model loads first
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live"
        run = launch(url, "--config", str(config))
        connection, _ = silent.accept()
        with connection:
            time.sleep(0.5)  # inside FFmpeg's wait for the reply
            run.proc.send_signal(signal.SIGINT)
            pressed = time.monotonic()
            code = run.finish(timeout=30)  # hang guard
            took = time.monotonic() - pressed
    assert code == 130, run.stderr
    assert "detector: interrupted; outputs closed" in run.stderr
    assert took < 3, f"exited {took:.1f} s after Ctrl-C"
    assert not run.jsonl.exists() and not run.mp4.exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hls_vod(tmp_path: Path) -> Iterator[str]:
    """A 4 s, 10 fps HLS VOD (1 s segments, ``#EXT-X-ENDLIST``) served by http.server on loopback."""
    folder = tmp_path / "hls"
    folder.mkdir()
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10",
    ]
    cmd += [
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-g",
        "10",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
    ]
    subprocess.run([*cmd, str(folder / "vod.m3u8")], check=True, timeout=60)
    assert "#EXT-X-ENDLIST" in (folder / "vod.m3u8").read_text()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/vod.m3u8"
    finally:
        server.shutdown()
        server.server_close()


def test_hls_vod_ends_like_a_file(launch, hls_vod):
    """Its 40 frames once, in order, then exit 0 (it used to replay from the start at every end)."""
    run = launch(hls_vod)
    code = run.finish(timeout=60)  # hang guard: the replaying run never ended
    assert code == 0, run.stderr
    frames = run.frames()
    assert [r["frame"] for r in frames] == list(range(40))
    pts = [r["pts"] for r in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)) and pts[-1] == pytest.approx(3.9, abs=0.01)
    assert "reconnect" not in run.stderr
    assert mp4_duration_and_frames(run.mp4)[1] == 40


def test_show_without_a_display_exits_2_with_one_line(launch, sample_clip):
    run = launch(str(sample_clip), "--show", "-q")
    code = run.finish(timeout=60)
    assert code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines == error_lines(run.stderr), lines
    assert "--show needs a display" in lines[0]
    assert not run.jsonl.exists() and not run.mp4.exists()
