"""Run statistics of one source: per-stage timings, latency percentiles, counts, and the live frame rate."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.text import by_count
from detector.types import Inference

STAGES = ("decode", "inference", "stages", "write")  # per-frame ms, each in its own thread


class FpsMeter:
    """Measured frame rate: exponential moving average of the intervals between ticks.

    ``value`` is None until two ticks have been seen; ``tick`` returns 0.0 until then.
    """

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else float(now)
        if self._last is not None:
            dt = now - self._last
            if dt > 0.0:  # the first interval seeds the average; repeated timestamps are ignored
                self._interval = (
                    dt if self._interval is None else self._interval + self.alpha * (dt - self._interval)
                )
        self._last = now
        return self.value or 0.0

    @property
    def value(self) -> float | None:
        return None if self._interval is None else 1.0 / self._interval

    def reset(self) -> None:
        """Forget history, e.g. after a pause, so the gap does not drag the average down."""
        self._last = None
        self._interval = None


class StageTimer:
    """Mean over the whole run plus percentiles over the most recent samples (memory stays flat).

    ``observers`` are called with every sample, on the thread that adds it (the web view's
    Prometheus histograms)."""

    def __init__(self, window: int = 20000) -> None:
        self.count = 0
        self.total = 0.0
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.observers: list[Callable[[float], None]] = []

    def add(self, ms: float) -> None:
        with self._lock:
            self.count += 1
            self.total += ms
            self._recent.append(ms)
        for observe in self.observers:
            observe(ms)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        with self._lock:  # copy under the lock, compute outside it: ``add`` never waits on numpy
            recent = list(self._recent)
        return float(np.percentile(np.asarray(recent, float), q)) if recent else 0.0

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
    frames_detected: int = 0  # processed frames the model ran on
    frames_motion_skipped: int = 0  # processed frames where nothing moved (no model run)
    frames_rate_skipped: int = 0  # processed frames between two model runs of --detect-fps
    gaps: int = 0
    reconnecting: bool = False  # a live source is lost and being reconnected (the web view shows it)
    wall_seconds: float = 0.0
    first_frame_seconds: float | None = None
    stages: dict[str, StageTimer] = field(default_factory=lambda: {s: StageTimer() for s in STAGES})
    latency: StageTimer = field(default_factory=StageTimer)
    detections_per_class: Counter[str] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)
    fps_meter: FpsMeter = field(default_factory=FpsMeter)  # recent frame rate, for the panel

    def count_frame(
        self,
        detections_counts: dict[str, int],
        latency_ms: float,
        started_at: float,
        inference: Inference = Inference.RAN,
    ) -> None:
        """Book one processed frame (called once per frame that reached the sinks)."""
        self.frames_processed += 1
        if inference is Inference.RAN:
            self.frames_detected += 1
        elif inference is Inference.NO_MOTION:
            self.frames_motion_skipped += 1
        else:
            self.frames_rate_skipped += 1
        self.latency.add(latency_ms)
        if self.first_frame_seconds is None:
            self.first_frame_seconds = time.monotonic() - started_at
        for name, n in detections_counts.items():
            self.detections_per_class[name] += n
        self.fps_meter.tick()

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
                "detected": self.frames_detected,
                "motion_skipped": self.frames_motion_skipped,
                "rate_skipped": self.frames_rate_skipped,
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
            "detections_per_class": by_count(self.detections_per_class),
            "outputs": list(self.outputs),
        }


def model_runs(frames: Mapping[str, Any]) -> str | None:
    """How often the model ran, from a report's ``frames``, when frames skipped it (motion gating,
    --detect-fps): "ran on 38 of 300 frames (motion-skipped 262)"; None when none did."""
    skipped = {"motion-skipped": frames.get("motion_skipped", 0), "between": frames.get("rate_skipped", 0)}
    if not any(skipped.values()):
        return None
    rest = ", ".join(f"{name} {n}" for name, n in skipped.items() if n)
    return f"ran on {frames.get('detected', 0)} of {frames['processed']} frames ({rest})"
