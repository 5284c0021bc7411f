"""Event clips (``--clips DIR``): one MP4 per review item, and a snapshot for each event, cut from
packets already encoded.

The recorder is a ``PacketOutput`` of the video sink: it gets the H.264 packets of the annotated video
(encoded once, shared with ``--output``) and keeps the last ``before`` seconds of them in a ring, from a
keyframe on (keyframes come every ``encoder.fragment_seconds``, so a clip starts at most that much
earlier than asked, and always cleanly). Memory is that ring: about ``before + 1`` seconds of the
encoded video (its bitrate; reported as ``preroll_bytes_per_s``).

One review item is one clip (``detector.reviews``: the item drives its clip). The recorder is one of its
lane's ``ReviewConsumer``s: when an item opens at source time ``t`` a clip starts at the last keyframe at
or before ``t - before``; it takes every packet while the item lasts, and ends ``after`` seconds after the
item's end. While the item is open, packets later than its end can possibly be are held back: the item
ends ``review.gap`` seconds after its last activity, so only the last ``gap - after`` seconds (if that is
more than zero) wait to be written or dropped. A clip is finished once the video is ``SETTLE_S`` past its
end (a B-frame shown before its end may still follow), or when the run ends (end of input, Ctrl-C,
SIGTERM). Each clip is written like ``--output``: fragmented while being written, a faststart MP4 when
finished. Finishing it (the trailer and the faststart rewrite: seconds for a long clip) runs on the
recorder's ``Finisher`` thread, as segments' does, so the lane (which serves every source) never waits;
the clip is told to the catalog once finished, and ``close`` waits for every clip.

A clip (and its item) ends at ``max_seconds`` or ``max_bytes`` on a scene that never goes quiet
(``reviews.ItemBound``): it is cut at the next keyframe, where the next item's clip starts, so the
clips of one scene follow on frame by frame. Each event that makes a clip may also get a JPEG
(``snapshot.Snapshots``: per track, per item or none). The recorder is its lane's ``Attacher``:
``attach`` returns the record with ``clip`` (its item's), ``clip_offset_s`` (where in the clip the
event is) and ``snapshot``, paths relative to DIR, before any sink sees it, so ``--json``,
``DIR/events.jsonl`` (``clipfolder.EventsFile``) and every other sink get the same record. Names come
from the source's unique name and never replace a file (``clipfolder.ClipFolder``).

A full disk (``StorageError``) closes the clip it hit (it plays up to its last whole fragment) and
costs a snapshot at most; the next item starts a new clip. The error is raised once from
``packets``, so the lane reports it, and ``on_resumed`` is told when a clip is whole again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.catalog import MediaCatalog, MediaFile
from detector.errors import StorageError, UserError, raise_together
from detector.events import EventRecord
from detector.media.encoder import Encoded, H264Encoder
from detector.media.mp4writer import Mp4Writer
from detector.review_items import ReviewUpdate
from detector.settings.review import SnapshotSettings
from detector.storage.clipfolder import ClipFolder
from detector.storage.recorder import Finisher
from detector.storage.snapshot import Snapshots
from detector.types import FrameResult

log = logging.getLogger(__name__)

SETTLE_S = 1.0  # a clip is finished once the video is this far past its end


@dataclass
class _Clip:
    path: Path
    writer: Mp4Writer
    end: float  # source time (s) of the last frame it must hold (so far, while its item is open)
    start_pts: float | None  # source time of its first frame (None until known)
    next_seq: int  # the next packet (by sequence number) it takes
    item: str = ""  # the review item it shows
    item_open: bool = True
    events: int = 0
    ids: list[str] = field(default_factory=list)  # of its event records
    clock: tuple[float, float] | None = None  # (Unix time, pts) of one of its events: maps pts to wall
    held: list[Encoded] = field(default_factory=list)  # taken, past the end: written only if needed
    shown_until: float = -math.inf  # the latest frame written
    failed: StorageError | None = None  # the disk filled while writing it
    taken_bytes: int = 0  # of the packets taken (written or held)
    stop_seq: int | None = None  # cut at a bound: it ends before the first keyframe from here
    done: bool = False  # it reached that keyframe
    origin: float | None = None  # where it will start, before its first packet is written


class ClipRecorder:
    """Clips and snapshots for the events of one source (``source``: its unique, file-safe name)."""

    def __init__(
        self,
        folder: ClipFolder,
        *,
        before: float,
        after: float,
        source: str,
        catalog: MediaCatalog | None = None,
        gap: float = 5.0,
        on_resumed: Callable[[str], None] | None = None,
        max_seconds: float = math.inf,
        max_bytes: float = math.inf,
        snapshots: SnapshotSettings | None = None,
    ) -> None:
        self.clip_folder = folder
        self.catalog = catalog  # told of each finished clip and snapshot
        self.on_resumed = on_resumed  # told (with ``key``) when a clip is whole again after a full disk
        self.key = f"clips:{folder.folder}:{source}"
        self.folder = folder.folder
        self.before = float(before)
        self.after = float(after)
        self.gap = float(gap)  # review.gap: an open item's end is at least this recent
        self.max_seconds, self.max_bytes = max_seconds, max_bytes  # of a clip (review.max_seconds, max_size)
        self.source = source
        self.encoder: H264Encoder | None = None
        self.ring: deque[tuple[int, Encoded]] = deque()  # (sequence number, packet), from a keyframe
        self._keys: deque[int] = deque()  # sequence numbers of the keyframes in the ring
        self.ring_bytes = 0
        self.ring_peak_bytes = 0
        self.clips_made = 0
        self.events_recorded = 0
        self.open: list[_Clip] = []
        self.current: _Clip | None = None  # the clip of the open review item
        self.latest: FrameResult | None = None
        self._reviewed = -math.inf  # pts of the frame before the latest: the reviewer has seen it
        self._seq = 0  # sequence number of the next packet
        self._newest = -math.inf  # source time of the newest packet
        self._first_pts: float | None = None
        self._bytes_total = 0
        self._span: tuple[float, float] | None = None  # source times of the first and last packet
        self._full: list[StorageError] = []  # not yet raised
        self._failing = False
        self._closed = False
        self._lock = threading.Lock()  # ``_full`` and ``_failing``: the finisher's thread sets them too
        self._errors: list[Exception] = []  # not a full disk: raised from ``close``
        # A finished clip's trailer and faststart rewrite run here, as segments' do: never on the lane.
        self._finisher = Finisher(f"clips {source}")
        self.snapshots = Snapshots(folder, source, snapshots, self._list, self._failed)

    # -- PacketOutput ---------------------------------------------------------------------------------
    def bind(self, encoder: H264Encoder) -> None:
        self.encoder = encoder

    def frame(self, result: FrameResult) -> None:
        if self.latest is not None:
            self._reviewed = self.latest.frame.pts
        self.latest = result
        if self._first_pts is None:
            self._first_pts = result.frame.pts

    def packets(self, packets: Sequence[Encoded]) -> None:
        for packet in packets:
            if packet.keyframe:
                self._keys.append(self._seq)
            self.ring.append((self._seq, packet))
            self._seq += 1
            self.ring_bytes += packet.nbytes
            self._bytes_total += packet.nbytes
            t = packet.source_pts
            self._newest = max(self._newest, t)
            self._span = (t, t) if self._span is None else (min(self._span[0], t), max(self._span[1], t))
        self.ring_peak_bytes = max(self.ring_peak_bytes, self.ring_bytes)
        # An open item's activity went on at least until ``gap`` s before the last frame reviewed.
        reached = self._reviewed - self.gap + self.after
        for clip in self.open:
            if clip.item_open:
                clip.end = max(clip.end, reached)
            self._catch_up(clip)
        self._finish_settled()
        self._prune()
        self._raise_full()

    def _raise_full(self) -> None:
        with self._lock:
            full, self._full = self._full, []
        raise_together(full)

    # -- ReviewConsumer -------------------------------------------------------------------------------
    def review(self, update: ReviewUpdate) -> None:
        """An item opened (its clip starts), changed (its clip reaches further) or ended."""
        if self._closed:
            return
        item = update.after
        self.snapshots.review(update)
        if update.type == "new":
            try:
                self.current = self._start(item.media_start, follow=update.split)
            except StorageError as exc:  # no room for the clip: the item goes on without one
                self._failed(exc)
                self.current = None
                return
            self.current.item = item.id
            self.current.clock = (item.start_time, item.media_start)
        clip = next((c for c in self.open if c.item == item.id), None)
        if clip is None:
            return
        clip.end = max(clip.end, item.media_end + self.after)
        if update.type == "end":
            clip.item_open = False
            if self.current is clip:
                self.current = None
            if update.split:  # cut at a bound: up to the next keyframe, where the next clip starts
                clip.end, clip.stop_seq = math.inf, self._seq
        self._catch_up(clip)
        self._finish_settled()

    def _finish_settled(self) -> None:
        settled = [
            c
            for c in self.open
            if c.failed or c.done or (not c.item_open and self._newest > c.end + SETTLE_S)
        ]
        for clip in settled:
            if self.current is clip:
                self.current = None
            self._finish(clip)

    def attach(self, record: EventRecord) -> EventRecord:
        """The record with its item's clip and its snapshot (for the events that make clips; others as
        they are). The reviewer has already opened (or extended) the item."""
        clip = self.current
        if not record.clip_worthy or self._closed or clip is None or clip.failed is not None:
            return record
        t = float(record.pts if record.pts is not None else self._newest)
        self._catch_up(clip)
        self.events_recorded += 1
        clip.events += 1
        wall = datetime.fromisoformat(record.wall_time).timestamp() if record.wall_time else None
        clip.ids.append(record.id)
        snapshot = self.snapshots.take(record, self.latest, clip.item, wall, t)
        start = next(s for s in (clip.start_pts, clip.origin, self._first_pts, 0.0) if s is not None)
        offset = round(max(0.0, t - start), 3)
        return dataclasses.replace(record, clip=clip.path.name, clip_offset_s=offset, snapshot=snapshot)

    def close(self) -> None:
        """After the encoder's last packets: finish every open clip (each one playable), and wait until
        every clip is finished and listed."""
        if self._closed:
            return
        self._closed = True
        self.current = None
        for clip in list(self.open):
            if clip.item_open:  # its item never heard its end (the lane stopped short): keep what came
                clip.end = math.inf
                self._release(clip)
            self._finish(clip)
        self.ring.clear()
        self._keys.clear()
        self.snapshots.close()
        self._finisher.close()
        if self._errors:
            raise self._errors[0]
        self._raise_full()

    # -- clips ----------------------------------------------------------------------------------------
    def _start(self, t: float, follow: bool = False) -> _Clip:
        """A new clip for an item from ``t``, from the last keyframe at or before ``t - before``; or,
        ``follow``ing a clip cut at a bound, from the next keyframe (where that one ends)."""
        assert self.encoder is not None, "bind() the encoder first"
        start_seq, start_pts = self._seq, None  # nothing encoded yet: from the first packet to come
        if self._keys and not follow:
            early = [seq for seq in self._keys if self._packet(seq).source_pts <= t - self.before]
            start_seq = early[-1] if early else self._keys[0]
            start_pts = self._packet(start_seq).source_pts
        path = self.clip_folder.claim(self.source, "clip", ".mp4")
        self.clips_made += 1
        writer = Mp4Writer(path, self.encoder, from_zero=True)
        clip = _Clip(path, writer, end=t + self.after, start_pts=start_pts, next_seq=start_seq)
        clip.origin = self._newest if follow else None
        self.open.append(clip)
        log.debug("clip %s starts at %.2f s for an item from %.2f s", path.name, start_pts or 0.0, t)
        return clip

    def _catch_up(self, clip: _Clip) -> None:
        """Write the ring's packets the clip has not taken yet (in decode order) that show frames up to its
        end. A packet past the end is held back: with B-frames an earlier frame may still follow it and
        need it; it is written then (one frame past the end), or never."""
        if clip.failed is not None:
            return
        for seq, packet in self.ring:
            if seq < clip.next_seq or clip.done:
                continue
            if clip.stop_seq is not None and seq >= clip.stop_seq and packet.keyframe:
                clip.done = True  # the next clip of its scene starts here
                continue
            clip.next_seq = seq + 1
            if clip.writer.frames_written == 0 and not clip.held and not packet.keyframe:
                continue  # a clip starts at a keyframe
            clip.held.append(packet)
            clip.taken_bytes += packet.nbytes
        self._release(clip)

    def item_full(self, item_id: str) -> bool:
        """``ItemBound``: the item's clip would pass ``max_seconds`` or ``max_bytes`` before the next
        keyframe after this frame (where a clip cut now ends)."""
        clip = self.current
        if clip is None or clip.item != item_id or clip.start_pts is None or self.encoder is None:
            return False
        step = float(self.encoder.gop / self.encoder.fps) + 2 / float(self.encoder.fps)
        seconds = self._newest - clip.start_pts
        rate = clip.taken_bytes / seconds if seconds > 0 else 0.0
        return seconds + step >= self.max_seconds or clip.taken_bytes + 2 * rate * step >= self.max_bytes

    def _release(self, clip: _Clip) -> None:
        """Write the held packets up to the last one that shows a frame at or before the clip's end (or
        before a frame already written, so a B-frame between written frames is never left out)."""
        while clip.held:
            limit = max(clip.end, clip.shown_until) + 1e-6
            last = max((k for k, p in enumerate(clip.held) if p.source_pts <= limit), default=-1)
            if last < 0:
                return
            for packet in clip.held[: last + 1]:
                if clip.start_pts is None:
                    clip.start_pts = packet.source_pts
                try:
                    clip.writer.write(packet)
                except StorageError as exc:  # this clip ends here (it plays up to its last fragment)
                    clip.failed = exc
                    clip.held.clear()
                    self._failed(exc)
                    return
                clip.shown_until = max(clip.shown_until, packet.source_pts)
            del clip.held[: last + 1]

    def _failed(self, exc: StorageError) -> None:
        exc.key = self.key
        with self._lock:
            if not self._failing:  # once until a clip is whole again
                self._full.append(exc)
            self._failing = True

    def _finish(self, clip: _Clip) -> None:
        """Hand the clip to the finisher (the lane never waits for it); it is listed once finished."""
        self.open.remove(clip)
        self._finisher.submit(lambda: self._close_clip(clip))

    def _close_clip(self, clip: _Clip) -> None:
        """On the finisher's thread: close the clip's file, log it and tell the catalog."""
        try:
            clip.writer.close()
        except StorageError as exc:  # its last fragment did not fit: kept up to the one before
            clip.failed = clip.failed or exc
            self._failed(exc)
        except (OSError, UserError) as exc:
            log.error("clip %s: %s", clip.path, exc)
            self._errors.append(exc)
            return
        if clip.writer.frames_written == 0:  # nothing reached it (the run ended at once): no empty file
            clip.path.unlink(missing_ok=True)
            return
        cut = "" if clip.failed is None else f" (cut short: {clip.failed.reason})"
        log.info("clip %s: %d frames, %d event(s)%s", clip.path, clip.writer.frames_written, clip.events, cut)
        with self._lock:
            resumed = self._failing and clip.failed is None
            if resumed:
                self._failing = False
        if resumed and self.on_resumed is not None:
            self.on_resumed(self.key)
        start, end = clip.start_pts, clip.shown_until
        to_wall = None if clip.clock is None else clip.clock[0] - clip.clock[1]  # wall = pts + this
        extra: dict[str, object] = {"review": clip.item}
        if clip.failed is not None:
            extra["incomplete"] = clip.failed.reason
        self._list(
            MediaFile("clip", self.source, clip.path.absolute(),
                      start=None if to_wall is None or start is None else start + to_wall,
                      end=None if to_wall is None else end + to_wall, media_start=start, media_end=end,
                      bytes=clip.path.stat().st_size if clip.path.exists() else 0, events=tuple(clip.ids),
                      extra=extra)
        )  # fmt: skip

    def _list(self, media: MediaFile) -> None:
        if self.catalog is not None:
            self.catalog.added(media)

    def _prune(self) -> None:
        """Drop whole keyframe intervals that no clip can need: older than ``before`` seconds, and
        already taken by every open clip."""
        keep_from = min((c.next_seq for c in self.open), default=self._seq)
        horizon = self._newest - self.before
        keys = self._keys
        while len(keys) > 1 and keys[1] <= keep_from and self._packet(keys[1]).source_pts <= horizon:
            while self.ring[0][0] < keys[1]:
                self.ring_bytes -= self.ring.popleft()[1].nbytes
            keys.popleft()

    def _packet(self, seq: int) -> Encoded:
        return self.ring[seq - self.ring[0][0]][1]

    def report(self) -> dict[str, Any]:
        seconds = self._span[1] - self._span[0] if self._span else 0.0
        rate = self._bytes_total / seconds if seconds > 0 else None
        return {
            "clips": {"folder": str(self.folder), "clips": self.clips_made, "events": self.events_recorded,
                      "before_s": self.before, "after_s": self.after,
                      "preroll_bytes_per_s": None if rate is None else round(rate),
                      "ring_peak_bytes": self.ring_peak_bytes}
        }  # fmt: skip
