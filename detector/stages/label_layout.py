"""Where each box label goes: inside the frame, and off the labels already placed (and the panel)
where there is room.

A label's first choice is today's: above its box's top-left corner, or inside the box's top when
there is no room above. When that spot is taken, the nearest free spot wins, from two kinds of
candidates: the other corners of the box (above or below, left- or right-aligned), and the spots
just beside whatever is in the way (stacked above or below it, left or right of it), searched a few
rounds deep. If none is free, the least covered one wins. A label checks at most ``MAX_TRIES``
spots, a frame ``TRIES_PER_LABEL`` per label on average, and after ``GIVE_UP`` searches in a row
that found nothing the frame is taken as full (the rest keep their first choice), so a frame too
full for its labels costs little more than one with room.

supervision's ``LabelAnnotator(smart_position=True)`` spreads overlapping labels apart by
iteration instead; this greedy search is written here because it is short and stays cheap: with
few labels a spot is checked against each placed one; with many, placed labels are kept in a coarse
grid (to find those near a spot) and a mask of the pixels they cover (one slice per spot).
"""

from __future__ import annotations

import numpy as np

from detector.drawing import Rect

ROUNDS = 3  # obstacles-of-obstacles searched past the first choice
MAX_TRIES = 20  # spots one label may check before it takes the least covered one
TRIES_PER_LABEL = 8  # spots checked per label on average: a full frame stops searching (bounded cost)
GRID = 12  # the frame is cut into GRID x GRID cells to find the placed labels near a spot
GIVE_UP = 4  # searches in a row without a free spot: the frame is full, the rest take their first choice
MANY = 32  # from this many placed labels on, spots are checked with the grid and a pixel mask


class LabelLayout:
    """Places the labels of one frame, one after another; each placed label is in the way of the next."""

    def __init__(self, frame: tuple[int, int], avoid: Rect | None = None) -> None:
        self.frame = frame  # (width, height)
        self._cell = (max(1, -(-frame[0] // GRID)), max(1, -(-frame[1] // GRID)))
        self._grid: dict[tuple[int, int], list[Rect]] | None = None  # made once MANY labels are placed
        self._mask: np.ndarray | None = None  # pixels under placed labels, made with the grid
        self.placed: list[Rect] = []
        self._credit = 0  # spots left to check, TRIES_PER_LABEL more with each label
        self._misses = 0  # searches in a row that found no free spot
        if avoid is not None:
            self._take(avoid)

    def _cells(self, rect: Rect) -> list[tuple[int, int]]:
        cw, ch = self._cell
        xs = range(max(0, rect[0] // cw), max(0, (rect[2] - 1) // cw) + 1)
        ys = range(max(0, rect[1] // ch), max(0, (rect[3] - 1) // ch) + 1)
        return [(x, y) for x in xs for y in ys]

    def _take(self, rect: Rect) -> None:
        self.placed.append(rect)
        if self._grid is not None:
            self._index(rect)
        elif len(self.placed) >= MANY:
            self._grid = {}
            self._mask = np.zeros((self.frame[1], self.frame[0]), np.bool_)
            for placed in self.placed:
                self._index(placed)

    def _index(self, rect: Rect) -> None:
        assert self._grid is not None and self._mask is not None
        for cell in self._cells(rect):
            self._grid.setdefault(cell, []).append(rect)
        self._mask[max(0, rect[1]) : max(0, rect[3]), max(0, rect[0]) : max(0, rect[2])] = True

    def _hits(self, rect: Rect) -> set[Rect]:
        """The placed rectangles that ``rect`` overlaps (with many, looked up in the cells it covers)."""
        x0, y0, x1, y1 = rect
        grid = self._grid
        near = self.placed if grid is None else (r for cell in self._cells(rect) for r in grid.get(cell, ()))
        return {r for r in near if r[0] < x1 and x0 < r[2] and r[1] < y1 and y0 < r[3]}

    def _free(self, rect: Rect) -> bool:
        x0, y0, x1, y1 = rect
        if self._mask is not None:
            return not self._mask[y0:y1, x0:x1].any()
        return not any(r[0] < x1 and x0 < r[2] and r[1] < y1 and y0 < r[3] for r in self.placed)

    def _cover(self, rect: Rect) -> int:
        """How many pixels of ``rect`` placed labels cover (with few, overlaps counted once each)."""
        if self._mask is not None:
            return int(np.count_nonzero(self._mask[rect[1] : rect[3], rect[0] : rect[2]]))
        x0, y0, x1, y1 = rect
        return sum(
            (min(x1, r[2]) - max(x0, r[0])) * (min(y1, r[3]) - max(y0, r[1])) for r in self._hits(rect)
        )

    def _rect(self, left: int, top: int, size: tuple[int, int]) -> Rect:
        """The label's rectangle at (left, top), moved inside the frame."""
        w, h = size
        left = max(0, min(left, self.frame[0] - w))
        top = max(0, min(top, self.frame[1] - h))
        return left, top, left + w, top + h

    def place(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int]:
        """Top-left corner for a label of ``size`` (w, h) for ``box`` (x1, y1, x2, y2, in the frame)."""
        x1, y1, h = box[0], box[1], size[1]
        self._credit = min(self._credit + TRIES_PER_LABEL, MAX_TRIES)
        first = self._rect(x1, y1 - h if y1 - h >= 0 else y1, size)
        if self._free(first) or self._misses >= GIVE_UP:
            rect = first
        else:
            rect = self._search(box, size, first, self._hits(first))
        self._take(rect)
        return rect[0], rect[1]

    def _beside(self, rect: Rect, hits: set[Rect], size: tuple[int, int]) -> list[Rect]:
        """Spots just past each rectangle in ``hits``: above, below, right and left of it."""
        w, h = size
        return [
            self._rect(left, top, size)
            for o in hits
            for left, top in ((rect[0], o[1] - h), (rect[0], o[3]), (o[2], rect[1]), (o[0] - w, rect[1]))
        ]

    def _search(
        self, box: tuple[int, int, int, int], size: tuple[int, int], first: Rect, hits: set[Rect]
    ) -> Rect:
        w, h = size
        x1, y1, x2, y2 = box
        corners = ((x1, y1), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2), (x2 - w, y1), (x1, y2 - h))
        spots = [self._rect(left, top, size) for left, top in corners] + self._beside(first, hits, size)
        tried = {first}
        checked = [first]
        for _ in range(ROUNDS):
            fresh = sorted(set(spots) - tried, key=lambda r: abs(r[0] - first[0]) + abs(r[1] - first[1]))
            for rect in fresh[: self._credit]:  # the nearest free one
                self._credit -= 1
                if self._free(rect):
                    self._misses = 0
                    return rect
                checked.append(rect)
            tried.update(fresh)
            if not fresh or self._credit <= 0:
                break
            nearest = fresh[0]  # next round: past what is in the way of the nearest
            spots = self._beside(nearest, self._hits(nearest), size)
        self._misses += 1
        return min(checked, key=self._cover)  # nothing free nearby (a full frame): the least covered
