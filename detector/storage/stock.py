"""What retention finds in a folder at start: the files of earlier runs it keeps in check.

- Files in our naming only (``layout``), never under a symlinked folder: those are not walked, and
  are returned (``Stock.skipped``) to be said once.
- A file modified in the last ``BUSY_SECONDS`` may be another run's open file: left out (that run's
  retention has it). One modified in the future (a clock set wrong, a copy that kept a future time)
  is not being written now: it counts, as written now.
- An empty file in our naming, untouched for ``BUSY_SECONDS``, is a name a run reserved and never
  wrote (it was killed with ``kill -9`` between claiming a segment and its first frame): removed.
- Every other file is returned, for retention to count and for the catalogs' ``found``: a run killed
  before it listed its last segment or clip left it unlisted (``segments.jsonl``, the event store).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from detector.catalog import MediaFile
from detector.storage.layout import scan_clips, scan_recordings
from detector.storage.safety import unsafe

BUSY_SECONDS = 30.0  # a file modified this recently may be another run's open file: left
FUTURE_SECONDS = 5.0  # a file modified further ahead than this is not being written now


@dataclass
class Stock:
    files: list[MediaFile] = field(default_factory=list)  # earlier runs' finished files
    skipped: list[Path] = field(default_factory=list)  # symlinked folders, not walked
    removed: list[Path] = field(default_factory=list)  # empty files that dead runs reserved


def take_stock(root: Path, kind: Literal["recordings", "clips"], *, now: float) -> Stock:
    """The finished files of earlier runs under ``root`` (see the module's docstring)."""
    stock = Stock()
    found = scan_recordings(root, stock.skipped) if kind == "recordings" else scan_clips(root)
    for media in found:
        end = now if media.end is None else media.end
        if end > now + FUTURE_SECONDS:
            media = dataclasses.replace(media, end=now)
        elif end > now - BUSY_SECONDS:
            continue
        elif media.bytes == 0:
            if unsafe(root.absolute(), media.path, header=False) is None:
                with contextlib.suppress(OSError):
                    media.path.unlink()
                    stock.removed.append(media.path)
            continue
        stock.files.append(media)
    return stock
