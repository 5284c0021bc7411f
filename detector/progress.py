"""Progress for long runs: a rich bar on a terminal, else a log line every few seconds."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)


class Progress:
    def __init__(
        self, name: str, total: int | None, *, interval: float = 5.0, tty: bool | None = None
    ) -> None:
        self.name = name
        self.total = total
        self.interval = interval
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._last_log = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if self._tty:
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
            self._task = self._bar.add_task(name, total=total, fps="--")

    def update(self, done: int, fps: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, fps=f"{fps:.1f}")
            return
        now = time.monotonic()
        if now - self._last_log < self.interval:
            return
        self._last_log = now
        if self.total:
            eta = (self.total - done) / fps if fps > 0 else float("nan")
            log.info(
                "%s: %d/%d frames (%.0f%%), %.1f fps, ETA %.0f s",
                self.name,
                done,
                self.total,
                100 * done / self.total,
                fps,
                eta,
            )
        else:
            log.info("%s: %d frames, %.1f fps", self.name, done, fps)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
