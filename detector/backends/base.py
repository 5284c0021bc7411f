"""What a detection backend is: ``Detector`` turns a BGR frame into ``Detections`` in source pixels.

A detector may keep several frames in flight (``max_in_flight``): ``submit`` starts one and returns
a ``Pending`` whose ``result()`` waits for it. Results must be collected in submit order, and at
most ``max_in_flight`` may be outstanding. ``on_ready`` (optional) is called, from any thread, when
a result can be collected without waiting: the pipeline's inference loop sleeps until then.
A detector may also take several frames in one batch (``max_batch``, frames of several sources):
``submit_batch`` returns one ``Pending`` per frame, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from detector.types import Detections, Image


class Pending(Protocol):
    def ready(self) -> bool:
        """True once ``result()`` will not wait."""
        ...

    def result(self) -> Detections:
        """Wait for and return the detections (call once)."""
        ...


class Done:
    """A ``Pending`` that is already finished (synchronous backends)."""

    def __init__(self, detections: Detections) -> None:
        self._detections = detections

    def ready(self) -> bool:
        return True

    def result(self) -> Detections:
        return self._detections


class Detector(Protocol):
    """A loaded model. Not thread-safe: one thread owns it."""

    backend: str
    names: dict[int, str]
    model_path: str
    max_in_flight: int  # frames ``submit`` may have outstanding at once
    max_batch: int  # frames ``submit_batch`` takes at once (1: no batching)

    def submit(self, image: Image, on_ready: Callable[[], None] | None = None) -> Pending: ...

    def submit_batch(self, images: Sequence[Image]) -> list[Pending]: ...

    def detect(self, image: Image) -> Detections: ...
