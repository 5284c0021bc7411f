"""Matching boxes to boxes: the IoU cost matrix and its optimal assignment (``lap``'s Jonker-Volgenant)."""

from __future__ import annotations

import lap
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def iou(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), as corners."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = w.clip(0) * h.clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union: Array = area_a[:, None] + area_b[None, :] - inter
    return inter / (union + 1e-7)


def iou_cost(tracks: npt.ArrayLike, detections: npt.ArrayLike, scores: npt.ArrayLike | None = None) -> Array:
    """``1 - IoU`` (tracks x detections); with ``scores``, ``1 - IoU * score``, so that of two boxes
    overlapping a track as much, the surer detection is the cheaper one (ByteTrack's ``fuse_score``)."""
    similarity = iou(tracks, detections)
    if scores is not None and similarity.size:
        similarity = similarity * np.asarray(scores, dtype=np.float64)[None, :]
    return 1.0 - similarity


def assign(cost: Array, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The assignment of rows to columns with least total cost, using no pair that costs more than
    ``limit``. Returns the (row, column) pairs, the unmatched rows and the unmatched columns."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    pairs = [(i, int(j)) for i, j in enumerate(x) if j >= 0]
    return pairs, [i for i in range(rows) if x[i] < 0], [j for j in range(cols) if y[j] < 0]
