"""Progress of file sources: one rich bar each on a terminal, else a log line every few seconds.

A ``ProgressBoard`` owns the terminal display; ``board.task(name, total)`` gives each source its
``Progress`` handle (``update``, ``close``). The display stops when the last handle closes.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)


class ProgressBoard:
    def __init__(self, *, interval: float = 5.0, tty: bool | None = None) -> None:
        self.interval = interval
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bar: Any = None
        self._open = 0

    def task(self, name: str, total: int | None) -> Progress:
        if self.tty and self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fps]} fps"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._bar.start()
        self._open += 1
        task_id = self._bar.add_task(name, total=total, fps="--") if self._bar is not None else None
        return Progress(self, name, total, task_id)

    def _closed(self, task_id: Any) -> None:
        self._open -= 1
        if self._bar is not None and self._open <= 0:
            self._bar.stop()
            self._bar = None


class Progress:
    """One source's progress (made by ``ProgressBoard.task``)."""

    def __init__(self, board: ProgressBoard, name: str, total: int | None, task_id: Any) -> None:
        self.board = board
        self.name = name
        self.total = total
        self._task = task_id
        self._last_log = time.monotonic()
        self._closed = False

    def update(self, done: int, fps: float) -> None:
        bar = self.board._bar
        if bar is not None and self._task is not None:
            bar.update(self._task, completed=done, fps=f"{fps:.1f}")
            return
        now = time.monotonic()
        if now - self._last_log < self.board.interval:
            return
        self._last_log = now
        if self.total:
            eta = (self.total - done) / fps if fps > 0 else float("nan")
            log.info(
                "%s: %d/%d frames (%.0f%%), %.1f fps, ETA %.0f s",
                *(self.name, done, self.total, 100 * done / self.total, fps, eta),
            )
        else:
            log.info("%s: %d frames, %.1f fps", self.name, done, fps)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.board._closed(self._task)
