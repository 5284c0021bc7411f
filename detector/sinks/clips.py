"""Event clips (``--clips DIR``): an MP4 and a snapshot for each event, cut from packets already encoded.

The recorder is a ``PacketOutput`` of the video sink: it gets the H.264 packets of the annotated video
(encoded once, shared with ``--output``) and keeps the last ``before`` seconds of them in a ring,
from a keyframe on (keyframes come every ``encoder.fragment_seconds``, so a clip starts at most that
much earlier than asked, and always cleanly). Memory is that ring: about ``before + 1`` seconds of the
encoded video (its bitrate; reported as ``preroll_bytes_per_s``).

An event (a line crossing, a zone entry, or with ``--clip-on`` a new track) at source time ``t`` asks
for ``[t - before, t + after]``. If that overlaps the clip still open, the clip grows to cover it;
otherwise (or when the clip would pass ``MAX_CLIP_S``) a new clip starts at the last keyframe at or
before ``t - before``. A clip is finished once the video is ``before`` seconds past its end (no later
event can overlap it any more), or when the run ends (end of input, Ctrl-C, SIGTERM). Each clip is
written like ``--output``: fragmented while being written, a faststart MP4 when finished.

Each event also gets a JPEG of its frame with the object highlighted, and a line in
``DIR/events.jsonl``: the event record plus ``clip``, ``clip_offset_s`` (where in the clip the event
is) and ``snapshot``, paths relative to DIR. The same fields are added to the record every later
sink sees, so ``--json`` carries them too.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import UserError
from detector.sinks.base import FrameResult
from detector.sinks.encoder import Encoded, H264Encoder
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.paths import make_parents
from detector.sinks.snapshot import write_snapshot
from detector.sinks.video import Mp4Writer

log = logging.getLogger(__name__)

CLIP_EVENTS = ("line_cross", "zone_enter", "track_new")
EVENTS_FILE = "events.jsonl"
MAX_CLIP_S = 300.0  # a busy scene makes a new clip every 5 minutes, not one endless clip


def slug(name: str) -> str:
    """A file-name-safe short form of a source name: ``videos/door.mp4`` -> ``door``,
    ``rtsp://cam.local/live`` -> ``cam-local-live``, camera ``0`` -> ``0``."""
    scheme, _, rest = name.rpartition("://")
    path = Path(name)
    stem = rest.split("@")[-1].rstrip("/") if scheme else path.stem  # no credentials in names
    text = re.sub(r"[^A-Za-z0-9_]+", "-", stem).strip("-") or re.sub(r"[^A-Za-z0-9_]+", "-", path.parent.name)
    return text.strip("-")[-60:] or "source"


