"""The ``--show`` window on a real X server (Xvfb), driven with real key presses (xdotool).

CI starts ``Xvfb :97`` and exports ``DETECTOR_TEST_DISPLAY=:97`` (see .ci/run). Locally::

    apt-get install -y xvfb xdotool x11-utils && Xvfb :97 -screen 0 1280x800x24 -noreset &
    DETECTOR_TEST_DISPLAY=:97 pytest tests/test_display.py

One run of the real console script: space pauses (no frame is written while paused), the screen
then shows the annotated frame 1:1 (panel, boxes), s saves that frame as a PNG next to the
output, f hides the panel, q quits with the outputs finalized. Runtime: about 10 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from detector_process import DetectorProcess
from streaming import ffmpeg_exe

pytestmark = [pytest.mark.display, pytest.mark.model]

Image = npt.NDArray[np.uint8]
PERSON_BGR = (255, 42, 4)  # class 0 in the overlay's (Ultralytics') palette


@pytest.fixture(scope="module")
def display() -> str:
    name = os.environ.get("DETECTOR_TEST_DISPLAY")
    if not name:
        pytest.skip("DETECTOR_TEST_DISPLAY is not set (CI starts Xvfb :97 and sets it; see .ci/run)")
    for tool in ("xdotool", "xdpyinfo"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"DETECTOR_TEST_DISPLAY is set but {tool} is missing (apt-get install xdotool x11-utils)"
            )
    probe = subprocess.run(["xdpyinfo", "-display", name], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.fail(f"DETECTOR_TEST_DISPLAY={name} but no X server answers there")
    return name


class Window(DetectorProcess):
    """The detector process and its window, seen and poked from outside like a user would."""

    def __init__(self, display: str, clip: Path, model: Path, folder: Path) -> None:
        self.display = display
        env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
        env.update(DISPLAY=display, PYTHONUNBUFFERED="1")
        cmd = ["detector", "run", str(clip), "--model", str(model), "--show"]
        cmd += ["--json", str(folder / "out.jsonl"), "--output", str(folder / "out.mp4")]
        super().__init__(cmd, folder, env)
        self.id = ""

    def xdotool(self, *args: str) -> str:
        env = {**os.environ, "DISPLAY": self.display}
        done = subprocess.run(["xdotool", *args], capture_output=True, text=True, env=env, timeout=10)
        return done.stdout.strip()

    def find(self) -> None:
        def found() -> bool:
            ids = self.xdotool("search", "--onlyvisible", "--name", "^detector - ").split()
            self.id = ids[0] if ids else ""
            return bool(ids)

        self.wait_until("window", found)

    def geometry(self) -> tuple[int, int, int, int]:
        shell = dict(
            line.split("=", 1) for line in self.xdotool("getwindowgeometry", "--shell", self.id).splitlines()
        )
        return int(shell["X"]), int(shell["Y"]), int(shell["WIDTH"]), int(shell["HEIGHT"])

    def key(self, name: str) -> None:
        self.xdotool("key", "--window", self.id, name)

    def screenshot(self, path: Path) -> Image:
        """The window's part of the screen, grabbed from the X server (what a user sees)."""
        x, y, w, h = self.geometry()
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "x11grab"]
        cmd += ["-video_size", f"{w}x{h}", "-i", f"{self.display}+{x},{y}", "-frames:v", "1", str(path)]
        subprocess.run(cmd, check=True, timeout=30)
        shot = cv2.imread(str(path))
        assert shot is not None and shot.shape[:2] == (h, w)
        return shot

    def paused(self) -> int:
        return sum(1 for line in self.stderr.splitlines() if line == "paused")


@pytest.fixture
def window(display: str, sample_clip: Path, model_path: Path, tmp_path: Path) -> Iterator[Window]:
    win = Window(display, sample_clip, model_path, tmp_path)
    yield win
    if win.proc.poll() is None:
        win.proc.kill()
        win.proc.wait()


def source_frame(clip: Path, index: int) -> Image:
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise IndexError(index)


def diff(a: Image, b: Image) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def colour_pixels(image: Image, bgr: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(image.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2) <= tol).sum())


def test_window_keys_pause_snapshot_panel_and_quit(window, sample_clip, tmp_path):
    win = window
    win.find()
    win.wait_until("3 frames", lambda: len(win.frames()) >= 3)

    # space: pause. The frame on screen is the last one written; nothing more is written while paused.
    win.key("space")
    win.wait_until("'paused'", lambda: win.paused() == 1, timeout=10)
    held = len(win.frames())
    time.sleep(1.0)
    assert len(win.frames()) == held, "frames were still written while paused"
    shown = win.frames()[-1]["frame"]
    assert win.geometry()[2:] == (640, 360), "the window does not show the frame 1:1"
    shot = win.screenshot(tmp_path / "paused.png")

    # s: the annotated frame on screen is saved as a PNG next to the output video.
    win.key("s")
    win.wait_until("snapshot", lambda: "snapshot saved" in win.stderr, timeout=10)  # the PNG is complete
    (snap_path,) = tmp_path.glob("snapshot-*.png")
    assert re.search(rf"frame{shown:06d}\.png$", snap_path.name), snap_path.name
    snap = cv2.imread(str(snap_path))
    assert snap is not None and snap.shape == (360, 640, 3)

    # What the screen shows is that annotated frame (all but the PAUSED mark, bottom left) ...
    off = diff(shot[:300], snap[:300])
    assert off < 2.0, f"the window differs from the annotated frame by {off:.1f} levels on average"
    raw = source_frame(sample_clip, shown)
    assert diff(snap, raw) > 1.0, "the snapshot is the raw frame, not the annotated one"
    # ... with the panel in the top-left corner (a darkened box with green FPS text) ...
    panel, raw_panel = shot[4:20, 4:48], raw[4:20, 4:48]
    assert diff(panel, raw_panel) > 30, "no panel in the window's top-left corner"
    assert colour_pixels(panel, (120, 255, 120), 60) >= 10
    # ... and boxes in the person colour that the source frame does not have.
    boxes, raw_boxes = colour_pixels(shot, PERSON_BGR), colour_pixels(raw, PERSON_BGR)
    assert boxes >= 500 and boxes > 4 * raw_boxes, (boxes, raw_boxes)

    # f: hide the panel (from the next frame on); space: resume, a few frames, pause again.
    win.key("f")
    win.key("space")
    win.wait_until("'resumed'", lambda: "resumed" in win.stderr, timeout=10)
    win.wait_until("frames after resuming", lambda: len(win.frames()) >= held + 5)
    win.key("space")
    win.wait_until("second 'paused'", lambda: win.paused() == 2, timeout=10)
    time.sleep(0.2)
    shown2 = win.frames()[-1]["frame"]
    assert shown2 > shown
    shot2 = win.screenshot(tmp_path / "no-panel.png")
    raw2 = source_frame(sample_clip, shown2)
    assert diff(shot2[4:20, 4:48], raw2[4:20, 4:48]) < 5, "the panel is still shown after f"
    assert colour_pixels(shot2, PERSON_BGR) >= 500, "boxes went away with the panel"

    # q (while paused): quit; outputs are finalized.
    win.key("q")
    code = win.proc.wait(30)
    err = win.stderr
    assert code == 0, err
    assert "Traceback" not in err and "quit requested" in err
    frames = win.frames()
    assert frames[-1]["frame"] == shown2 and len(frames) < 240, "the run went on after q"
    with av.open(str(win.mp4)) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(frames)
    assert list(tmp_path.glob("snapshot-*.png")) == [snap_path]
