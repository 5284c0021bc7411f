"""Stationary objects (``stationary.seconds``): a parked car is one track, not a new one each time the
model misses it for a moment.

A track is *stationary* once its box has stayed where it settled (overlapping that box by IoU >=
``STILL_IOU``) for ``seconds`` of the source's time; it stops being stationary as soon as it moves
off, and settles anew from there.

A stationary track the tracker loses is *parked*: its id stays alive in the ``TrackBook`` (so the
tally, lines, zones and trails keep it: no zone exit, no new ``track_new``) for up to ``seconds``
after it was last seen. A new track of the same class that turns up over a parked box (IoU >=
``CLAIM_IOU``) is that object, found again: it takes the parked id. A parked track not found again
in time ends like any other. So a still object fires no new events; once it moves, it is an ordinary
track again and fires them as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.types import FloatArray

STILL_IOU = 0.6  # a box overlapping where it settled by at least this much has not moved (as Frigate)
CLAIM_IOU = 0.5  # a new track over a parked box, same class: the parked object, found again


@dataclass
class _Spot:
    box: FloatArray  # where the track settled
    since: float  # pts when it settled there
    seen: float  # pts when it was last seen
    class_id: int
    stationary: bool = False


class StationaryBook:
    """Per source: which tracks stand still, and which lost ones are parked (by public id)."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"stationary seconds must be positive, got {seconds}")
        self.seconds = float(seconds)
        self._spots: dict[int, _Spot] = {}

    def claim(self, box: FloatArray, class_id: int, taken: Iterable[int] = ()) -> int | None:
        """The parked id a new track at ``box`` is (the best overlap), or None; ``taken``: ids
        already on this frame."""
        busy = set(taken)
        candidates = [
            (tid, spot)
            for tid, spot in self._spots.items()
            if spot.stationary and spot.class_id == class_id and tid not in busy
        ]
        if not candidates:
            return None
        from detector.tracking.assign import iou  # the tracker's package: loaded when a run tracks

        overlap = iou(np.asarray([box], np.float64), np.array([s.box for _, s in candidates], np.float64))[0]
        best = int(np.argmax(overlap))
        return candidates[best][0] if overlap[best] >= CLAIM_IOU else None

    def observe(
        self, pts: float, ids: Sequence[int], xyxy: FloatArray, class_ids: Sequence[int]
    ) -> list[int]:
        """Book the tracks of one frame; returns the ids among them that are stationary."""
        still: list[int] = []
        for tid, box, cid in zip(ids, xyxy, class_ids, strict=True):
            spot = self._spots.get(tid)
            if spot is None or _overlap(spot.box, box) < STILL_IOU:  # new, or it moved: settles here
                self._spots[tid] = spot = _Spot(np.array(box, np.float32), pts, pts, int(cid))
            spot.seen = pts
            spot.stationary = pts - spot.since >= self.seconds
            if spot.stationary:
                still.append(int(tid))
        return still

    def parked(self, pts: float, seen: Iterable[int]) -> list[int]:
        """Stationary ids not ``seen`` on this frame that are still kept (lost at most ``seconds``)."""
        here = set(seen)
        return [
            tid
            for tid, spot in self._spots.items()
            if spot.stationary and tid not in here and pts - spot.seen <= self.seconds
        ]

    def forget(self, ended: Iterable[int]) -> None:
        for tid in ended:
            self._spots.pop(tid, None)


def _overlap(a: FloatArray, b: FloatArray) -> float:
    from detector.tracking.assign import iou

    return float(iou(np.asarray([a], np.float64), np.asarray([b], np.float64))[0, 0])
