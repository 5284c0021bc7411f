"""The display sink: an OpenCV window with keys.

q / Esc quit (outputs are finalized), space pauses and resumes, s saves a PNG snapshot
of the annotated frame, f toggles the info panel.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.sinks.base import FrameResult

log = logging.getLogger(__name__)

MAX_WINDOW = (1600, 900)  # a 4K source is shown scaled down to fit a common screen
KEY_QUIT = {ord("q"), ord("Q"), 27}
KEY_PAUSE = ord(" ")
KEY_SNAPSHOT = {ord("s"), ord("S")}
KEY_PANEL = {ord("f"), ord("F")}


def display_available() -> bool:
    """True when a window can be opened: a display is set and OpenCV was built with a GUI."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2.getBuildInformation()
    gui = re.search(r"GUI:\s*(\S+)", info)
    return not (gui and gui.group(1).upper() == "NONE")


class WindowSink:
    """Shows annotated frames. Pausing blocks ``write`` (so the run pauses); q/Esc calls ``on_quit``."""

    def __init__(
        self,
        title: str,
        *,
        snapshot_dir: Path,
        on_toggle_panel: Callable[[], None] | None = None,
        on_pause: Callable[[bool], None] | None = None,
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        self.title = f"detector - {title}"
        self.snapshot_dir = snapshot_dir
        self.on_toggle_panel = on_toggle_panel
        self.on_pause = on_pause
        self.on_quit = on_quit
        self.quit_requested = False
        self.paused = False
        self.snapshots: list[Path] = []
        self._created = False
        self._last: FrameResult | None = None

    def _create(self, width: int, height: int) -> None:
        # GUI_NORMAL: no Qt toolbar or status bar, which took space from the picture and shrank it.
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        scale = min(1.0, MAX_WINDOW[0] / width, MAX_WINDOW[1] / height)
        cv2.resizeWindow(self.title, max(1, int(width * scale)), max(1, int(height * scale)))
        self._created = True

    def write(self, result: FrameResult) -> None:
        if not self._created:
            h, w = result.annotated.shape[:2]
            self._create(w, h)
        self._last = result
        cv2.imshow(self.title, result.annotated)
        self._handle(cv2.waitKey(1))
        while self.paused and not self.quit_requested:
            self._handle(cv2.waitKey(50))

    def _handle(self, key: int) -> None:
        if key < 0:
            if self._created and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                log.info("window closed; stopping")
                self._quit()
            return
        key &= 0xFF
        if key in KEY_QUIT:
            log.info("quit requested from the window")
            self._quit()
        elif key == KEY_PAUSE:
            self.paused = not self.paused
            log.info("paused" if self.paused else "resumed")
            if self.on_pause:
                self.on_pause(self.paused)
            if self._last is not None and self.paused:
                self._show_paused(self._last.annotated)
        elif key in KEY_SNAPSHOT and self._last is not None:
            self.snapshot(self._last)
        elif key in KEY_PANEL and self.on_toggle_panel:
            self.on_toggle_panel()

    def _quit(self) -> None:
        self.quit_requested = True
        if self.on_quit is not None:
            self.on_quit()

    def _show_paused(self, image: np.ndarray) -> None:
        shown = image.copy()
        scale = max(0.6, image.shape[0] / 600)
        cv2.putText(
            shown,
            "PAUSED",
            (int(20 * scale), image.shape[0] - int(20 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
        cv2.imshow(self.title, shown)

    def snapshot(self, result: FrameResult) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.snapshot_dir / f"snapshot-{stamp}-frame{result.frame.index:06d}.png"
        if cv2.imwrite(str(path), result.annotated):
            log.info("snapshot saved: %s", path)
            self.snapshots.append(path)
        else:
            log.warning("could not save snapshot %s", path)
        return path

    def event(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        if self._created:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:  # pragma: no cover - the window was already gone
                pass
            self._created = False
