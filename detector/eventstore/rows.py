"""What one event record, review item or media file is as rows of the store (and back), and where
a file's path is kept: relative to the store's folder when the file is inside it (so a folder copied
elsewhere still finds its clips), else absolute."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.catalog import MediaFile
from detector.events import EventRecord
from detector.eventstore.schema import LABELS_SQL, labels
from detector.review_items import ReviewItem


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def stored_path(path: Path, root: Path) -> str:
    """``path`` as the store keeps it: relative to ``root`` (the store's folder) if inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return str(absolute)


def real_path(stored: str, root: Path) -> Path:
    """Where a stored path is on this machine."""
    path = Path(stored)
    return path if path.is_absolute() else root / path


def pid_alive(pid: int) -> bool:
    """A process of this machine with that id exists (maybe not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


EVENT_SQL = (
    "INSERT OR IGNORE INTO events (id, kind, source, time, class_name, track_id, zone, line, review_id,"
    " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def event_row(record: EventRecord, review_id: str | None) -> tuple[Any, ...]:
    data = record.to_dict()
    return (
        record.id,
        record.kind,
        record.source,
        unix_time(record.wall_time),
        data.get("class_name"),
        data.get("track_id"),
        data.get("zone"),
        data.get("line"),
        review_id,
        dumps(data),
    )


REVIEW_SQL = (
    "INSERT INTO reviews (id, run, source, severity, start_time, end_time, last_time, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET severity = excluded.severity,"
    " end_time = excluded.end_time, last_time = excluded.last_time, data = excluded.data"
)


def write_review(db: sqlite3.Connection, item: ReviewItem, run: int | None) -> None:
    data = item.to_dict()
    db.execute(
        REVIEW_SQL,
        (item.id, run, item.source, item.severity, item.start_time, item.end_time, item.last_time,
         dumps(data)),
    )  # fmt: skip
    db.executemany(LABELS_SQL, labels(data, item.start_time, item.id))


MEDIA_SQL = (
    "INSERT INTO media (kind, source, path, start_time, end_time, media_start, media_end, bytes,"
    " review_id, event_id, events, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (path) DO UPDATE SET kind = excluded.kind, source = excluded.source,"
    " start_time = excluded.start_time, end_time = excluded.end_time,"
    " media_start = excluded.media_start, media_end = excluded.media_end, bytes = excluded.bytes,"
    " review_id = excluded.review_id, event_id = excluded.event_id, events = excluded.events,"
    " extra = excluded.extra"
)


def media_row(media: MediaFile, root: Path) -> tuple[Any, ...]:
    review = media.extra.get("review") if media.kind == "clip" else None
    event = media.events[0] if media.kind == "snapshot" and media.events else None
    extra = {k: v for k, v in media.extra.items() if k != "review"}
    return (
        media.kind,
        media.source,
        stored_path(media.path, root),
        media.start,
        media.end,
        media.media_start,
        media.media_end,
        int(media.bytes),
        str(review) if review else None,
        event,
        dumps(list(media.events)),
        dumps(extra),
    )


def delete_review(db: sqlite3.Connection, review_id: str, *, reason: str = "retention") -> int:
    """An item with its events, labels, thumbnail and the rows of its events' snapshots, leaving a
    ``deleted_reviews`` row (when and why); returns the number of events deleted."""
    db.execute(
        "INSERT OR REPLACE INTO deleted_reviews (review_id, source, start_time, deleted_at, reason)"
        " SELECT id, source, start_time, ?, ? FROM reviews WHERE id = ?",
        (time.time(), reason, review_id),
    )
    ids = [r[0] for r in db.execute("SELECT id FROM events WHERE review_id = ?", (review_id,))]
    db.executemany("DELETE FROM media WHERE event_id = ? AND +kind = 'snapshot'", [(i,) for i in ids])
    gone = db.execute("DELETE FROM events WHERE review_id = ?", (review_id,)).rowcount
    for table, key in (("reviews", "id"), ("thumbnails", "review_id"), ("review_labels", "review_id")):
        db.execute(f"DELETE FROM {table} WHERE {key} = ?", (review_id,))
    return int(gone)


def remove_media(db: sqlite3.Connection, paths: Sequence[Path], root: Path, written: Counter[str]) -> None:
    """Forget files retention deleted: their rows, a clip's with its item (``delete_review``)."""
    for path in paths:
        row = db.execute("SELECT id, kind, review_id FROM media WHERE path = ?", (stored_path(path, root),))
        found = row.fetchone()
        if found is None:
            continue
        media_id, kind, review_id = found
        db.execute("DELETE FROM media WHERE id = ?", (media_id,))
        written["removed"] += 1
        if kind == "clip" and review_id:
            written["events_removed"] += delete_review(db, review_id)


def list_found(db: sqlite3.Connection, media: MediaFile, root: Path) -> bool:
    """List a file an earlier run left unlisted (killed before it was told), unless it is; a clip
    joins the item of its events, a snapshot only comes with its event's row. True if it listed it."""
    if db.execute("SELECT 1 FROM media WHERE path = ?", (stored_path(media.path, root),)).fetchone():
        return False
    if media.kind == "snapshot" and not (
        media.events and db.execute("SELECT 1 FROM events WHERE id = ?", (media.events[0],)).fetchone()
    ):
        return False  # a snapshot's row never comes without its event's
    if media.kind == "clip" and "review" not in media.extra:
        for event_id in media.events:
            row = db.execute("SELECT review_id FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is not None and row[0]:
                media = dataclasses.replace(media, extra={**media.extra, "review": row[0]})
                break
    db.execute(MEDIA_SQL, media_row(media, root))
    return True


def end_dead_runs(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """End the items of runs on this machine that died without closing the store (in the open
    transaction); their (run, pid)."""
    host, me = socket.gethostname(), os.getpid()
    ended_runs = []
    rows = db.execute("SELECT id, started, pid FROM runs WHERE ended IS NULL AND host = ?", (host,))
    for run, started, pid in rows.fetchall():
        if pid == me or pid_alive(pid):
            continue
        ended = db.execute("SELECT max(last_time) FROM reviews WHERE run = ?", (run,)).fetchone()[0]
        db.execute(
            "UPDATE reviews SET end_time = last_time, data = json_set(data, '$.end_time', last_time)"
            " WHERE run = ? AND end_time IS NULL",
            (run,),
        )
        db.execute("UPDATE runs SET ended = ? WHERE id = ?", (ended or started, run))
        ended_runs.append((run, pid))
    return ended_runs
