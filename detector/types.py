"""Core data types and contracts, the bottom of the house: a captured ``Frame``, the ``Detections`` found
in it, the ``FrameResult`` that reaches the sinks, and the ``Sink`` and ``FileOutput`` contracts every
output keeps (event records: ``detector.events``; review items: ``detector.review_items``; files kept
on disk: ``detector.catalog``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from detector.events import EventRecord
from detector.text import by_count

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Image = npt.NDArray[np.uint8]  # BGR uint8 (H, W, 3)


class Inference(Enum):
    """Whether the model ran on a frame (``Frame.inference``), and if not, why."""

    RAN = "ran"
    NO_MOTION = "no_motion"  # nothing moved: the last detections stand, tracks hold still
    BETWEEN = "between"  # between two runs of --detect-fps: tracks move on by the tracker's prediction


@dataclass(frozen=True)
class Frame:
    """One decoded picture.

    ``image`` is BGR uint8 (H, W, 3). ``index`` is the 0-based frame index in the
    source, ``pts`` the presentation time in seconds (source time for files,
    seconds since the first capture for live sources), and ``capture_time`` the
    ``time.monotonic()`` at which the frame left the decoder.

    What the pipeline learnt of it on the way: ``motion``, the motion boxes (N, 4) the motion check
    found (None: not checked), and ``inference``, whether the model ran on it.
    """

    image: Image
    index: int
    pts: float
    capture_time: float
    motion: FloatArray | None = None
    inference: Inference = Inference.RAN

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 uint8 BGR, got {img.dtype} {img.shape}")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class Column:
    """The per-detection columns stages add to ``Detections.data`` (as supervision's ``data``)."""

    STATIONARY = "stationary"  # bool: the track is parked (stationary objects on; the track stage)
    TRACK_AGE = "track_age"  # float64: seconds since the track was first seen (the track stage)
    ZONES = "zones"  # object: a tuple of the names of the zones the object is inside (the zones stage)


@dataclass
class Detections:
    """Boxes found in one frame, in source-frame pixels.

    ``xyxy`` is float32 (N, 4); ``confidence`` float32 (N,); ``class_id`` int64 (N,);
    ``tracker_id`` int64 (N,) or None. ``names`` maps class ids to names. ``data``: further
    per-detection columns, each an array of N (``Column`` names those the stages add), filtered
    with the boxes.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray | None = None
    names: Mapping[int, str] = field(default_factory=dict)
    data: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
        for name in ("confidence", "class_id", "tracker_id"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"Detections.{name} has {len(arr)} entries, xyxy has {n}")
        for key, column in self.data.items():
            if len(column) != n:
                raise ValueError(f"Detections.data[{key!r}] has {len(column)} entries, xyxy has {n}")

    @classmethod
    def empty(cls, names: Mapping[int, str] | None = None) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            names=dict(names or {}),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice) -> Detections:
        """Filter by a boolean mask, an index array or a slice."""
        if isinstance(index, np.ndarray) and index.dtype == np.bool_ and len(index) != len(self):
            raise IndexError(f"mask has {len(index)} entries, detections have {len(self)}")
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            names=self.names,
            data={key: column[index] for key, column in self.data.items()},
        )

    def with_data(self, **columns: npt.NDArray[Any]) -> Detections:
        """The same detections with ``columns`` added to (or replaced in) ``data``; the arrays are
        shared, not copied."""
        return Detections(
            self.xyxy, self.confidence, self.class_id, self.tracker_id, self.names, {**self.data, **columns}
        )

    def class_name(self, class_id: int) -> str:
        return self.names.get(int(class_id), str(int(class_id)))

    def counts(self) -> dict[str, int]:
        """Number of detections per class name, most frequent first."""
        ids, counts = np.unique(self.class_id, return_counts=True)
        return by_count({self.class_name(i): int(c) for i, c in zip(ids, counts, strict=True)})

    def to_records(self) -> list[dict[str, object]]:
        """Per-detection dicts as written to JSON lines."""
        tids = self.tracker_id
        return [
            {
                "class_id": int(self.class_id[i]),
                "class_name": self.class_name(int(self.class_id[i])),
                "confidence": round(float(self.confidence[i]), 4),
                "xyxy": [round(float(v), 1) for v in self.xyxy[i]],
                "track_id": None if tids is None else int(tids[i]),
            }
            for i in range(len(self))
        ]


@dataclass
class FrameFacts:
    """What the stages learnt of one frame besides its detections, as typed fields; None where no stage
    said (its feature is off). The frame's JSON line carries those that are set, in this order."""

    inference: bool | None = None  # a gated source: whether the model ran on the frame
    motion: list[list[int]] | None = None  # motion gating: where the check saw change ([] nothing moved)
    stationary: list[int] | None = None  # stationary objects on: the ids of the tracks parked now
    zones: dict[str, dict[str, int]] | None = None  # zones: the objects inside each, per class

    def update(self, other: FrameFacts) -> None:
        """Take what ``other`` says (a later stage's word wins)."""
        for name, value in other.__dict__.items():
            if value is not None:
                setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The facts that are set, as the frame's JSON line has them."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class FrameResult:
    """One processed frame as it reaches the sinks."""

    frame: Frame
    detections: Detections
    annotated: npt.NDArray[np.uint8]
    latency_ms: float
    facts: FrameFacts = field(default_factory=FrameFacts)  # what the stages learnt of it (zones, motion...)
    source: str | None = None  # the source's name (several sources in one run)


class Sink(Protocol):
    """Receives processed frames in order; ``close`` finalizes the output (always called)."""

    def write(self, result: FrameResult) -> None: ...

    def event(self, record: EventRecord) -> None:
        """A finished event record (a line crossing, a gap...): the same object every sink of the lane
        gets, never to be changed. Sinks that have no use for it ignore it."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class FileOutput(Protocol):
    """A sink that writes a file: its path, and why it stopped writing it part-way (None while fine).
    The run's summary marks such a file as incomplete."""

    path: Path | None
    failed: str | None


def part_reports(*groups: Iterable[object]) -> list[Mapping[str, Any]]:
    """What each stage and sink with a ``report()`` adds to the run report, in order."""
    parts: list[Mapping[str, Any]] = []
    for group in groups:
        for part in group:
            report = getattr(part, "report", None)
            if callable(report):
                parts.append(report())
    return parts
