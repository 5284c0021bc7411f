"""The display: one OpenCV window for the whole run, a grid of tiles with several sources.

Each source writes to its own ``WindowTile`` sink; the ``Window`` shows one source's frame as it is,
or several in a grid (each tile is that source's annotated frame, with its own FPS and counts
panel, and its name). Keys: q / Esc quit (outputs are finalized), space pauses and resumes the
whole run (``write`` blocks while paused), s saves a PNG snapshot of what the window shows, f
toggles the info panels.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from detector.drawing import draw_label_at, label_size, style_for
from detector.events import EventRecord
from detector.types import FrameResult, Image

log = logging.getLogger(__name__)

MAX_WINDOW = (1600, 900)  # a 4K source is shown scaled down to fit a common screen
GRID = (1280, 720)  # several sources: the grid fits this, each tile at most 640x360
TILE_STYLE = style_for(360, 640)  # the name on each tile
GRID_REFRESH_S = 1 / 30  # with several sources, redraw the grid at most this often
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


def _fit(image: Image, width: int, height: int) -> Image:
    """``image`` scaled to fit (width, height), centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    cell = np.zeros((height, width, 3), np.uint8)
    x, y = (width - nw) // 2, (height - nh) // 2
    cell[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return cell


class Window:
    """The run's window; ``tile(name)`` is the sink of one source."""

    def __init__(
        self,
        title: str,
        names: Sequence[str],
        *,
        snapshot_dir: Path,
        on_toggle_panel: Callable[[], None] | None = None,
        on_pause: Callable[[bool], None] | None = None,
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        self.title = f"detector - {title}"
        self.names = list(names)
        self.snapshot_dir = snapshot_dir
        self.on_toggle_panel = on_toggle_panel
        self.on_pause = on_pause
        self.on_quit = on_quit
        self.quit_requested = False
        self.paused = False
        self.snapshots: list[Path] = []
        self._latest: dict[str, tuple[Image, int]] = {}
        self._shown: Image | None = None
        self._open_tiles = len(self.names)
        self._created = False
        self._drawn_at = 0.0
        cols = math.ceil(math.sqrt(len(self.names)))
        self._grid = (cols, math.ceil(len(self.names) / cols))

    def tile(self, name: str) -> WindowTile:
        return WindowTile(self, name)

    def _compose(self) -> Image:
        if len(self.names) == 1:
            return next(iter(self._latest.values()))[0]
        cols, rows = self._grid
        cell_w, cell_h = min(640, GRID[0] // cols), min(360, GRID[1] // rows)
        canvas = np.zeros((rows * cell_h, cols * cell_w, 3), np.uint8)
        for k, name in enumerate(self.names):
            if name not in self._latest:
                continue
            y, x = (k // cols) * cell_h, (k % cols) * cell_w
            cell = canvas[y : y + cell_h, x : x + cell_w]
            cell[...] = _fit(self._latest[name][0], cell_w, cell_h)
            width = label_size(name, TILE_STYLE)[0]
            draw_label_at(cell, name, cell_w - width, 0, (0, 0, 0), TILE_STYLE)  # top right; panel: top left
        return canvas

    def show(self, name: str, result: FrameResult) -> None:
        self._latest[name] = (result.annotated, result.frame.index)
        now = time.monotonic()
        if len(self.names) > 1 and now - self._drawn_at < GRID_REFRESH_S:
            return
        self._drawn_at = now
        self._shown = self._compose()
        if not self._created:
            self._create(self._shown.shape[1], self._shown.shape[0])
        cv2.imshow(self.title, self._shown)
        self._handle(cv2.waitKey(1))
        while self.paused and not self.quit_requested:
            self._handle(cv2.waitKey(50))

    def _create(self, width: int, height: int) -> None:
        # GUI_NORMAL: no Qt toolbar or status bar, which took space from the picture and shrank it.
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        scale = min(1.0, MAX_WINDOW[0] / width, MAX_WINDOW[1] / height)
        cv2.resizeWindow(self.title, max(1, int(width * scale)), max(1, int(height * scale)))
        self._created = True

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
            if self._shown is not None and self.paused:
                self._show_paused(self._shown)
        elif key in KEY_SNAPSHOT and self._shown is not None:
            self.snapshot()
        elif key in KEY_PANEL and self.on_toggle_panel:
            self.on_toggle_panel()

    def _quit(self) -> None:
        self.quit_requested = True
        if self.on_quit is not None:
            self.on_quit()

    def _show_paused(self, image: Image) -> None:
        shown = image.copy()
        scale = max(0.6, image.shape[0] / 600)
        org = (int(20 * scale), image.shape[0] - int(20 * scale))
        thickness = max(1, int(2 * scale))
        cv2.putText(
            shown, "PAUSED", org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
        )
        cv2.imshow(self.title, shown)

    def snapshot(self) -> Path | None:
        """Save what the window shows (one source: its annotated frame) as a PNG."""
        if self._shown is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        frame = f"-frame{self._latest[self.names[0]][1]:06d}" if len(self.names) == 1 else ""
        path = self.snapshot_dir / f"snapshot-{stamp}{frame}.png"
        if cv2.imwrite(str(path), self._shown):
            log.info("snapshot saved: %s", path)
            self.snapshots.append(path)
        else:
            log.warning("could not save snapshot %s", path)
        return path

    def release(self) -> None:
        """A tile closed; the window closes with the last one."""
        self._open_tiles -= 1
        if self._open_tiles <= 0 and self._created:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:  # pragma: no cover - the window was already gone
                pass
            self._created = False


class WindowTile:
    """The sink of one source in the window."""

    def __init__(self, window: Window, name: str) -> None:
        self.window = window
        self.name = name
        self._closed = False

    def write(self, result: FrameResult) -> None:
        self.window.show(self.name, result)

    def event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.window.release()
