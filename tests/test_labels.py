"""Box labels in a crowd, on pixels: off every box where there is room, sized to their box, none on
tiny boxes, and never over their own box's outline (issue 29's drawing)."""

from __future__ import annotations

import numpy as np
import pytest
from test_overlay import OverlayRenderer, black, dets, text_pixels

from detector.types import Detections

W, H = 1920, 1080


def label_pixels(
    boxes: list[list[float]], first_id: int = 101, **options: int
) -> tuple[np.ndarray, np.ndarray]:
    """(the frame with boxes and labels, where the labels changed it) for tracked people in ``boxes``,
    numbered from ``first_id``."""
    d = dets(boxes, tracker_ids=[first_id + k for k in range(len(boxes))])
    plain = OverlayRenderer(panel=False, labels=False).annotate(black(W, H), d)
    labelled = OverlayRenderer(panel=False, **options).annotate(black(W, H), d)
    return labelled, (labelled != plain).any(axis=2)


def inside(mask: np.ndarray, box: list[float], grow: int = 0) -> int:
    x1, y1, x2, y2 = (int(v) for v in box)
    return int(mask[max(0, y1 - grow) : y2 + grow + 1, max(0, x1 - grow) : x2 + grow + 1].sum())


def alone(boxes: list[list[float]]) -> int:
    """The text pixels of each box's label drawn alone, summed."""
    return sum(text_pixels(label_pixels([b], 101 + k)[0]) for k, b in enumerate(boxes))


def crowd() -> list[list[float]]:
    """Two rows of people: the front row's tops lie inside the back row's boxes, where a label above
    each box's corner (Ultralytics', supervision's, this project's before) lands on the people behind;
    and one person at the frame's top edge, whose label cannot go above."""
    back = [[300 + 200 * k, 300, 420 + 200 * k, 600] for k in range(6)]
    front = [[380 + 200 * k, 450, 520 + 200 * k, 850] for k in range(5)]
    return [*back, *front, [1700, 0, 1820, 300]]


def test_labels_never_cover_a_box_where_there_is_room() -> None:
    boxes = crowd()
    out, labels = label_pixels(boxes)
    assert text_pixels(out) == alone(boxes)  # every label drawn whole, none covered by another
    lw = 3  # the outline's width at 1080p
    covered = {k: inside(labels, b, grow=lw // 2) for k, b in enumerate(boxes) if inside(labels, b, lw // 2)}
    assert covered == {}, "labels drawn over these boxes (index: pixels) though the frame has room"


def test_a_full_frame_still_gets_every_label_readable() -> None:
    """A box over the whole frame leaves no free place: the label goes on it, whole."""
    boxes = [[0, 0, W - 1, H - 1], [800, 400, 1000, 800]]
    out, labels = label_pixels(boxes)
    assert text_pixels(out) == alone(boxes)
    assert inside(labels, boxes[1], grow=2) == 0  # the small one's label still keeps off it


def test_a_distant_person_gets_a_label_sized_to_them() -> None:
    near, far = [200, 200, 600, 1000], [1200, 500, 1260, 650]  # 400x800 and 60x150 pixels
    _, near_px = label_pixels([near])
    _, far_px = label_pixels([far])
    width = lambda mask: int(np.ptp(np.flatnonzero(mask.any(axis=0)))) + 1  # noqa: E731
    height = lambda mask: int(np.ptp(np.flatnonzero(mask.any(axis=1)))) + 1  # noqa: E731
    assert width(far_px) <= 1.5 * 60 + 1  # was 290 px: five times the person
    assert height(far_px) <= 150 / 3 + 1
    assert width(near_px) > 2 * width(far_px)  # a near one keeps the frame's size
    assert text_pixels(label_pixels([far])[0]) > 10  # small, still drawn


@pytest.mark.parametrize(("size", "drawn"), [(0, True), (16, False), (40, False)])
def test_no_label_below_the_set_size(size: int, drawn: bool) -> None:
    tiny = [900, 500, 912, 540]  # 12x40 pixels: a person far away
    out, _ = label_pixels([[200, 200, 600, 1000], tiny], label_min_size=size)
    big_only, _ = label_pixels([[200, 200, 600, 1000]])
    assert (text_pixels(out) > text_pixels(big_only)) is drawn


def test_the_label_never_hides_its_own_outline() -> None:
    """The box's whole outline stays in view with its label beside it (the label sat over the top line)."""
    for box in ([700, 400, 900, 800], [700, 0, 900, 400], [0, 0, 300, 300]):
        d = dets([box])
        plain = OverlayRenderer(panel=False, labels=False).annotate(black(W, H), d)
        labelled = OverlayRenderer(panel=False).annotate(black(W, H), d)
        outline = (plain != 0).any(axis=2)
        assert outline.sum() > 1000
        np.testing.assert_array_equal(labelled[outline], plain[outline], err_msg=f"box {box}")


def test_no_boxes_no_labels() -> None:
    out = OverlayRenderer(panel=False).annotate(black(W, H), Detections.empty())
    assert not out.any()
