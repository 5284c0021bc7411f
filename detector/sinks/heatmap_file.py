"""``--heatmap FILE.png``: the heatmap stage's picture of the whole run, written when the source ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from detector.errors import UserError, storage_error
from detector.events import EventRecord
from detector.files import make_parents
from detector.media.images import write_image
from detector.types import FrameResult, Image

log = logging.getLogger(__name__)


class HeatmapSink:
    """Writes ``render()`` (the heatmap over a frame of the video, at the source's size) to ``path`` on
    close, atomically, once at least one frame went through. PNG, or JPEG for a .jpg name."""

    def __init__(self, path: Path, render: Callable[[], Image]) -> None:
        self.path = path
        self.render = render
        self.frames = 0
        self.failed: str | None = None

    def write(self, result: FrameResult) -> None:
        self.frames += 1

    def event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        if not self.frames:
            return
        make_parents(self.path)
        try:
            write_image(self.path, self.render())
        except OSError as exc:
            self.failed = exc.strerror or str(exc)
            message = f"writing heatmap {self.path} failed: {self.failed}"
            raise storage_error(exc, self.path, message) or UserError(message) from exc
        log.info("heatmap written to %s", self.path)
