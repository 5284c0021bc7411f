"""What counting lines and zones share: one shape for a stage that counts tracks at named shapes.

A ``ShapeCounter`` is one named shape (a line, a zone) of a source: its spec, the classes it counts,
its hysteresis band, per-class tallies of two event kinds (``in``/``out``, ``entered``/``exited``),
per-track state that is forgotten when a track ends (``stages.track.TrackBook``), and the common
fields of the events it emits. A subclass adds the geometry test and the events.

A ``CountingStage`` holds one counter per spec, feeds each the frame, draws each, and puts each
one's ``summary()`` in the run report under the stage's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from detector.drawing import name_color
from detector.events import EventRecord, object_fields
from detector.settings.analytics import LineSpec, ZoneSpec
from detector.stages.base import Stage
from detector.stages.classes import class_mask, resolve_classes
from detector.stages.geometry import anchor_points, default_band
from detector.stages.track import TrackBook
from detector.text import by_count
from detector.types import Detections, Frame, Image

TrackT = TypeVar("TrackT")
SpecT = TypeVar("SpecT", LineSpec, ZoneSpec)


class ShapeCounter(Generic[SpecT, TrackT]):
    """Bookkeeping of one named shape; ``update`` (the subclass's) once per processed frame, in order."""

    noun: ClassVar[str] = "shape"  # the event field and error prefix: "line", "zone"
    kinds: ClassVar[tuple[str, ...]] = ()  # the per-class tallies, in report order
    band_fraction: ClassVar[float] = 0.01  # default hysteresis: this much of the frame diagonal

    def __init__(
        self,
        spec: SpecT,
        frame_size: tuple[int, int],
        class_ids: Sequence[int] | None = None,
        hysteresis_px: float | None = None,
        book: TrackBook | None = None,
    ) -> None:
        self.spec: SpecT = spec
        self.name = spec.name
        self.class_ids = None if class_ids is None else list(class_ids)
        band = hysteresis_px if hysteresis_px is not None else spec.hysteresis
        self.hysteresis = float(band if band is not None else default_band(frame_size, self.band_fraction))
        self.book = book
        self.color = name_color(spec.name)
        self.counts: dict[str, dict[str, int]] = {kind: {} for kind in self.kinds}
        self._tracks: dict[int, TrackT] = {}

    def candidates(self, detections: Detections) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """Indices of the detections of this shape's classes, and their anchor points."""
        keep = np.flatnonzero(class_mask(detections, self.class_ids))
        return keep, anchor_points(detections.xyxy[keep], self.spec.anchor)

    def forget_ended(self) -> list[tuple[int, TrackT]]:
        """Drops the state of the tracks that ended this frame, so memory stays flat on endless
        streams; returns those that had some."""
        gone: list[tuple[int, TrackT]] = []
        for tid in self.book.ended if self.book is not None else ():
            track = self._tracks.pop(tid, None)
            if track is not None:
                gone.append((tid, track))
        return gone

    def tally(self, kind: str, cls: str) -> None:
        per_class = self.counts[kind]
        per_class[cls] = per_class.get(cls, 0) + 1

    def where(
        self, tid: int, cls: str, confidence: Any, xyxy: Any, frame_index: int, pts: float
    ) -> dict[str, Any]:
        """The fields every event of this shape carries: its name, when, and the object."""
        return {
            self.noun: self.name,
            "frame": int(frame_index),
            "pts": round(float(pts), 3),
            **object_fields(tid, cls, confidence, xyxy),
        }

    def tallies(self) -> dict[str, dict[str, int]]:
        """The per-class tallies for the report, each most first."""
        return {kind: by_count(self.counts[kind]) for kind in self.kinds}

    def update(self, detections: Detections, frame_index: int, pts: float) -> list[EventRecord]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError


CounterT = TypeVar("CounterT", bound=ShapeCounter[Any, Any])
CounterT_contra = TypeVar("CounterT_contra", bound=ShapeCounter[Any, Any], contravariant=True)


class ShapeAnnotator(Protocol[CounterT_contra]):
    def annotate(self, scene: Image, counter: CounterT_contra) -> Image: ...


class CountingStage(Stage, Generic[SpecT, CounterT]):
    """Every counter of one kind of a source: their events, their drawing, their report."""

    def __init__(
        self,
        counters: Sequence[CounterT],
        annotator: ShapeAnnotator[CounterT],
    ) -> None:
        self.counters = list(counters)
        self.annotator = annotator

    @staticmethod
    def build(
        make: type[CounterT],
        specs: Sequence[SpecT],
        frame_size: tuple[int, int],
        names: Mapping[int, str],
        book: TrackBook | None,
    ) -> list[CounterT]:
        """One counter per spec, its classes resolved against the model's names."""
        return [
            make(
                spec,
                frame_size,
                resolve_classes(spec.classes, names, f"{make.noun} '{spec.name}': "),
                book=book,
            )
            for spec in specs
        ]

    def count(self, frame: Frame, detections: Detections) -> list[EventRecord]:
        """Feeds the frame to every counter; their events, in counter order."""
        events: list[EventRecord] = []
        for counter in self.counters:
            events.extend(counter.update(detections, frame.index, frame.pts))
        return events

    def annotate(self, scene: Image, detections: Detections) -> Image:
        for counter in self.counters:
            self.annotator.annotate(scene, counter)
        return scene

    def report(self) -> dict[str, Any]:
        return {self.name: {c.name: c.summary() for c in self.counters}}
