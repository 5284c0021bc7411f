"""``detector events FILE``: the review items of an event store, newest first, as a table or (``--json``)
one JSON object per line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.cli.common import add_general_flags, positive

COLUMNS = ("start", "length", "source", "severity", "objects", "where", "events", "clip")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "events",
        help="list the review items of an event store (a table, or --json lines)",
        description="List the review items of the event store FILE (--events-db of a run), newest first.",
        epilog="Times for --since and --until: Unix seconds, an ISO date or time (2026-12-01, "
        "2026-12-01T09:00, local unless it has an offset), or how long ago (90s, 15m, 2h, 3d). "
        "Exit codes: 0 done, 2 usage error or no such store.",
    )
    p.add_argument("file", metavar="FILE", help="the event store (e.g. DIR/events.db of --clips DIR)")
    p.add_argument("--source", metavar="NAME", help="only this source's items")
    p.add_argument("--class", dest="class_name", metavar="CLASS", help="only items with this class")
    p.add_argument("--zone", metavar="ZONE", help="only items with this zone")
    p.add_argument("--severity", choices=("alert", "detection"), help="only alerts, or only detections")
    p.add_argument("--since", metavar="WHEN", help="items that end after WHEN")
    p.add_argument("--until", metavar="WHEN", help="items that start before WHEN")
    p.add_argument("--limit", type=positive, metavar="N", help="at most N items (default: all)")
    p.add_argument("--json", dest="print_json", action="store_true", help="one JSON object per line")
    add_general_flags(p, config=False)
    p.set_defaults(handler=command)


def _items(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    from detector.errors import UserError
    from detector.eventstore.filters import ReviewQuery, read_time
    from detector.eventstore.queries import StoreReader
    from detector.eventstore.schema import existing_store

    now = time.time()
    try:
        after = read_time(args.since, now) if args.since else None
        before = read_time(args.until, now) if args.until else None
    except ValueError as exc:
        raise UserError(f"--since/--until: {exc}") from None
    existing_store(Path(args.file))  # read-only: an empty file is no store (UserError)
    reader = StoreReader(Path(args.file), must_exist=True)
    left, cursor = args.limit, None
    while left is None or left > 0:
        page = min(500, left) if left is not None else 500
        q = ReviewQuery(source=args.source, severity=args.severity, class_name=args.class_name,
                        zone=args.zone, after=after, before=before, limit=page, cursor=cursor)  # fmt: skip
        items, cursor = reader.reviews(q)
        yield from items
        if left is not None:
            left -= len(items)
        if cursor is None:
            break
    reader.close()


def _row(item: dict[str, Any]) -> list[str]:
    where = [*item["zones"], *(f"line {n}" for n in item["lines"])]
    clip = item["clip"]["name"] if item.get("clip") else "-"
    flag = item["severity"] + (" (open)" if item.get("in_progress") else "")
    return [
        datetime.fromtimestamp(item["start_time"]).strftime("%Y-%m-%d %H:%M:%S"),
        f"{max(0.0, item['media_end'] - item['media_start']):.1f} s",  # of the video: files run faster
        item["source"],
        flag,
        ", ".join(item["objects"]) or "-",
        ", ".join(where) or "-",
        str(len(item["events"])),
        clip,
    ]


def command(args: argparse.Namespace, started_at: float) -> int:
    from detector.sinks.jsonl import dumps_line

    out = sys.stdout
    if args.print_json:
        for item in _items(args):
            item.pop("thumbnail", None)
            out.write(dumps_line(item))
        return 0
    rows = [_row(item) for item in _items(args)]
    if not rows:
        print("no review items match", file=sys.stderr)
        return 0
    widths = [max(len(c), *(len(r[k]) for r in rows)) for k, c in enumerate(COLUMNS)]
    for cells in (list(COLUMNS), *rows):
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
    return 0
