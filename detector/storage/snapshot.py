"""Event snapshots: the annotated frame of an event as a JPEG, with the object of the event highlighted.

How many, how large and of what, as ``snapshots`` says (``SnapshotSettings``): ``per-track`` one for
each event that makes a clip (each new object), ``per-item`` one per review item (named on its first
event, rewritten with the item's best shot when the item ends), ``off`` none; scaled down to
``width`` pixels and encoded at ``quality``; the whole ``frame`` (the object outlined) or a crop
around the ``object`` with as much again of its surroundings. ``Snapshots`` is the clip recorder's
part that makes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.catalog import MediaFile
from detector.drawing import Style, draw_label_at, label_size, style_of
from detector.errors import StorageError, storage_error
from detector.events import EventRecord, ObjectEvent
from detector.media.images import fit_width, write_image
from detector.review_items import ReviewUpdate
from detector.settings.review import SnapshotSettings
from detector.storage.clipfolder import ClipFolder
from detector.types import FrameResult, Image

log = logging.getLogger(__name__)

HIGHLIGHT = (0, 255, 255)  # BGR yellow, with a black outline so it shows on any background
Box = tuple[float, float, float, float]


def event_text(record: dict[str, Any]) -> tuple[str, str]:
    """(what, who) of an event: ``line_cross door out``, ``#12 person``."""
    what = " ".join(str(record[k]) for k in ("event", "line", "zone", "direction") if record.get(k))
    tid = record.get("track_id")
    who = " ".join(x for x in ("" if tid is None else f"#{tid}", str(record.get("class_name", ""))) if x)
    return what or "event", who


def describe(record: dict[str, Any]) -> str:
    """``line_cross door out: #12 person at 3.4 s`` for a caption."""
    what, who = event_text(record)
    return f"{what}: {who} at {float(record.get('pts', 0.0)):.1f} s"


def _outline(out: Image, xyxy: Box, style: Style) -> None:
    x1, y1, x2, y2 = (round(float(v)) for v in np.clip(np.nan_to_num(np.asarray(xyxy)), -1e5, 1e5))
    pad = style.line_width * 2
    lw = style.line_width * 2
    cv2.rectangle(out, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), (0, 0, 0), lw + 4, cv2.LINE_8)
    cv2.rectangle(out, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), HIGHLIGHT, lw, cv2.LINE_8)


def _caption(out: Image, text: str) -> None:
    style = style_of(out)
    _, label_h, _ = label_size(text, style)
    draw_label_at(out, text, style.pad, max(0, out.shape[0] - label_h - style.pad), HIGHLIGHT, style)


def event_box(result: FrameResult, record: EventRecord) -> Box | None:
    """Where the event's object (by track id) is in ``result``'s frame, if it is that frame's."""
    dets = result.detections
    tid = record.track_id if isinstance(record, ObjectEvent) else None
    if dets.tracker_id is None or tid is None or result.frame.index != record.frame:
        return None
    found = np.flatnonzero(dets.tracker_id == int(tid)).tolist()
    return tuple(float(v) for v in dets.xyxy[found[0]][:4]) if found else None  # type: ignore[return-value]


def highlight(image: Image, result: FrameResult, record: EventRecord) -> Image:
    """A copy of ``image`` with the event's object (by track id) outlined and a caption on top."""
    out = image.copy()
    box = event_box(result, record)
    if box is not None:
        _outline(out, box, style_of(out))
    _caption(out, describe(record.to_dict()))
    return out


