"""Run statistics: per-stage timings, latency percentiles, counts, and the end-of-run summary."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STAGES = ("decode", "inference", "overlay", "write")


class StageTimer:
    """Mean over the whole run plus percentiles over the most recent samples (memory stays flat)."""

    def __init__(self, window: int = 20000) -> None:
        self.count = 0
        self.total = 0.0
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self.count += 1
            self.total += ms
            self._recent.append(ms)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        with self._lock:
            if not self._recent:
                return 0.0
            return float(np.percentile(np.fromiter(self._recent, float), q))

    def values(self) -> list[float]:
        with self._lock:
            return list(self._recent)


@dataclass
class RunStats:
    """Everything the summary and the report need; updated by the pipeline stages."""

    source: str = ""
    backend: str = ""
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_corrupt: int = 0
    gaps: int = 0
    wall_seconds: float = 0.0
    first_frame_seconds: float | None = None
    stages: dict[str, StageTimer] = field(default_factory=lambda: {s: StageTimer() for s in STAGES})
    latency: StageTimer = field(default_factory=StageTimer)
    detections_per_class: Counter[str] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "backend": self.backend,
            "frames": {
                "read": self.frames_read,
                "processed": self.frames_processed,
                "dropped": self.frames_dropped,
                "corrupt": self.frames_corrupt,
            },
            "gaps": self.gaps,
            "wall_seconds": round(self.wall_seconds, 3),
            "first_frame_seconds": None
            if self.first_frame_seconds is None
            else round(self.first_frame_seconds, 3),
            "fps": round(self.fps, 2),
            "stage_ms": {
                name: {"mean": round(t.mean, 2), "p95": round(t.percentile(95), 2)}
                for name, t in self.stages.items()
            },
            "latency_ms": {
                "p50": round(self.latency.percentile(50), 1),
                "p95": round(self.latency.percentile(95), 1),
                "max": round(max(self.latency.values(), default=0.0), 1),
            },
            "detections_per_class": dict(self.detections_per_class.most_common()),
            "outputs": list(self.outputs),
        }

    def summary(self) -> str:
        """One screen, plain text, for the end of a run."""
        stage = "  ".join(f"{n} {t.mean:.1f}" for n, t in self.stages.items())
        classes = ", ".join(f"{k} {v}" for k, v in self.detections_per_class.most_common(8)) or "none"
        lines = [
            f"source     {self.source}  ({self.backend})",
            f"frames     read {self.frames_read}, processed {self.frames_processed}, "
            f"dropped {self.frames_dropped}, corrupt {self.frames_corrupt}"
            + (f", gaps {self.gaps}" if self.gaps else ""),
            f"speed      {self.fps:.1f} fps over {self.wall_seconds:.1f} s"
            + (f", first frame after {self.first_frame_seconds:.2f} s" if self.first_frame_seconds else ""),
            f"stage ms   {stage}  (mean per frame)",
            f"latency    p50 {self.latency.percentile(50):.0f} ms, p95 {self.latency.percentile(95):.0f} ms",
            f"detections {classes}",
        ]
        if self.outputs:
            lines.append(f"outputs    {', '.join(self.outputs)}")
        return "\n".join(lines)
