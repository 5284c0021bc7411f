"""Retention: what is deleted from the recordings and the clips folders, and when (``retain:``).

Each folder (``--record DIR``, each ``--clips DIR``) holds *units*, deleted whole: a segment, or a
clip with its snapshots (and, through the catalogs, their ``events.jsonl`` lines and store rows).
``policy.choose`` decides which (never a source's newest segment or clip). Sizes are what the files
take on disk (rounded up to the filesystem's block); a folder's size counts its index files too
(``segments.jsonl``; ``events.jsonl`` and the event store).
The room is, per source writing there, three times the largest of its recent units: one being
written while the one before is closed (that one and its faststart copy; a segment is closed on a
thread, and a clip in its last seconds overlaps the next item's).

``Retention`` knows a folder's units from a scan at start (``stock``: files in our naming only, see
``layout``; which snapshots go with which clip from the catalogs' ``listed``) and, during the run,
from the catalog: it is one, and is told of each file when it is finished. So a file still being
written is never a candidate, nor is anything not in our naming under our folders. It checks at
start, every ``interval`` seconds, when a file is added (a segment closed: before the next one
grows), and at once when an output hits a full disk (``poke``), on a thread of its own that the
pipeline never waits for. It deletes the files that are ours (``safety``: inside the folder, through
no symlink, an MP4 or JPEG), logs each unit at INFO, then tells every catalog (``Catalogs.removed``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from detector.catalog import Catalogs, MediaFile
from detector.eventstore.names import store_file_names
from detector.settings.storage import size_text
from detector.storage.clipfolder import EVENTS_FILE
from detector.storage.disk import allocated, block_size, disk_usage, existing, free_bytes
from detector.storage.layout import SEGMENTS_FILE, empty_days, is_segment
from detector.storage.policy import Doomed, Limits, Unit, choose, needs
from detector.storage.safety import unsafe
from detector.storage.stock import take_stock

log = logging.getLogger(__name__)

__all__ = ["Doomed", "Limits", "Retention", "Unit", "choose", "needs"]

FolderKind = Literal["recordings", "clips"]
CHECK_SECONDS = 60.0
RECENT_UNITS = 10  # the room kept for what is being written: from the largest of these
BEING_WRITTEN = 3  # per writer, in units: the open one, and the one closed with its copy
INDEX_FILES: dict[FolderKind, tuple[str, ...]] = {
    "recordings": (SEGMENTS_FILE,),
    "clips": (EVENTS_FILE, *store_file_names()),
}


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
    needs: int = 0  # what it needs at least, when that is more than max_size (see ``needs``)
    refused: set[Path] = field(default_factory=set)  # files it would not or could not delete (said once)

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
        stock = take_stock(folder.path, folder.kind, now=self.clock())
        for link in stock.skipped:
            log.warning("retention: %s is a symlink to a folder: not walked, nothing in it is deleted", link)
        for path in stock.removed:
            log.info("retention: removed %s (empty: a run that ended without writing it)", path)
        listed = {m.path: m for m in self.catalogs.listed(folder.path)}
        found = sorted(stock.files, key=lambda m: m.kind != "snapshot")  # each clip takes its own
        scanned = _Folder(folder.path, folder.kind, folder.writers, folder.block)  # apart from this run's
        for media in found:
            known = listed.get(media.path)
            media = known_as(media, known) if known is not None else media
            self.catalogs.found(media)  # a run killed before it listed it
            scanned.add(media)
        for snapshot in {id(m): m for m in scanned.waiting.values()}.values():  # their clip is gone
            scanned.units[snapshot.path] = Unit([snapshot], folder.block)
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
            for f in group:
                self._short(f, units[f.path], headroom[f.path], held[f.path])
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

    def _short(self, folder: _Folder, units: list[Unit], headroom: int, held: int) -> None:
        """Say once when ``max_size`` cannot hold what is never deleted (``needs``: the most it needed
        so far, for ``/healthz`` and the report)."""
        cap = self.limits.max_size
        need = needs(units, headroom=headroom, held=held)
        if cap is None or need <= cap or need <= folder.needs:
            return
        first, folder.needs = not folder.needs, need
        if not first:
            return
        log.warning(
            "retention: %s needs %s, more than retain.max_size %s: its newest segment or clip of each "
            "source (never deleted), room for what is being written (%s) and its index; those are "
            "kept, the folder goes over; set retain.max_size to %s or more",
            folder.path, size_text(need), size_text(cap), size_text(headroom), size_text(need),
        )  # fmt: skip

    def shortfalls(self) -> list[dict[str, Any]]:
        """The folders whose ``max_size`` cannot hold what is kept (``/healthz``), with what they need."""
        with self._lock:
            return [
                {"folder": str(f.path), "max_size": self.limits.max_size, "needs_bytes": f.needs}
                for f in self.folders.values()
                if f.needs
            ]

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
        """Delete a unit's files that are ours (``safety.unsafe``); one that is not is forgotten (it
        takes nothing from the cap), one that cannot be deleted is kept, and said once."""
        folder = self.folders[doomed.folder]
        gone: list[Path] = []
        foreign = False
        for media in doomed.unit.files:
            why = unsafe(folder.path, media.path)
            foreign = foreign or why is not None
            if why is None:
                try:
                    media.path.unlink()
                except FileNotFoundError:
                    pass  # deleted by someone else: forgotten all the same
                except OSError as exc:
                    why = f"cannot delete it: {exc.strerror or exc}"
            if why is None:
                gone.append(media.path)
            elif media.path not in folder.refused:  # said once, though chosen again at every check
                folder.refused.add(media.path)
                log.warning("retention: left %s: %s", media.path, why)
        size = sum(m.bytes for m in doomed.unit.files if m.path in gone)
        with self._lock:
            if gone or foreign:
                folder.units.pop(doomed.unit.files[0].path, None)
            folder.deleted_files += len(gone)
            folder.deleted_bytes += size
        if gone:
            log.info("retention: deleted %s (%s; %s)", doomed.unit.label, size_text(size), doomed.why)
        return gone

    def report(self) -> dict[str, Any]:
        """What was deleted, and what each folder holds (``used_bytes``: on disk, as ``du`` says, open
        files and index included) and its disk has free now (also without limits, when no check runs)."""
        with self._lock:
            folders: dict[str, dict[str, Any]] = {
                str(f.path): {
                    "kind": f.kind,
                    "deleted_files": f.deleted_files,
                    "deleted_bytes": f.deleted_bytes,
                    **({"needs_bytes": f.needs} if f.needs else {}),
                }
                for f in self.folders.values()
            }
        for f in self.folders.values():
            folders[str(f.path)]["used_bytes"] = disk_usage(f.path)
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