class EventLog:
    """``DIR/events.jsonl``, shared by the recorders of every source writing to DIR. Nothing is made
    until the first event: a run without events (or one that fails to start) leaves no folder."""

    def __init__(self, folder: Path, overwrite: bool) -> None:
        self.folder = folder
        self.overwrite = overwrite
        self.lines: JsonLinesSink | None = None
        self.users = 0

    def acquire(self) -> EventLog:
        self.users += 1
        return self

    def open(self) -> None:
        """Make the folder and start ``events.jsonl`` (once)."""
        if self.lines is not None:
            return
        try:
            make_parents(self.folder / EVENTS_FILE)
        except OSError as exc:
            raise UserError(f"cannot create clips folder {self.folder}: {exc.strerror or exc}") from exc
        self.lines = JsonLinesSink(self.folder / EVENTS_FILE, overwrite=self.overwrite)

    def write(self, record: dict[str, Any]) -> None:
        self.open()
        assert self.lines is not None
        self.lines.event(record)

    def close(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.lines is not None:
            self.lines.close()


@dataclass
class _Clip:
    name: str
    writer: Mp4Writer
    end: float  # source time (s) of the last frame it must hold
    start_pts: float | None  # source time of its first frame (None until known)
    next_seq: int  # the next packet (by sequence number) it takes
    events: int = 1
    held: list[Encoded] = field(default_factory=list)  # taken, past the end: written only if needed
    shown_until: float = -math.inf  # the latest frame written


class ClipRecorder:
    """Clips, snapshots and ``events.jsonl`` lines for the events of one source."""

    def __init__(self, log_: EventLog, *, before: float, after: float, source: str) -> None:
        self.log = log_.acquire()
        self.folder = log_.folder
        self.before = float(before)
        self.after = float(after)
        self.source = source
        self.prefix = slug(source)
        self.encoder: H264Encoder | None = None
        self.ring: deque[tuple[int, Encoded]] = deque()  # (sequence number, packet), from a keyframe
        self._keys: deque[int] = deque()  # sequence numbers of the keyframes in the ring
        self.ring_bytes = 0
        self.ring_peak_bytes = 0
        self.clips_made = 0
        self.events_recorded = 0
        self.open: list[_Clip] = []
        self.latest: FrameResult | None = None
        self._seq = 0  # sequence number of the next packet
        self._newest = -math.inf  # source time of the newest packet
        self._first_pts: float | None = None
        self._bytes_total = 0
        self._span: tuple[float, float] | None = None  # source times of the first and last packet
        self._closed = False

    # -- PacketOutput ---------------------------------------------------------------------------------
    def attach(self, encoder: H264Encoder) -> None:
        self.encoder = encoder

    def frame(self, result: FrameResult) -> None:
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
        for clip in self.open:
            self._catch_up(clip)
        for clip in [c for c in self.open if self._newest > c.end + self.before]:
            self._finish(clip)
        self._prune()

    def event(self, record: dict[str, Any]) -> None:
        if record.get("event") not in CLIP_EVENTS or self._closed:
            return
        self.log.open()  # the folder the clip and snapshot go into
        t = float(record.get("pts", self._newest))
        last = self.open[-1] if self.open else None
        start = last.start_pts if last is not None and last.start_pts is not None else t
        if last is not None and t - self.before <= last.end and t + self.after - start <= MAX_CLIP_S:
            last.end = max(last.end, t + self.after)
            last.events += 1
            clip = last
        else:
            clip = self._start(t)
        self._catch_up(clip)
        self.events_recorded += 1
        snapshot: str | None = f"{self.prefix}-event-{self.events_recorded:04d}.jpg"
        if self.latest is None or not write_snapshot(self.folder / f"{snapshot}", self.latest, record):
            snapshot = None
        start = clip.start_pts if clip.start_pts is not None else (self._first_pts or 0.0)
        record.update(clip=clip.name, clip_offset_s=round(max(0.0, t - start), 3), snapshot=snapshot)
        self.log.write({**record, "source": self.source})

    def close(self) -> None:
        """After the encoder's last packets: finish every open clip (each one playable)."""
        if self._closed:
            return
        self._closed = True
        errors: list[Exception] = []
        for clip in list(self.open):
            try:
                self._finish(clip)
            except (OSError, UserError) as exc:
                errors.append(exc)
        self.ring.clear()
        self._keys.clear()
        self.log.close()
        if errors:
            raise errors[0]

    # -- clips ----------------------------------------------------------------------------------------
    def _start(self, t: float) -> _Clip:
        """A new clip for an event at ``t``, from the last keyframe at or before ``t - before``."""
        assert self.encoder is not None, "attach() the encoder first"
        start_seq, start_pts = self._seq, None  # nothing encoded yet: from the first packet to come
        if self._keys:
            early = [seq for seq in self._keys if self._packet(seq).source_pts <= t - self.before]
            start_seq = early[-1] if early else self._keys[0]
            start_pts = self._packet(start_seq).source_pts
        self.clips_made += 1
        name = f"{self.prefix}-clip-{self.clips_made:04d}.mp4"
        writer = Mp4Writer(self.folder / name, self.encoder, from_zero=True)
        clip = _Clip(name, writer, end=t + self.after, start_pts=start_pts, next_seq=start_seq)
        self.open.append(clip)
        log.debug("clip %s starts at %.2f s for an event at %.2f s", name, start_pts or 0.0, t)
        return clip

    def _catch_up(self, clip: _Clip) -> None:
        """Write the ring's packets the clip has not taken yet (in decode order) that show frames up to its
        end. A packet past the end is held back: with B-frames an earlier frame may still follow it and
        need it; it is written then (one frame past the end), or never."""
        for seq, packet in self.ring:
            if seq < clip.next_seq:
                continue
            clip.next_seq = seq + 1
            if clip.writer.frames_written == 0 and not clip.held and not packet.keyframe:
                continue  # a clip starts at a keyframe
            clip.held.append(packet)
        self._release(clip)

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
                clip.writer.write(packet)
                clip.shown_until = max(clip.shown_until, packet.source_pts)
            del clip.held[: last + 1]

    def _finish(self, clip: _Clip) -> None:
        self.open.remove(clip)
        clip.writer.close()
        log.info(
            "clip %s: %d frames, %d event(s)",
            self.folder / clip.name,
            clip.writer.frames_written,
            clip.events,
        )

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
            "clips": {
                "folder": str(self.folder),
                "clips": self.clips_made,
                "events": self.events_recorded,
                "before_s": self.before,
                "after_s": self.after,
                "preroll_bytes_per_s": None if rate is None else round(rate),
                "ring_peak_bytes": self.ring_peak_bytes,
            }
        }
