"""The interface every sink implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from detector.events import EventRecord
from detector.types import Detections, Frame


@dataclass(frozen=True)
class FrameResult:
    """One processed frame as it reaches the sinks."""

    frame: Frame
    detections: Detections
    annotated: npt.NDArray[np.uint8]
    latency_ms: float
    extra: Mapping[str, Any] = field(default_factory=dict)  # per-frame extras for JSONL, e.g. zone occupancy
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
