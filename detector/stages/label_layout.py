"""Where each box label goes: inside the frame, off the detections' boxes, and off the labels already
placed (and the panel) where there is room.

Ultralytics and supervision keep a label at its box's top-left corner whatever it covers; in a crowd
that puts labels inside other people's boxes and over their heads. Here every visible box (grown by
half the outline, so the outline counts) is in the way of every label, its own box included: a label
sits just outside its box's outline where it can, never on the object or on its outline.

A label's first choice is above its box's top-left corner. When that spot is taken, the nearest free
spot wins (nearest to the box, then to the first choice), from two kinds of candidates: the other
places around the box (below it, at its other corners, beside its top), and the spots just past
whatever is in the way of the first choice and of the spot below the box (stacked above or below it,
left or right of it), searched a few rounds deep. If none is free, the least covered one wins, where
a pixel of a label covered costs ``LABEL_WEIGHT`` pixels of a box, so a crowd too dense for its labels
still keeps every label whole where a spot over a box is free of labels; the spot on the object
itself is the last resort. A label checks at most ``MAX_TRIES`` spots, a frame ``TRIES_PER_LABEL``
per label on average, so a frame too full for its labels costs little more than one with room.

supervision's ``LabelAnnotator(smart_position=True)`` spreads overlapping labels apart by
iteration instead (and does not avoid boxes); this greedy search is written here because it is
short and stays cheap: boxes and labels are kept in a coarse grid, and a spot is checked against those
in the cells it covers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from detector.drawing import Rect

ROUNDS = 3  # obstacles-of-obstacles searched past the first choice
MAX_TRIES = 30  # spots one label may check before it takes the least covered one
TRIES_PER_LABEL = 10  # spots checked per label on average (past the first MAX_TRIES): bounded cost
GRID = 12  # the frame is cut into GRID x GRID cells to find the rectangles near a spot
LABEL_WEIGHT = 1000  # a pixel of a label covered costs more than a box covered: labels stay readable


class _Obstacles:
    """Weighted rectangles in a frame, asked which ones a spot overlaps and what covering them costs;
    kept in a coarse grid, so a spot is checked against the few rectangles near it."""

    def __init__(self, frame: tuple[int, int]) -> None:
        self._cell = (max(1, -(-frame[0] // GRID)), max(1, -(-frame[1] // GRID)))
        self._grid: dict[tuple[int, int], list[tuple[Rect, int]]] = {}

    def _cells(self, rect: Rect) -> list[tuple[int, int]]:
        cw, ch = self._cell
        xs = range(max(0, rect[0] // cw), max(0, (rect[2] - 1) // cw) + 1)
        ys = range(max(0, rect[1] // ch), max(0, (rect[3] - 1) // ch) + 1)
        return [(x, y) for x in xs for y in ys]

    def add(self, rect: Rect, weight: int) -> None:
        for cell in self._cells(rect):
            self._grid.setdefault(cell, []).append((rect, weight))

    def _near(self, rect: Rect) -> set[tuple[Rect, int]]:
        x0, y0, x1, y1 = rect
        grid = self._grid
        return {
            item
            for cell in self._cells(rect)
            for item in grid.get(cell, ())
            if item[0][0] < x1 and x0 < item[0][2] and item[0][1] < y1 and y0 < item[0][3]
        }

    def hits(self, rect: Rect) -> set[Rect]:
        """The rectangles that ``rect`` overlaps."""
        return {r for r, _ in self._near(rect)}

    def cost(self, rect: Rect) -> int:
        """What covering ``rect`` costs: the pixels of it under each rectangle, at that one's weight
        (0: free; overlapping rectangles count each)."""
        x0, y0, x1, y1 = rect
        return sum(
            (min(x1, r[2]) - max(x0, r[0])) * (min(y1, r[3]) - max(y0, r[1])) * weight
            for r, weight in self._near(rect)
        )


class LabelLayout:
    """Places the labels of one frame, one after another; each placed label is in the way of the next,
    and so is every box in ``boxes`` (the detections' outlines, in the frame's pixels)."""

    def __init__(self, frame: tuple[int, int], avoid: Rect | None = None, boxes: Sequence[Rect] = ()) -> None:
        self.frame = frame  # (width, height)
        self._in_way = _Obstacles(frame)
        for box in boxes:
            self._in_way.add(box, 1)
        self.placed: list[Rect] = []  # the labels placed so far (and the panel)
        if avoid is not None:
            self._take(avoid)
        self._credit = MAX_TRIES - TRIES_PER_LABEL  # spots left to check, TRIES_PER_LABEL more a label

    def _take(self, rect: Rect) -> None:
        self.placed.append(rect)
        self._in_way.add(rect, LABEL_WEIGHT)

    def _rect(self, left: int, top: int, size: tuple[int, int]) -> Rect:
        """The label's rectangle at (left, top), moved inside the frame."""
        w, h = size
        left = max(0, min(left, self.frame[0] - w))
        top = max(0, min(top, self.frame[1] - h))
        return left, top, left + w, top + h

    def place(self, box: Rect, size: tuple[int, int]) -> tuple[int, int]:
        """Top-left corner for a label of ``size`` (w, h) for ``box`` (x0, y0, x1, y1: its outline's
        outer edges, in the frame)."""
        x1, y1, h = box[0], box[1], size[1]
        self._credit = min(self._credit + TRIES_PER_LABEL, MAX_TRIES)
        first = self._rect(x1, y1 - h if y1 - h >= 0 else y1, size)
        cost = self._in_way.cost(first)
        rect = first if cost == 0 else self._search(box, size, first, cost)
        self._take(rect)
        return rect[0], rect[1]

    def _beside(self, rect: Rect, size: tuple[int, int]) -> list[Rect]:
        """Spots just past each rectangle in ``rect``'s way: above, below, right and left of it."""
        w, h = size
        return [
            self._rect(left, top, size)
            for o in self._in_way.hits(rect)
            for left, top in ((rect[0], o[1] - h), (rect[0], o[3]), (o[2], rect[1]), (o[0] - w, rect[1]))
        ]

    def _search(self, box: Rect, size: tuple[int, int], first: Rect, first_cost: int) -> Rect:
        """The nearest free spot; else (a crowd, or out of tries) the one checked that covers least,
        a label counting LABEL_WEIGHT times a box."""
        w, h = size
        x1, y1, x2, y2 = box
        below = self._rect(x1, y2, size)
        corners = ((x2 - w, y1 - h), (x2 - w, y2), (x2, y1), (x1 - w, y1), (x2, y2 - h), (x1 - w, y2 - h))
        around = [below, *(self._rect(left, top, size) for left, top in corners)]
        inside = self._rect(x1, y1, size)  # on the object itself, top-left: the last resort
        costs = {first: first_cost, inside: self._in_way.cost(inside)}
        key = self._nearness(box, first)
        # First the places around the box (a label belongs at its box); then the spots just past what is
        # in the way above and below it; then past what is in the way of the nearest of those, and so on.
        spots, seeds = around, [first, below]
        for _ in range(ROUNDS + 1):
            fresh = sorted(set(spots) - costs.keys(), key=key)
            for rect in fresh:
                if self._credit <= 0:
                    return min(costs, key=costs.__getitem__)
                self._credit -= 1
                costs[rect] = cost = self._in_way.cost(rect)
                if cost == 0:
                    return rect
            spots = [spot for seed in seeds for spot in self._beside(seed, size)]
            seeds = fresh[:1]
            if not spots:
                break
        return min(costs, key=costs.__getitem__)

    @staticmethod
    def _nearness(box: Rect, first: Rect) -> Callable[[Rect], tuple[int, int]]:
        """Sort key of a spot: its gap to the box, then its distance from the first choice."""
        return lambda r: (
            max(0, box[0] - r[2], r[0] - box[2]) + max(0, box[1] - r[3], r[1] - box[3]),
            abs(r[0] - first[0]) + abs(r[1] - first[1]),
        )
