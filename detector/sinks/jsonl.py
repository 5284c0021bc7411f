"""JSON-lines sink: one line per processed frame, plus event lines.

Each line is written with a single ``write`` and flushed at once, so a reader
tailing the file (or a killed process) sees whole lines; nothing is buffered in
memory. The file is opened at the first line, so a run that fails to start never
touches an old file. ``read_jsonl`` reads such a file back, skipping a torn last line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np

from detector.errors import UserError
from detector.events import EventRecord
from detector.sinks.base import FrameResult
from detector.sinks.paths import check_json_output_path, make_parents

log = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, numpy scalars/arrays -> Python values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _numpy_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_line(record: dict[str, Any]) -> str:
    """One compact JSON line (with the trailing newline); NaN/inf become null."""
    try:
        text = json.dumps(
            record, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_numpy_default
        )
    except ValueError:  # a non-finite float somewhere: clean and retry
        text = json.dumps(_clean(record), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text + "\n"


def _ascii_line(line: str) -> str:
    return json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=True) + "\n"


def frame_record(result: FrameResult, with_source: bool = False) -> dict[str, Any]:
    """The JSON record for one processed frame (``"source"`` first, in a run with several sources)."""
    frame = result.frame
    head = {"source": result.source} if with_source else {}
    return {
        **head,
        "frame": int(frame.index),
        "pts": round(float(frame.pts), 6),
        "latency_ms": round(float(result.latency_ms), 1),
        "detections": result.detections.to_records(),
        **result.extra,
    }


class JsonLinesSink:
    """Writes one JSON line per frame (and per event) to a file or, for ``-``, to stdout.

    ``with_source``: frame lines carry ``"source"`` (several sources in the run; event records
    always do). ``append``: add to an existing file (no overwrite check)."""

    def __init__(
        self, path: str | Path, overwrite: bool = False, *, with_source: bool = False, append: bool = False
    ) -> None:
        self.path: Path | None = (
            Path(path).expanduser() if append else check_json_output_path(path, overwrite)
        )
        self.with_source = with_source
        self.append = append
        self.failed: str | None = None
        self._raw: IO[bytes] | None = None
        self._closed = False

    def _open(self) -> IO[bytes]:
        assert self.path is not None
        make_parents(self.path)
        try:
            self._raw = open(self.path, "ab" if self.append else "wb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise UserError(f"cannot create JSON output {self.path}: {exc.strerror or exc}") from exc
        return self._raw

    @property
    def _name(self) -> str:
        return "stdout" if self.path is None else str(self.path)

    def write(self, result: FrameResult) -> None:
        self._write_line(dumps_line(frame_record(result, self.with_source)))

    def event(self, record: EventRecord) -> None:
        self._write_line(dumps_line(record.to_dict()))

    def _write_line(self, line: str) -> None:
        if self._closed:
            raise RuntimeError(f"JsonLinesSink({self._name}) is closed")
        if self.path is None:
            self._write_stdout(line)
            return
        raw = self._raw or self._open()
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates in a string
            data = _ascii_line(line).encode("ascii")
        try:
            view = memoryview(data)
            while view:  # one write() normally; loops only on a short write
                view = view[raw.write(view) or 0 :]
        except OSError as exc:
            self.failed = exc.strerror or str(exc)
            raise UserError(
                f"writing {self._name} failed: {self.failed}; the lines up to here are kept"
            ) from exc

    def _write_stdout(self, line: str) -> None:
        out = sys.stdout  # looked up each time: never closed, may be swapped (tests, redirection)
        try:
            try:
                out.write(line)
            except UnicodeEncodeError:  # stdout with a non-UTF-8 encoding
                out.write(_ascii_line(line))
            out.flush()
        except OSError as exc:
            raise UserError(f"writing {self._name} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._raw is not None:
            try:
                self._raw.close()
            except OSError as exc:
                raise UserError(f"closing {self._name} failed: {exc.strerror or exc}") from exc


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; an unterminated last line that does not parse (torn) is skipped."""
    lines = Path(path).read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            try:
                records.append(json.loads(raw))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from exc
    if tail.strip():
        try:
            records.append(json.loads(tail))
        except ValueError:
            log.warning("%s: skipping torn last line %d", path, len(lines) + 1)
    return records
