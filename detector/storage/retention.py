"""Retention: what is deleted from the recordings and the clips folders, and when (``retain:``).

Each folder (``--record DIR``, each ``--clips DIR``) holds *units*, deleted whole: a segment, or a
clip with its snapshots (and, through the catalogs, their ``events.jsonl`` lines and store rows).
``choose`` decides, oldest first (by the time a unit ends): every unit older than ``days``; then, per
folder, the oldest until the folder holds at most ``max_size`` with room (``headroom``) for what is
being written; then, across the folders on one filesystem, the oldest until ``min_free`` and that
room are free. Sizes are what the files take on disk (rounded up to the filesystem's block); a
folder's size counts its index files too (``segments.jsonl``; ``events.jsonl`` and the event store).
The room is, per source writing there, three times the largest of its recent units: one being
written while the one before is closed (that one and its faststart copy; a segment is closed on a
thread, and a clip in its last seconds overlaps the next item's).

``Retention`` knows a folder's units from a scan at start (files in our naming only: see ``layout``;
which snapshots go with which clip from the catalogs' ``listed``) and, during the run, from the
catalog: it is one, and is told of each file when it is finished. So a file still being written is
never a candidate, nor is anything not in our naming under our folders. It checks at start, every
``interval`` seconds, when a file is added (a segment closed: before the next one grows), and at once
when an output hits a full disk (``poke``), on a thread of its own that the pipeline never waits
for. It deletes the files, logs each unit at INFO, then tells every catalog (``Catalogs.removed``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from detector.catalog import Catalogs, MediaFile
from detector.eventstore.schema import store_file_names
from detector.settings.storage import size_text
from detector.storage.clipfolder import EVENTS_FILE
from detector.storage.disk import allocated, block_size, existing, free_bytes
from detector.storage.layout import SEGMENTS_FILE, empty_days, is_segment, scan_clips, scan_recordings

log = logging.getLogger(__name__)

FolderKind = Literal["recordings", "clips"]
CHECK_SECONDS = 60.0
RECENT_UNITS = 10  # the room kept for what is being written: from the largest of these
BEING_WRITTEN = 3  # per writer, in units: the open one, and the one closed with its copy
INDEX_FILES: dict[FolderKind, tuple[str, ...]] = {
    "recordings": (SEGMENTS_FILE,),
    "clips": (EVENTS_FILE, *store_file_names()),
}
BUSY_SECONDS = 30.0  # at start, a file modified this recently may be another run's open file: left


@dataclass(frozen=True)
class Limits:
    days: float | None = None
    max_size: int | None = None
    min_free: int | None = None

    def any(self) -> bool:
        return self.days is not None or self.max_size is not None or self.min_free is not None

    def text(self) -> str:
        parts = [f"older than {self.days:g} days"] if self.days is not None else []
        if self.max_size is not None:
            parts.append(f"beyond {size_text(self.max_size)} a folder")
        if self.min_free is not None:
            parts.append(f"below {size_text(self.min_free)} free")
        return ", ".join(parts) or "no limits"


@dataclass
class Unit:
    """What is deleted together: a segment, or a clip and its snapshots."""

    files: list[MediaFile]
    block: int = 1  # the filesystem's allocation unit

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def disk(self) -> int:
        """What its files take on disk."""
        return sum(allocated(f.bytes, self.block) for f in self.files)

    @property
    def end(self) -> float:
        return max((f.end for f in self.files if f.end is not None), default=0.0)

    @property
    def label(self) -> str:
        extra = len(self.files) - 1
        more = f" and {extra} snapshot{'s' if extra > 1 else ''}" if extra else ""
        return f"{self.files[0].path}{more}"


@dataclass(frozen=True)
class Doomed:
    folder: Path
    unit: Unit
    why: str


def choose(
    folders: Mapping[Path, Sequence[Unit]],
    limits: Limits,
    *,
    now: float,
    free: int | None,
    headroom: Mapping[Path, int],
    held: Mapping[Path, int] | None = None,
) -> list[Doomed]:
    """The units to delete, oldest first, from ``folders`` that share one filesystem (``free`` bytes
    free on it). ``headroom``: per folder, the room kept for what is being written; ``held``: what
    else it holds that counts against its size (its index files)."""
    doomed: list[Doomed] = []
    gone: set[int] = set()

    def doom(folder: Path, unit: Unit, why: str) -> None:
        doomed.append(Doomed(folder, unit, why))
        gone.add(id(unit))

    ordered = {folder: sorted(units, key=lambda u: u.end) for folder, units in folders.items()}
    if limits.days is not None:
        cutoff = now - limits.days * 86400
        for folder, units in ordered.items():
            for unit in units:
                if unit.end < cutoff:
                    doom(folder, unit, f"older than {limits.days:g} days")
    if limits.max_size is not None:
        for folder, units in ordered.items():
            used = sum(u.disk for u in units if id(u) not in gone) + (held or {}).get(folder, 0)
            room = headroom.get(folder, 0)
            for unit in units:
                if used + room <= limits.max_size:
                    break
                if id(unit) not in gone:
                    doom(folder, unit, f"{folder} over {size_text(limits.max_size)}")
                    used -= unit.disk
    if limits.min_free is not None and free is not None:
        need = limits.min_free + sum(headroom.get(f, 0) for f in ordered)
        free += sum(d.unit.disk for d in doomed)
        pool = sorted(((u.end, f, u) for f, us in ordered.items() for u in us), key=lambda x: x[0])
        for _, folder, unit in pool:
            if free >= need:
                break
            if id(unit) not in gone:
                doom(folder, unit, f"less than {size_text(limits.min_free)} free")
                free += unit.disk
    return doomed


@dataclass
class _Folder:
    path: Path
    kind: FolderKind
    writers: int
    block: int = 1
    units: dict[Path, Unit] = field(default_factory=dict)  # by their first file
    waiting: dict[str, MediaFile] = field(default_factory=dict)  # snapshots whose clip is open, by id
    deleted_files: int = 0
    deleted_bytes: int = 0

    def owns(self, media: MediaFile) -> bool:
        if self.kind == "recordings":
            return media.kind == "segment" and is_segment(self.path, media.path)
        return media.kind in ("clip", "snapshot") and media.path.parent == self.path

    def add(self, media: MediaFile) -> None:
        if media.kind == "snapshot":
            self.waiting.update((eid, media) for eid in media.events or (str(media.path),))
            return
        unit = Unit([media], self.block)
        for eid in media.events:
            snapshot = self.waiting.pop(eid, None)
            if snapshot is not None and snapshot not in unit.files:
                unit.files.append(snapshot)
        self.units[media.path] = unit

    def headroom(self) -> int:
        """The room for what is being written (see the module's docstring)."""
        recent = sorted(self.units.values(), key=lambda u: u.end)[-RECENT_UNITS:]
        return BEING_WRITTEN * self.writers * max((u.disk for u in recent), default=0)

    def index_bytes(self) -> int:
        """What the folder's index files take on disk."""
        index = 0
        for name in INDEX_FILES[self.kind]:
            with contextlib.suppress(OSError):
                index += allocated(os.stat(self.path / name).st_size, self.block)
        return index


class Retention:
    """Deletes what ``limits`` no longer keep from the watched folders; a media catalog."""

    def __init__(
        self, limits: Limits, catalogs: Catalogs, *, interval: float = CHECK_SECONDS, clock: Any = time.time
    ) -> None:
        self.limits = limits
        self.catalogs = catalogs
        self.interval = interval
        self.clock = clock
        self.folders: dict[Path, _Folder] = {}
        self.checks = 0
        self.check_ms_total = 0.0
        self.check_ms_max = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, folder: Path, kind: FolderKind, writers: int = 1) -> None:
        path = folder.expanduser().absolute()
        if path in self.folders:
            self.folders[path].writers += writers
        else:
            self.folders[path] = _Folder(path, kind, writers, block_size(path))

    # -- start and stop -------------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Take stock of each folder (saying what is kept and how much is used), then check: on the
        retention thread (started here), or without ``background`` only when ``check`` is called."""
        if not background:
            self._take_stock()
            return
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def _take_stock(self) -> None:
        for folder in self.folders.values():
            started = time.perf_counter()
            self._scan(folder)
            with self._lock:
                used, files = sum(u.bytes for u in folder.units.values()), len(folder.units)
            free = free_bytes(folder.path)
            log.info(
                "retention of %s (%s): %d %s, %s; %s free on its disk; deleting %s (%.0f ms to take stock)",
                folder.path, folder.kind, files, "segments" if folder.kind == "recordings" else "clips",
                size_text(used), "?" if free is None else size_text(free), self.limits.text(),
                (time.perf_counter() - started) * 1000,
            )  # fmt: skip

    def _scan(self, folder: _Folder) -> None:
        found = scan_recordings(folder.path) if folder.kind == "recordings" else scan_clips(folder.path)
        listed = {m.path: m for m in self.catalogs.listed(folder.path)}
        busy = self.clock() - BUSY_SECONDS
        found.sort(key=lambda m: m.kind != "snapshot")  # snapshots first: each clip then takes its own
        scanned = _Folder(folder.path, folder.kind, folder.writers, folder.block)  # apart from this run's
        for media in found:
            if media.end is not None and media.end > busy:
                continue
            known = listed.get(media.path)
            scanned.add(known_as(media, known) if known is not None else media)
        for snapshot in {id(m): m for m in scanned.waiting.values()}.values():  # their clip is gone
            scanned.units[snapshot.path] = Unit([snapshot])
        with self._lock:  # this run's files (and snapshots waiting for their clip) stay as they are
            for path, unit in scanned.units.items():
                folder.units.setdefault(path, unit)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30.0)

    # -- MediaCatalog ---------------------------------------------------------------------------------
    def added(self, media: MediaFile) -> None:
        with self._lock:
            for folder in self.folders.values():
                if folder.owns(media):
                    folder.add(media)
                    break
            else:
                return
        self.poke()

    def removed(self, paths: Sequence[Path]) -> None:
        with self._lock:
            for folder in self.folders.values():
                for path in paths:
                    folder.units.pop(path, None)

    def poke(self) -> None:
        """Check now (on the retention thread)."""
        self._wake.set()

    # -- checking -------------------------------------------------------------------------------------
    def _run(self) -> None:
        """Take stock, check at once, then at every wake-up or ``interval``; a last time when the run
        ends."""
        self._take_stock()
        if not self.limits.any():
            return
        while True:
            try:
                self.check()
            except Exception as exc:  # keep checking: the next check may succeed
                log.error("retention check failed: %s", exc)
            if self._stop.is_set():
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def check(self) -> list[Doomed]:
        """One pass over every folder: delete what the limits no longer keep. Returns what went."""
        started = time.perf_counter()
        doomed: list[Doomed] = []
        for group in self._by_filesystem():
            with self._lock:
                units = {f.path: list(f.units.values()) for f in group}
                headroom = {f.path: f.headroom() for f in group}
            held = {f.path: f.index_bytes() for f in group}
            free = free_bytes(group[0].path)
            doomed += choose(units, self.limits, now=self.clock(), free=free, headroom=headroom, held=held)
        removed = [path for d in doomed for path in self._delete(d)]
        if removed:
            for root in (f.path for f in self.folders.values() if f.kind == "recordings"):
                for day in empty_days(root, keep=set()):
                    with contextlib.suppress(OSError):
                        day.rmdir()
            self.catalogs.removed(removed)
        ms = (time.perf_counter() - started) * 1000
        self.checks += 1
        self.check_ms_total += ms
        self.check_ms_max = max(self.check_ms_max, ms)
        return doomed

    def _by_filesystem(self) -> list[list[_Folder]]:
        groups: dict[int, list[_Folder]] = {}
        for folder in self.folders.values():
            try:
                dev = os.stat(existing(folder.path)).st_dev
            except OSError:
                continue
            groups.setdefault(dev, []).append(folder)
        return list(groups.values())

    def _delete(self, doomed: Doomed) -> list[Path]:
        gone: list[Path] = []
        for media in doomed.unit.files:
            try:
                media.path.unlink()
            except FileNotFoundError:
                pass  # deleted by someone else: forgotten all the same
            except OSError as exc:
                log.warning("retention: cannot delete %s: %s", media.path, exc.strerror or exc)
                continue
            gone.append(media.path)
        if gone:
            folder = self.folders[doomed.folder]
            size = sum(m.bytes for m in doomed.unit.files if m.path in gone)
            with self._lock:
                folder.units.pop(doomed.unit.files[0].path, None)
                folder.deleted_files += len(gone)
                folder.deleted_bytes += size
            log.info("retention: deleted %s (%s; %s)", doomed.unit.label, size_text(size), doomed.why)
        return gone

    def report(self) -> dict[str, Any]:
        """What was deleted, and what each folder holds and its disk has free now (also without limits,
        when no check runs)."""
        with self._lock:
            folders: dict[str, dict[str, Any]] = {
                str(f.path): {
                    "kind": f.kind,
                    "deleted_files": f.deleted_files,
                    "deleted_bytes": f.deleted_bytes,
                    "used_bytes": sum(u.bytes for u in f.units.values()),
                }
                for f in self.folders.values()
            }
        for f in self.folders.values():
            folders[str(f.path)]["free_bytes"] = free_bytes(f.path)
        mean = self.check_ms_total / self.checks if self.checks else 0.0
        return {
            "limits": {
                "days": self.limits.days,
                "max_size": self.limits.max_size,
                "min_free": self.limits.min_free,
            },
            "folders": folders,
            "checks": self.checks,
            "check_ms": {"mean": round(mean, 2), "max": round(self.check_ms_max, 2)},
        }


def known_as(found: MediaFile, listed: MediaFile) -> MediaFile:
    """A file found on disk, with what a catalog knows of it (its source, events, start); its age is
    the file's own (when it was last written)."""
    return MediaFile(
        found.kind, listed.source or found.source, found.path, start=listed.start, end=found.end,
        bytes=found.bytes, events=listed.events,
    )  # fmt: skip
