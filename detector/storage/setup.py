"""``Storage``: what ``compose.run`` makes of ``record:`` and ``retain:`` for one run.

    storage = Storage(settings, catalogs)          # segments.jsonl and retention join the catalogs
    storage.check(clips_folders)                   # before anything runs: the folder can be written
    output, sink = storage.recorder(identity, info, source)   # per source, from compose.build
    storage.start(clip_folders)                    # once the lanes are built: scan, say, check
    ...
    storage.close()                                # after the lanes: retention stops

Lanes report full disks to ``status`` (``StorageStatus.failed``), which pokes retention; the
recorders and clip folders tell it when they write again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.catalog import Catalogs
from detector.errors import UserError
from detector.media.mp4writer import PacketOutput
from detector.settings import Settings
from detector.sinks.paths import check_clips_dir
from detector.sources.base import SourceInfo
from detector.sources.naming import SourceIdentity
from detector.storage.retention import Limits, Retention
from detector.storage.segments import SegmentList
from detector.storage.status import StorageStatus
from detector.types import Sink

if TYPE_CHECKING:  # the recorders are imported where made: a run without --record loads neither
    from detector.storage.recorder import RecordHooks

log = logging.getLogger(__name__)


class Storage:
    """The run's recording folder, its retention and its storage health."""

    def __init__(self, settings: Settings, catalogs: Catalogs) -> None:
        self.settings = settings
        self.catalogs = catalogs
        self.status = StorageStatus()
        record, retain = settings.record, settings.retain
        self.root = Path(record.dir).expanduser().absolute() if record.dir else None
        self.mode = record.mode
        self.segments = SegmentList(self.root) if self.root is not None else None
        if self.segments is not None:
            catalogs.add(self.segments)
        self.retention = Retention(Limits(retain.days, retain.max_size, retain.min_free), catalogs)
        catalogs.add(self.retention)
        self.status.listeners.append(self.retention.poke)
        self._hooks: RecordHooks | None = None  # made with the first recorder
        self.writers = 0

    def check(self, clips: Sequence[Path]) -> None:
        """The recording folder can be made or written, and is no clips folder (``UserError``)."""
        if self.root is None:
            if self.settings.retain.any() and not clips:
                log.warning("retain: nothing to keep in check without --record DIR or --clips DIR")
            return
        check_clips_dir(self.root, False, what="recording folder")
        for folder in clips:
            if folder.expanduser().absolute() == self.root:
                raise UserError(f"--record and --clips both use {self.root}; give each its own folder")

    def check_source(self, identity: SourceIdentity, info: SourceInfo, source: object) -> None:
        """Raw recording needs a source with packets to copy, in a codec an MP4 takes."""
        if self.root is not None and self.mode == "raw":
            from detector.storage.raw import check_copyable

            check_copyable(identity.name, info.kind, info.codec, callable(getattr(source, "set_tap", None)))

    def recorder(
        self, identity: SourceIdentity, info: SourceInfo, source: object
    ) -> tuple[PacketOutput | None, Sink | None]:
        """This source's recorder: a packet output of its video sink (annotated), or a sink that taps
        the source (raw); (None, None) without ``--record``."""
        if self.root is None:
            return None, None
        from detector.storage.raw import RawRecorder
        from detector.storage.recorder import RecordHooks, SegmentBook, SegmentRecorder

        if self._hooks is None:
            min_free = self.settings.retain.min_free or 0
            self._hooks = RecordHooks(
                opening=self.retention.poke, resumed=self.status.resumed, min_free=min_free
            )
        self.writers += 1
        book = SegmentBook(
            self.root,
            identity.name,
            seconds=self.settings.record.segment,
            live=info.live,
            mode=self.mode,
            catalog=self.catalogs,
            hooks=self._hooks,
        )
        if self.mode == "annotated":
            return SegmentRecorder(book), None
        raw = RawRecorder(book)
        getattr(source, "set_tap")(raw)  # noqa: B009 - checked by check_source
        return None, raw

    def start(self, clip_folders: Sequence[tuple[Path, int]]) -> None:
        """Once the lanes are built: watch the folders (``clip_folders``: each with the number of
        sources clipping into it), say what is there and what is kept, and start checking."""
        if self.root is not None:
            self.retention.watch(self.root, "recordings", writers=max(1, self.writers))
            log.info(
                "recording %s segments of %g s into %s", self.mode, self.settings.record.segment, self.root
            )
        if self.settings.retain.any():
            for folder, writers in clip_folders:
                self.retention.watch(folder, "clips", writers=writers)
        if self.retention.folders:
            self.retention.start()  # what is there is said from its thread; checks with limits only

    def close(self) -> None:
        self.retention.close()
        if self.segments is not None:
            self.segments.close()

    def report(self) -> dict[str, Any]:
        """What the run report says of retention (when it runs)."""
        if not self.settings.retain.any():
            return {}
        return {"retention": self.retention.report()}
