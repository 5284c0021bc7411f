"""Which review items make a notification, and what it says: one source's alert notifier.

An item makes one notification, the first time an update shows it as an ``alert`` that passes the
filters (``notify.classes``: one of its objects; ``notify.zones``: one of its zones): when it opens as
an alert, or when it becomes one. Never again for that item, and not for any item of the source
within ``notify.cooldown`` seconds of the last notification (item time: capture time for live
sources, processing time for files); what the cooldown or the filters hold back is counted. The
notification says the source, the objects, the zones and lines, and the time; with
``notify.url_base`` it links to the item on the history page; its picture is the item's best shot,
encoded on the sending thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from detector.events import EventRecord
from detector.media.images import picture_jpeg
from detector.notify.worker import Notifier
from detector.review_items import ReviewItem, ReviewUpdate
from detector.settings.notify import NotifySettings
from detector.stages.classes import class_names
from detector.types import FrameResult

JPEG_QUALITY = 85


def wanted_classes(wanted: list[int | str] | None, names: Mapping[int, str]) -> set[str] | None:
    """``notify.classes`` by name (ids through the model's names), lower case; None: any class."""
    return None if wanted is None else {name.lower() for name in class_names(wanted, names)}


def describe(item: ReviewItem) -> tuple[str, str]:
    """(title, body): ``person, car at door`` and ``door: person, car in drive, crossing gate at
    14:03:27 on 2026-12-01``."""
    objects = ", ".join(item.objects) or "activity"
    where = ""
    if item.zones:
        where += f" in {', '.join(item.zones)}"
    if item.lines:
        where += f", crossing {', '.join(item.lines)}"
    when = datetime.fromtimestamp(item.start_time).astimezone()
    body = f"{item.source}: {objects}{where} at {when:%H:%M:%S} on {when:%Y-%m-%d}"
    return f"{objects} at {item.source}", body


class AlertNotifier:
    """One source's notifications (a review listener; a sink only for its report)."""

    def __init__(
        self, notifier: Notifier, source: str, settings: NotifySettings, names: Mapping[int, str]
    ) -> None:
        self.notifier = notifier
        self.source = source
        self.settings = settings
        self.classes = wanted_classes(settings.classes, names)
        self.zones = set(settings.zones) if settings.zones is not None else None
        self.done: set[str] = set()  # items notified (or held back by the cooldown), while open
        self.last: float | None = None  # item time of the latest notification
        self.held = 0  # alerts the cooldown held back
        self.filtered = 0  # ended alert items the filters kept out
        self.open_filtered: set[str] = set()  # open ones, so far

    def passes(self, item: ReviewItem) -> bool:
        if self.classes is not None and not {o.lower() for o in item.objects} & self.classes:
            return False
        return self.zones is None or bool(set(item.zones) & self.zones)

    def review(self, update: ReviewUpdate) -> None:
        item, ended = update.after, update.type == "end"
        if item.id in self.done:
            if ended:
                self.done.discard(item.id)  # memory stays flat: an ended item never comes back
            return
        if item.severity != "alert":
            return
        if not self.passes(item):
            if ended:
                self.filtered += 1
                self.open_filtered.discard(item.id)
            else:
                self.open_filtered.add(item.id)
            return
        self.open_filtered.discard(item.id)
        if not ended:
            self.done.add(item.id)
        now = item.last_time
        if self.last is not None and now - self.last < self.settings.cooldown:
            self.held += 1
            return
        self.last = now
        title, body = describe(item)
        if self.settings.url_base:
            body += f"\n{self.settings.url_base}/history?review={item.id}"
        picture, width = update.picture, self.settings.snapshot_width
        encode = None if picture is None else (lambda: picture_jpeg(picture, width, JPEG_QUALITY))
        self.notifier.submit(self.source, title, body, encode)

    # -- a sink, for the run report -----------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        pass

    def event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        pass

    def report(self) -> dict[str, Any]:
        n = self.notifier
        return {
            "notify": {
                "targets": [t.name for t in n.targets],
                "sent": n.sent[self.source],
                "failed": n.failed[self.source],
                "dropped": n.dropped[self.source],
                "skipped": self.held + self.filtered + len(self.open_filtered),
            }
        }
