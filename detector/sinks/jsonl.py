"""JSON-lines sink: one line per processed frame, plus event lines.

Each line is written with a single ``write`` and flushed at once, so a reader
tailing the file (or a killed process) sees whole lines; nothing is buffered in
memory. The file is opened at the first line, so a run that fails to start never
touches an old file. ``read_jsonl`` reads such a file back, skipping a torn last line.

A full disk (``errors.StorageError``): the line being written is cut back off, so the file keeps
whole lines only, and the sink stops; an appended index (``resume``: ``events.jsonl``,
``segments.jsonl``) tries again at its next line. ``drop_lines`` rewrites an appended file without
some of its lines (retention deleted their files) while other threads go on appending.

An appended index may be shared by several runs (two runs recording into one folder): each line is
appended, and each rewrite done, holding an ``flock`` on the file; an appender that finds the file
replaced by another run's rewrite (its inode changed) reopens it before it appends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from detector.errors import StorageError, UserError, storage_error
from detector.events import EventRecord
from detector.files import atomic_write, make_parents
from detector.sinks.paths import check_json_output_path
from detector.types import FrameResult

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
        **result.facts.to_dict(),
    }


class JsonLinesSink:
    """Writes one JSON line per frame (and per event) to a file or, for ``-``, to stdout.

    ``with_source``: frame lines carry ``"source"`` (several sources in the run; event records
    always do). ``append``: add to an existing file (no overwrite check). ``resume``: after a full
    disk, try again at the next line (an index) instead of stopping. Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        overwrite: bool = False,
        *,
        with_source: bool = False,
        append: bool = False,
        resume: bool = False,
    ) -> None:
        self.path: Path | None = (
            Path(path).expanduser() if append else check_json_output_path(path, overwrite)
        )
        self.with_source = with_source
        self.append = append
        self.resume = resume
        self.failed: str | None = None  # why it stopped (or, resuming, why it lost lines)
        self.failing = False  # the last line did not fit
        self.lines_lost = 0
        self._raw: IO[bytes] | None = None
        self._size = 0  # bytes of whole lines in the file
        self._lock = threading.RLock()
        self._closed = False

    def _open(self) -> IO[bytes]:
        assert self.path is not None
        make_parents(self.path)
        try:
            self._raw = open(self.path, "ab" if self.append else "wb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            full = storage_error(exc, self.path, f"cannot create {self.path}: {exc.strerror}")
            if full is not None:
                raise full from exc
            raise UserError(f"cannot create JSON output {self.path}: {exc.strerror or exc}") from exc
        self._size = os.fstat(self._raw.fileno()).st_size
        return self._raw

    @property
    def _name(self) -> str:
        return "stdout" if self.path is None else str(self.path)

    def write(self, result: FrameResult) -> None:
        self._write_line(dumps_line(frame_record(result, self.with_source)))

    def event(self, record: EventRecord) -> None:
        self._write_line(dumps_line(record.to_dict()))

    def write_record(self, record: dict[str, Any]) -> None:
        """One line of any JSON object (an index's entry)."""
        self._write_line(dumps_line(record))

    def _write_line(self, line: str) -> None:
        if self._closed:
            raise RuntimeError(f"JsonLinesSink({self._name}) is closed")
        if self.path is None:
            self._write_stdout(line)
            return
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates in a string
            data = _ascii_line(line).encode("ascii")
        with self._lock:
            if self.failed is not None and not self.resume:
                return  # stopped by a full disk: the lines up to it are kept
            raw = None
            try:
                raw = self._locked() if self.append else self._raw or self._open()
                view = memoryview(data)
                while view:  # one write() normally; loops only on a short write
                    view = view[raw.write(view) or 0 :]
            except StorageError as cannot:  # the file could not even be made
                if self._fail(cannot):
                    raise
                return
            except OSError as exc:
                why = exc.strerror or str(exc)
                message = f"writing {self._name} failed: {why}; the lines up to here are kept"
                full = storage_error(exc, self.path, message)
                if full is None:
                    self.failed = why
                    raise UserError(message) from exc
                if self._fail(full):
                    raise full from exc
                return
            finally:
                if self.append and raw is not None:
                    _unlock(raw)
            self._size += len(data)
            self.failing = False

    def _locked(self) -> IO[bytes]:
        """The appended file, open and locked (``flock``), reopened first if another run's rewrite
        replaced it; ``_size`` is what it holds now (other runs append too)."""
        assert self.path is not None
        while True:
            raw = self._raw or self._open()
            _lock(raw)
            st = os.fstat(raw.fileno())
            try:
                same = _inode(os.stat(self.path)) == _inode(st)
            except FileNotFoundError:
                same = False
            if same:
                self._size = st.st_size
                return raw
            _unlock(raw)
            with contextlib.suppress(OSError):
                raw.close()
            self._raw = None

    def _fail(self, full: StorageError) -> bool:
        """A line did not fit: cut it back off (the file keeps whole lines). True the first time in a
        row (the error is raised then, not at every line that follows)."""
        if self._raw is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._raw.fileno(), self._size)
        self.lines_lost += 1
        first = not self.failing
        self.failed, self.failing = full.reason, True
        return first

    def drop_lines(self, drop: Callable[[dict[str, Any]], bool]) -> int:
        """Rewrite the (appended) file without the lines ``drop`` picks, atomically, holding its lock
        (see the module's docstring); appending goes on in the new file. Returns how many lines went."""
        assert self.append and self.path is not None, "only an appended file is rewritten"
        path = self.path
        with self._lock:
            while True:
                try:
                    old = open(path, "rb")  # noqa: SIM115 - closed below, after the rename
                except FileNotFoundError:
                    return 0
                _lock(old)
                try:
                    if _inode(os.stat(path)) == _inode(os.fstat(old.fileno())):
                        return self._rewrite(path, old.read(), drop)
                except FileNotFoundError:
                    pass  # replaced or removed meanwhile: look again
                finally:
                    _unlock(old)
                    old.close()

    def _rewrite(self, path: Path, text: bytes, drop: Callable[[dict[str, Any]], bool]) -> int:
        kept: list[bytes] = []
        dropped = 0
        for raw in text.splitlines(keepends=True):
            try:
                gone = raw.endswith(b"\n") and drop(json.loads(raw))
            except ValueError:
                gone = False  # not ours to judge: kept as it is
            dropped += gone
            if not gone:
                kept.append(raw if raw.endswith(b"\n") else b"")  # a torn last line goes
        if not dropped:
            return 0

        def write(tmp: Path) -> None:
            with open(tmp, "xb") as f:
                f.writelines(kept)

        atomic_write(path, write)
        if self._raw is not None:  # the old file is gone: the next line opens the new one
            with contextlib.suppress(OSError):
                self._raw.close()
            self._raw = None
        return dropped

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
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._raw is not None:
                try:
                    self._raw.close()
                except OSError as exc:
                    raise UserError(f"closing {self._name} failed: {exc.strerror or exc}") from exc


def _inode(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _lock(f: IO[bytes]) -> None:
    """An exclusive ``flock``, waited for (a rewrite takes milliseconds); a filesystem without locks
    goes unlocked."""
    with contextlib.suppress(OSError):
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _unlock(f: IO[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


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