def crop_around(image: Image, xyxy: Box) -> Image:
    """The object's box with as much again of its surroundings (half its size on each side), within
    the frame; at least 64 pixels each way where the frame has them."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    bw, bh = max(64.0, 2 * (x2 - x1)), max(64.0, 2 * (y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, min(w - bw, cx - bw / 2))), int(max(0, min(h - bh, cy - bh / 2)))
    return image[top : min(h, top + round(bh)), left : min(w, left + round(bw))]


def render(image: Image, box: Box | None, caption: str | None, settings: SnapshotSettings) -> Image:
    """The snapshot's picture: ``image`` with ``box`` outlined (cropped around it with ``object``),
    ``caption`` at the bottom, scaled down to ``settings.width``."""
    out = image.copy()
    if box is not None:
        _outline(out, box, style_of(out))
        if settings.area == "object":
            out = np.ascontiguousarray(crop_around(out, box))
    out = np.ascontiguousarray(fit_width(out, settings.width))
    if caption:
        _caption(out, caption)
    return out


def write_jpeg(path: Path, image: Image, quality: int) -> bool:
    """Write ``image`` as a JPEG atomically; False (and a warning) when it cannot be, a
    ``StorageError`` when the disk is full."""
    try:
        write_image(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except OSError as exc:
        why = exc.strerror or str(exc)
        full = storage_error(exc, path, f"snapshot {path} not written: {why}")
        if full is not None:
            raise full from exc
        log.warning("snapshot %s not written: %s", path, exc)
        return False
    return True


class Snapshots:
    """The snapshots of one source's clip recorder: ``take`` for an event that makes a clip (the name
    of its snapshot, or None), ``review`` for its items (``per-item``: the best shot, once it ends).
    ``listed`` is told of each finished snapshot, ``failed`` of a full disk."""

    def __init__(
        self,
        folder: ClipFolder,
        source: str,
        settings: SnapshotSettings | None,
        listed: Callable[[MediaFile], None],
        failed: Callable[[StorageError], None],
    ) -> None:
        self.folder = folder
        self.source = source
        self.settings = settings or SnapshotSettings()
        self.listed = listed
        self.failed = failed
        self.items: dict[str, tuple[Path, MediaFile]] = {}  # per-item: open item -> its snapshot
        self.written = 0

    def take(
        self, record: EventRecord, latest: FrameResult | None, item: str, wall: float | None, t: float
    ) -> str | None:
        """The snapshot of an event of ``item`` (its name), or None: none wanted, no frame yet, or it
        cannot be written."""
        mode = self.settings.mode
        if latest is None or mode == "off" or (mode == "per-item" and item in self.items):
            return None
        box = event_box(latest, record)
        picture = render(latest.annotated, box, describe(record.to_dict()), self.settings)
        path = self._write(picture)
        if path is None:
            return None
        media = MediaFile("snapshot", self.source, path.absolute(), start=wall, end=wall, media_start=t,
                          media_end=t, bytes=path.stat().st_size, events=(record.id,))  # fmt: skip
        if mode == "per-item":  # listed once the item's best shot is in it
            self.items[item] = (path, media)
        else:
            self.listed(media)
        return path.name

    def review(self, update: ReviewUpdate) -> None:
        """``per-item``: an item ended: its snapshot becomes its best shot, and is listed."""
        if update.type != "end" or update.after.id not in self.items:
            return
        path, media = self.items.pop(update.after.id)
        best, picture = update.after.best, update.picture
        if best is not None and picture is not None:
            caption = f"best: #{best.track_id} {best.class_name} at {best.pts:.1f} s"
            try:
                image = render(picture.image, best.xyxy, caption, self.settings)
                write_jpeg(path, image, self.settings.quality)
            except StorageError as exc:  # the event's snapshot stays
                self.failed(exc)
            media = MediaFile(media.kind, media.source, media.path, start=best.time, end=best.time,
                              media_start=best.pts, media_end=best.pts, bytes=path.stat().st_size,
                              events=media.events)  # fmt: skip
        self.listed(media)

    def close(self) -> None:
        """The run ended: items never heard their end keep the snapshot of their first event."""
        for path, media in self.items.values():
            if path.exists():
                self.listed(media)
        self.items.clear()

    def _write(self, picture: Image) -> Path | None:
        path: Path | None = None
        try:
            path = self.folder.claim(self.source, "event", ".jpg")
            written = write_jpeg(path, picture, self.settings.quality)
        except StorageError as exc:
            self.failed(exc)
            written = False
        if path is not None and not written:
            path.unlink(missing_ok=True)
            return None
        self.written += written
        return path
