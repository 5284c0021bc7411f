"""Event snapshots: the annotated frame of an event as a JPEG, with the object of the event highlighted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.drawing import draw_label_at, label_size, style_of
from detector.errors import storage_error
from detector.events import EventRecord, ObjectEvent
from detector.media.images import write_image
from detector.types import FrameResult, Image

log = logging.getLogger(__name__)

HIGHLIGHT = (0, 255, 255)  # BGR yellow, with a black outline so it shows on any background
JPEG_QUALITY = 90


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


def highlight(image: Image, result: FrameResult, record: EventRecord) -> Image:
    """A copy of ``image`` with the event's object (by track id) outlined and a caption on top."""
    out = image.copy()
    style = style_of(out)
    dets = result.detections
    tid = record.track_id if isinstance(record, ObjectEvent) else None
    if dets.tracker_id is not None and tid is not None and result.frame.index == record.frame:
        for i in np.flatnonzero(dets.tracker_id == int(tid)).tolist():
            x1, y1, x2, y2 = (round(float(v)) for v in np.clip(np.nan_to_num(dets.xyxy[i]), -1e5, 1e5))
            pad = style.line_width * 2
            lw = style.line_width * 2
            cv2.rectangle(out, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), (0, 0, 0), lw + 4, cv2.LINE_8)
            cv2.rectangle(out, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), HIGHLIGHT, lw, cv2.LINE_8)
    caption = describe(record.to_dict())
    _, label_h, _ = label_size(caption, style)
    draw_label_at(out, caption, style.pad, max(0, out.shape[0] - label_h - style.pad), HIGHLIGHT, style)
    return out


def write_snapshot(path: Path, result: FrameResult, record: EventRecord) -> bool:
    """Write the highlighted JPEG atomically; False (and a warning) when it cannot be written, a
    ``StorageError`` when the disk is full."""
    try:
        write_image(
            path, highlight(result.annotated, result, record), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
    except OSError as exc:
        why = exc.strerror or str(exc)
        full = storage_error(exc, path, f"snapshot {path} not written: {why}")
        if full is not None:
            raise full from exc
        log.warning("snapshot %s not written: %s", path, exc)
        return False
    return True
