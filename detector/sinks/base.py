"""The interface every sink implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

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

    def event(self, record: dict[str, Any]) -> None:
        """A non-frame record (stream gap, line crossing...). Sinks that have no use for it ignore it."""
        ...

    def close(self) -> None: ...
