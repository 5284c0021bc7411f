"""A generated event store for the API tests and the benchmark (tests/measure_store.py): 100,000 events
in about 25,000 review items over 10 days, on four sources, written with the store's own row code.

``make_store`` returns what it wrote (``Item``s, newest last) so a test can work out by brute force
what each filter must return.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.catalog import MediaFile
from detector.events import EventRecord, LineCross, TrackNew, ZoneEnter, ZoneExit, iso_time
from detector.eventstore.rows import EVENT_SQL, MEDIA_SQL, event_row, media_row, stored_path, write_review
from detector.eventstore.schema import connect, migrate
from detector.review_items import BestShot, ReviewItem

SOURCES = ("front", "back", "drive", "yard")
CLASSES = ("person", "car", "dog", "bicycle")
ZONES = ("porch", "driveway", "street")
END = 1_790_000_000.0  # about when the newest item starts (fixed: results never depend on now)
DAYS = 10


def uuid7_at(seconds: float, rng: random.Random) -> str:
    """A UUID v7 of the given time (what ``events.new_id`` makes at that time)."""
    ms = int(seconds * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0x2 << 62) | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Item:
    id: str
    source: str
    severity: str
    start: float
    end: float
    objects: tuple[str, ...]
    zones: tuple[str, ...]
    events: list[dict[str, object]] = field(default_factory=list)  # (id, kind, class, zone, time)


def thumbnail() -> bytes:
    image = np.zeros((90, 160, 3), np.uint8)
    cv2.rectangle(image, (50, 20), (110, 80), (0, 255, 255), 2)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()


def make_store(path: Path, events: int = 100_000, seed: int = 21) -> list[Item]:
    """Write the store at ``path`` (schema as of today) and return its items, oldest first."""
    rng = random.Random(seed)
    db = connect(path)
    migrate(db, path)
    root = path.absolute().parent
    jpeg = thumbnail()
    items: list[Item] = []
    made = 0
    start = END - DAYS * 86400
    step = DAYS * 86400 / (events / 4)
    db.execute("BEGIN")
    run = db.execute(
        "INSERT INTO runs (started, ended, host, pid, version) VALUES (?, ?, 'generated', 0, 'test')",
        (start, END),
    ).lastrowid
    event_rows = []
    while made < events:
        start += rng.uniform(0.2, 1.8) * step
        source = rng.choice(SOURCES)
        objects = tuple(sorted(rng.sample(CLASSES, rng.choice((1, 1, 1, 2)))))
        zones = tuple(sorted(rng.sample(ZONES, rng.choice((0, 0, 1, 2)))))
        n = min(events - made, rng.randint(1, 7))
        length = rng.uniform(2.0, 60.0)
        item = Item(uuid7_at(start, rng), source, "detection", start, start + length, objects, zones)
        records: list[EventRecord] = []
        for k in range(n):
            t = start + length * k / n
            cls = objects[k % len(objects)]
            common = {
                "track_id": k + 1,
                "class_name": cls,
                "confidence": 0.8,
                "xyxy": (10.0, 20.0, 110.0, 220.0),
                "frame": int(t),
                "pts": round(t - END, 3),
            }
            if k == 0 or not zones:
                draft: EventRecord = TrackNew(**common)
            elif k % 2:
                draft = ZoneEnter(zone=zones[k % len(zones)], **common)
            else:
                draft = ZoneExit(zone=zones[k % len(zones)], dwell_s=1.0, **common)
            if k == 3:
                draft = LineCross(line="gate", direction="in", **common)
            rec = dataclasses.replace(draft, id=uuid7_at(t, rng), source=source, wall_time=iso_time(t))
            records.append(rec)
            item.events.append(
                {"id": rec.id, "kind": rec.kind, "class": cls, "zone": getattr(rec, "zone", None), "time": t}
            )
        lines = ("gate",) if any(r.kind == "line_cross" for r in records) else ()
        alert = bool(set(objects) & {"person", "car"}) or bool(zones) or bool(lines)
        item.severity = "alert" if alert else "detection"
        best = BestShot(1, objects[0], 0.8, 20000.0, (10.0, 20.0, 110.0, 220.0), 0, 0.0, start)
        review = ReviewItem(
            id=item.id,
            source=source,
            severity=item.severity,
            start_time=start,
            end_time=start + length,  # type: ignore[arg-type]
            last_time=start + length,
            media_start=start - END,
            media_end=start - END + length,
            objects=objects,
            zones=zones,
            lines=lines,
            tracks=tuple(range(1, n + 1)),
            events=tuple(r.id for r in records),
            best=best,
        )
        write_review(db, review, run)
        db.execute("INSERT INTO thumbnails (review_id, jpeg) VALUES (?, ?)", (item.id, jpeg))
        clip = MediaFile(
            "clip",
            source,
            root / f"{source}-clip-{len(items) + 1:06d}.mp4",
            start - 3,
            start + length + 3,
            bytes=1000,
            events=review.events,
            extra={"review": item.id},
        )
        db.execute(MEDIA_SQL, media_row(clip, root))
        event_rows += [event_row(r, item.id) for r in records]
        items.append(item)
        made += n
    db.executemany(EVENT_SQL, event_rows)
    db.execute("COMMIT")
    db.close()
    return items


def add_clip(path: Path, clip: Path, source: str = "front") -> int:
    """List a real file in the store (as the clip recorder would); returns its media row."""
    db = connect(path)
    try:
        db.execute(
            MEDIA_SQL, media_row(MediaFile("clip", source, clip, bytes=clip.stat().st_size), path.parent)
        )
        stored = stored_path(clip, path.absolute().parent)
        return int(db.execute("SELECT id FROM media WHERE path = ?", (stored,)).fetchone()[0])
    finally:
        db.close()


def store_size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


if __name__ == "__main__":  # python tests/store_data.py OUT.db: a store to look at
    import sys

    out = Path(sys.argv[1])
    t0 = time.perf_counter()
    made = make_store(out)
    print(f"{out}: {len(made)} items, {store_size(out) / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    sqlite3.connect(out).close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What ``sql`` finds in the store at ``path``, read without writing (a read-only connection)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
