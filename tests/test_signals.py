"""Signals against the real console script on real footage: Ctrl-C, SIGTERM, SIGKILL, a second Ctrl-C.

Every run processes one-by-one-person-detection.mp4 (10 fps) with the real model into an MP4 and a
JSONL, and is signalled once the JSONL shows it is well under way. Runtime: ~10 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import ROOT, FakeDetector, write_clip

from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.signals import FRAME_GRACE_S, interrupts
from detector.sources import open_source
from detector.stages.overlay import OverlayStage
from detector.types import FrameResult

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"


def _default_sigint() -> None:
    """Python only installs its Ctrl-C handler when SIGINT is not ignored; make sure it is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def frame_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSONL lines that are frames (not events); a torn last line is ignored."""
    data = path.read_bytes() if path.exists() else b""
    complete = data[: data.rfind(b"\n") + 1]
    records = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return [r for r in records if "frame" in r and "event" not in r]


def decode_tolerant(path: Path) -> tuple[int, float]:
    """Frames that decode before the first broken packet, and the end time (s) of the last one."""
    frames, end = 0, 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        try:
            for packet in c.demux(stream):
                for vf in packet.decode():
                    frames += 1
                    step = float(vf.duration * vf.time_base) if vf.duration and vf.time_base else 0.1
                    end = max(end, float(vf.time or 0.0) + step)
        except av.error.FFmpegError:  # a torn last fragment after SIGKILL
            pass
    return frames, end


class Run:
    """``detector run CLIP --output out.mp4 --json out.jsonl`` as a child process, stderr to a file."""

    def __init__(self, tmp_path: Path, argv: list[str]) -> None:
        self.out, self.js, self.err = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "stderr.txt"
        env = {**os.environ, "YOLO_OFFLINE": "1"}
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "--output", str(self.out), "--json", str(self.js)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=tmp_path,
                preexec_fn=_default_sigint,
            )

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"exited {self.proc.returncode} before {what}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {what} within {timeout:.0f} s:\n{self.stderr()}")
            time.sleep(0.05)

    def wait_lines(self, n: int) -> None:
        self.wait_for(f"{n} JSONL lines", lambda: len(frame_lines(self.js)) >= n)

    def finish(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running {timeout:.0f} s after the signal:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


@pytest.fixture
def cli_run(tmp_path: Path, model_path: Path, videos_dir: Path) -> Run:
    exe = shutil.which("detector")
    assert exe, "the console script is installed by pip install -e ."
    return Run(tmp_path, [exe, "run", str(videos_dir / CLIP), "--model", str(model_path)])


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_signal_closes_outputs_in_step(cli_run: Run, sig: int, code: int, word: str) -> None:
    cli_run.wait_lines(10)
    cli_run.proc.send_signal(sig)
    assert cli_run.finish() == code, cli_run.stderr()
    err = cli_run.stderr()
    assert "Traceback" not in err
    assert f"detector: {word}; outputs closed" in err
    lines = frame_lines(cli_run.js)
    assert f"processed {len(lines)}," in err, err  # the summary counts exactly what was written
    assert [r["frame"] for r in lines] == list(range(len(lines)))
    assert len(lines) < 1394, "stopped early, not at the end of the clip"
    frames, end = decode_tolerant(cli_run.out)
    assert frames == len(lines), f"MP4 has {frames} frames, JSONL {len(lines)} lines"
    assert end == pytest.approx(len(lines) / 10, abs=0.15)
    assert not list(cli_run.out.parent.glob(".out.mp4.*")), "no temp file from the faststart remux"


def test_sigkill_leaves_playable_video_and_whole_lines(cli_run: Run) -> None:
    cli_run.wait_lines(40)  # ~4 s of video: fragments of 1 s have reached the disk
    cli_run.proc.kill()
    assert cli_run.finish() == -signal.SIGKILL
    frames, end = decode_tolerant(cli_run.out)
    assert frames >= 10 and end >= 1.0, f"only {frames} frames ({end:.2f} s) decode after SIGKILL"
    data = cli_run.js.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    records = [json.loads(line) for line in complete]  # every complete line parses
    assert len(records) >= 40
    assert frames <= len(records) + 1, "the video cannot be ahead of the JSONL by more than one frame"


SLOW_CLOSE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import detector.sinks.video as video

    def slow_close(self):
        print("closing slowly", file=sys.stderr, flush=True)
        time.sleep(60)

    video.VideoWriterSink.close = slow_close
    from detector.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_second_ctrl_c_during_slow_shutdown_forces_exit(
    tmp_path: Path, model_path: Path, videos_dir: Path
) -> None:
    """Shutdown is made slow (the video sink's close sleeps 60 s); a second Ctrl-C must not wait for it."""
    script = SLOW_CLOSE.format(root=str(ROOT))
    run = Run(
        tmp_path, [sys.executable, "-c", script, "run", str(videos_dir / CLIP), "--model", str(model_path)]
    )
    run.wait_lines(10)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("a slow close", lambda: "closing slowly" in run.stderr(), timeout=30)
    started = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish(timeout=30) == 130
    assert time.monotonic() - started < 20, "the second Ctrl-C waited for the slow close"


SLOW_FRAME = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import cv2
    import numpy as np
    from detector.stages import overlay

    calls = [0]
    draw = overlay.OverlayStage.annotate

    def slow_annotate(self, scene, detections):
        calls[0] += 1
        if calls[0] == 12:  # what a zone of 100,000 crossing vertices did: minutes in native code
            print("slow frame", file=sys.stderr, flush=True)
            points = np.random.default_rng(0).integers(0, 400, (60000, 1, 2)).astype(np.int32)
            cv2.fillPoly(scene.copy(), [points], (255, 255, 255))
        return draw(self, scene, detections)

    overlay.OverlayStage.annotate = slow_annotate
    from detector.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_slow_frame_in_native_code(
    tmp_path: Path, model_path: Path, videos_dir: Path, presses: int
) -> None:
    """Frame 12 spends minutes inside cv2.fillPoly, where Python cannot run its signal handler. One
    Ctrl-C ends the run FRAME_GRACE_S later, saying why; a second one ends it at once."""
    script = SLOW_FRAME.format(root=str(ROOT))
    argv = [sys.executable, "-c", script, "run", str(videos_dir / CLIP), "--model", str(model_path)]
    run = Run(tmp_path, argv)
    run.wait_for("the slow frame", lambda: "slow frame" in run.stderr(), timeout=60)
    started = time.monotonic()
    for _ in range(presses):
        run.proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    assert run.finish(timeout=30) == 130, run.stderr()
    waited = time.monotonic() - started
    if presses == 1:
        assert FRAME_GRACE_S <= waited < FRAME_GRACE_S + 10, waited
        assert f"a frame took over {FRAME_GRACE_S:g} s to end" in run.stderr()
    else:
        assert waited < FRAME_GRACE_S, f"the second Ctrl-C waited {waited:.1f} s"
    assert len(frame_lines(run.js)) >= 11, "the frames before the slow one are in the JSONL"


class _Recorder:
    def __init__(self, on_write: Callable[[int], None] | None = None) -> None:
        self.frames: list[int] = []
        self.on_write = on_write

    def write(self, result: FrameResult) -> None:
        self.frames.append(result.frame.index)
        if self.on_write is not None:
            self.on_write(result.frame.index)

    def event(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_a_sink_write_keeps_sinks_in_step(tmp_path: Path, sig: int) -> None:
    """A signal that lands while the first sink writes frame 5 must not cost the second sink that frame.

    This is the window where a real Ctrl-C would leave the JSONL one line ahead of the MP4.
    """

    def kill_at_5(index: int) -> None:
        if index == 5:
            os.kill(os.getpid(), sig)
            np.zeros(1000).sum()  # more bytecode: the handler runs here, inside this write

    first, second = _Recorder(kill_at_5), _Recorder()
    source = open_source(str(write_clip(tmp_path / "c.mp4", frames=30)))
    signals = interrupts()
    assert signals.install()
    try:
        options = PipelineOptions(stop=(signals.stop,))
        pipe = Pipeline.single(source, FakeDetector(), [OverlayStage()], [first, second], options)
        with signals.deferred():
            pipe.run()
        assert signals.signum == sig, "the signal was taken as a stop request"
    finally:
        signals.restore()
    assert first.frames == second.frames == [0, 1, 2, 3, 4, 5]
    assert not pipe.lanes[0].reader._thread.is_alive() and not pipe.inference.thread.is_alive()
