"""Table sinks: detections as CSV, or as MOTChallenge tracking results.

Both stream: one row per detection, flushed after every frame, so a killed run keeps
every finished frame. Events (line crossings, gaps) are not rows and are ignored.

* CSV: header ``frame,pts,track_id,class_id,class_name,confidence,x1,y1,x2,y2``;
  ``frame`` is the 0-based source frame index (as in the JSON lines), ``track_id``
  empty when untracked.
* MOT: ``frame,id,x,y,w,h,conf,-1,-1,-1`` with no header, 1-based frames
  (``Frame.index + 1``), ``id`` = track id or -1 when untracked, ``x,y`` the top-left
  corner and ``w,h`` = ``x2 - x1, y2 - y1`` in pixels: what MOT evaluation tools read.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
from pathlib import Path
from typing import IO, Any

from detector.errors import UserError, storage_error
from detector.events import EventRecord
from detector.files import make_parents
from detector.sinks.paths import check_output_file
from detector.types import FrameResult

log = logging.getLogger(__name__)

CSV_HEADER = ("frame", "pts", "track_id", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2")


def _num(value: float, digits: int) -> str:
    """Fixed decimals; a non-finite value becomes an empty cell."""
    v = float(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else ""


class _TableSink:
    """Shared file handling: path checked up front, the file opened at the first frame (a run that
    fails to start never touches an old one), one flush per frame, one-line errors."""

    what = "table output"

    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        self.path: Path = check_output_file(path, overwrite, self.what)
        self.rows_written = 0
        self.failed: str | None = None
        self._closed = False
        self._size = 0  # bytes of whole rows written
        self._file: IO[str] | None = None
        self._csv: Any = None

    def _open(self) -> None:
        make_parents(self.path)
        try:
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UserError(f"cannot create {self.what} {self.path}: {exc.strerror or exc}") from exc
        self._csv = csv.writer(self._file, lineterminator="\n")
        header = self.header()
        if header:
            self._write([header])

    def header(self) -> tuple[str, ...] | None:
        return None

    def rows(self, result: FrameResult) -> list[list[str]]:
        raise NotImplementedError

    def _write(self, rows: list[Any]) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}({self.path}) is closed")
        assert self._file is not None
        try:
            self._csv.writerows(rows)
            self._file.flush()
        except OSError as exc:
            self.failed = exc.strerror or str(exc)
            message = f"writing {self.path} failed: {self.failed}; the rows up to here are kept"
            full = storage_error(exc, self.path, message)
            if full is None:
                raise UserError(message) from exc
            self._stop()
            raise full from exc
        self._size = self._file.tell()

    def _stop(self) -> None:
        """A full disk: the file ends at its last whole row, and takes no more."""
        file, self._file = self._file, None
        with contextlib.suppress(OSError, ValueError):
            if file is not None:
                file.close()
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._size)

    def write(self, result: FrameResult) -> None:
        if self.failed is not None:
            return
        if self._file is None:
            self._open()
        rows = self.rows(result)
        if rows:
            self._write(rows)
            self.rows_written += len(rows)

    def event(self, record: EventRecord) -> None:
        """Events are not table rows."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            raise UserError(f"closing {self.path} failed: {exc.strerror or exc}") from exc


class CsvSink(_TableSink):
    """One CSV row per detection, with a header."""

    what = "CSV output"

    def header(self) -> tuple[str, ...]:
        return CSV_HEADER

    def rows(self, result: FrameResult) -> list[list[str]]:
        dets, frame = result.detections, result.frame
        tids = dets.tracker_id
        pts = _num(frame.pts, 6)
        return [
            [
                str(frame.index),
                pts,
                "" if tids is None else str(int(tids[i])),
                str(int(dets.class_id[i])),
                dets.class_name(int(dets.class_id[i])),
                _num(dets.confidence[i], 4),
                *(_num(v, 1) for v in dets.xyxy[i]),
            ]
            for i in range(len(dets))
        ]


class MotSink(_TableSink):
    """MOTChallenge results: ``frame,id,x,y,w,h,conf,-1,-1,-1``, 1-based frames, no header."""

    what = "MOT output"

    def rows(self, result: FrameResult) -> list[list[str]]:
        dets = result.detections
        tids = dets.tracker_id
        frame = str(result.frame.index + 1)
        out = []
        for i in range(len(dets)):
            x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
            out.append(
                [
                    frame,
                    "-1" if tids is None else str(int(tids[i])),
                    _num(x1, 2),
                    _num(y1, 2),
                    _num(x2 - x1, 2),
                    _num(y2 - y1, 2),
                    _num(dets.confidence[i], 4),
                    "-1",
                    "-1",
                    "-1",
                ]
            )
        return out
