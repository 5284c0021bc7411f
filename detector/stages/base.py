"""The one interface of per-frame work after detection.

A stage sees each frame with the detections that reach it and returns a ``StageResult``: the
detections it passes on (filtered, tracked...), the events it completed, and what it learnt of
the frame (``FrameFacts``: typed fields, which the frame's JSONL line carries). A stage that draws
sets ``layer`` and implements ``annotate``, which draws on the annotated copy of the frame (in
place, returning it). The pipeline runs every stage's
``update`` in list order, then every drawing stage's ``annotate`` in ``layer`` order, bottom first.
At the end of a source, ``finish`` returns the events still open (a zone exit for whoever is still
inside); ``report`` adds the stage's totals to the run report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from detector.events import EventRecord
from detector.types import Detections, Frame, FrameFacts, Image


@dataclass
class StageResult:
    detections: Detections
    events: list[EventRecord] = field(default_factory=list)  # not yet stamped (the lane does that)
    facts: FrameFacts | None = None  # what it learnt of the frame, if anything


class Layer:
    """Drawing order, bottom first: covering comes before anything is drawn on top."""

    PRIVACY = 0
    BACKGROUND = 10
    MOTION = 15
    ZONES = 20
    TRAILS = 30
    LINES = 40
    BOXES = 50


class Stage:
    """Base class with do-nothing defaults; a stage overrides what it does."""

    name: ClassVar[str] = "stage"
    layer: ClassVar[int | None] = None  # None: draws nothing

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        return StageResult(detections)

    def annotate(self, scene: Image, detections: Detections) -> Image:
        return scene

    def finish(self) -> list[EventRecord]:
        return []

    def report(self) -> dict[str, Any]:
        return {}
