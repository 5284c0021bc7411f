"""The overlay stage, FpsMeter and class_color on synthetic frames (no model needed)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from detector.drawing import class_color
from detector.pipeline.channel import Channel
from detector.pipeline.lane import Lane
from detector.sources import SourceInfo
from detector.stages.overlay import OverlayStage, PanelInfo
from detector.stats import FpsMeter
from detector.types import Detections, Frame, FrameResult

NAMES = {0: "person", 1: "bicycle", 2: "car", 5: "bus"}
W, H = 640, 360
# Ultralytics' palette (RGB hex in ultralytics/utils/plotting.py), as the BGR OpenCV draws with
PERSON_BLUE = (255, 42, 4)  # class 0: 042AFF
LIGHT_GREY = (243, 243, 243)  # class 2: F3F3F3
BUS_PINK = (221, 111, 255)  # class 5: FF6FDD


def dets(
    boxes: list[list[float]],
    class_ids: list[int] | None = None,
    tracker_ids: list[int] | None = None,
    names: dict[int, str] | None = None,
) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.87, np.float32),
        class_id=np.array(class_ids if class_ids is not None else [0] * n, np.int64),
        tracker_id=None if tracker_ids is None else np.array(tracker_ids, np.int64),
        names=NAMES if names is None else names,
    )


class OverlayRenderer(OverlayStage):
    """The overlay stage as these tests use it: ``annotate`` draws on a copy, with this frame's panel info."""

    def annotate(
        self, scene: np.ndarray, detections: Detections, info: PanelInfo | None = None
    ) -> np.ndarray:  # type: ignore[override]
        self.status = None if info is None else (lambda: info)
        return super().annotate(scene.copy(), detections)


def black(w: int = W, h: int = H) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def text_pixels(img: np.ndarray) -> int:
    """Pixels of near-white label text (class 0's label is white text on dark blue)."""
    return int((img.min(axis=2) > 200).sum())


def test_draws_in_place_and_the_lane_keeps_the_source_frame_untouched() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    before = img.copy()
    d = dets([[10, 20, 200, 300], [300, 50, 500, 200]], [0, 5])
    scene = img.copy()
    assert OverlayStage().annotate(scene, d) is scene and (scene != before).any()

    class Source:
        info = SourceInfo(name="s", kind="file", width=W, height=H, fps=Fraction(30))
        corrupt = 0

    class Sink:
        def write(self, result: FrameResult) -> None:
            self.result = result

    sink = Sink()
    lane = Lane(Source(), [OverlayStage()], [sink])  # type: ignore[list-item, arg-type]
    lane.frames = Channel(1, keep_latest=False, stop=threading.Event())
    lane.emit(Frame(img, 0, 0.0, time.monotonic()), d)
    np.testing.assert_array_equal(img, before)  # what the detector saw stays as it was
    out = sink.result.annotated
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, img) and (out != img).any()


def test_box_edge_has_class_colour() -> None:
    out = OverlayRenderer(panel=False).annotate(
        black(), dets([[100, 100, 300, 250], [400, 80, 600, 300]], [0, 5])
    )
    assert tuple(out[200, 100]) == PERSON_BLUE  # left edge of the person box, below its label
    assert tuple(out[250, 200]) == PERSON_BLUE  # bottom edge
    assert tuple(out[200, 600]) == BUS_PINK  # right edge of the bus box
    assert tuple(out[175, 200]) == (0, 0, 0)  # box interior stays clear


def test_label_above_box_with_contrasting_text() -> None:
    out = OverlayRenderer(panel=False).annotate(black(), dets([[200, 150, 400, 300]]))
    above = out[100:150, 200:400]
    assert (np.all(above == PERSON_BLUE, axis=2)).sum() > 200  # filled label background above the box
    assert text_pixels(above) > 20  # white text on the dark blue background
    assert text_pixels(out[152:298, 202:398]) == 0  # nothing drawn inside the box


def _edge_boxes() -> dict[str, list[float]]:
    return {
        "top-left": [0, 0, 60, 50],
        "top-right": [W - 60, 0, W, 50],
        "bottom-left": [0, H - 50, 60, H],
        "bottom-right": [W - 60, H - 50, W, H],
        "top": [300, 0, 360, 50],
        "bottom": [300, H - 50, 360, H],
        "left": [0, 150, 60, 200],
        "right": [W - 60, 150, W, 200],
        "thin-at-right": [W - 3, 100, W, 300],
        "thin-at-bottom": [200, H - 2, 400, H],
        "whole-frame": [0, 0, W, H],
        "past-top-left": [-40, -40, 30, 30],
        "past-bottom-right": [W - 20, H - 20, W + 80, H + 80],
    }


@pytest.mark.parametrize("where", list(_edge_boxes()))
def test_label_fully_visible_at_edges_and_corners(where: str) -> None:
    renderer = OverlayRenderer(label_min_size=0, panel=False)
    box = np.clip(_edge_boxes()[where], 0, [W - 1, H - 1, W - 1, H - 1])  # as the boxes are drawn
    middle = box + np.tile([(W - box[0] - box[2]) // 2, (H - box[1] - box[3]) // 2], 2)
    reference = text_pixels(renderer.annotate(black(), dets([middle.tolist()])))  # the same box, mid-frame
    assert reference > 10
    out = renderer.annotate(black(), dets([_edge_boxes()[where]]))
    # The same label text must be drawn completely, i.e. none of it was cut off by the frame edge.
    assert text_pixels(out) == reference
    assert (np.all(out == PERSON_BLUE, axis=2)).any()


@pytest.mark.parametrize("box", [[0, 0, 120, 200], [0, 0, W, H], [5, 30, 100, 200]])
def test_label_not_hidden_under_panel(box: list[float]) -> None:
    info = PanelInfo(fps=30.0, latency_ms=20.0, extra=["dropped 3"])
    reference = text_pixels(OverlayRenderer(panel=False).annotate(black(), dets([[250, 150, 350, 250]])))
    panel_only = text_pixels(OverlayRenderer(labels=False).annotate(black(), dets([box]), info))
    both = OverlayRenderer().annotate(black(), dets([box]), info)
    assert text_pixels(both) == panel_only + reference  # the whole label is drawn beside the panel


def _readable(boxes: list[list[float]], ids: list[int], info: PanelInfo | None = None) -> tuple[int, int]:
    """(text pixels of these tracked boxes drawn together, the sum of each one's label drawn alone)."""
    renderer = OverlayRenderer(panel=info is not None)
    alone = sum(text_pixels(OverlayRenderer(panel=False).annotate(black(), dets([b], tracker_ids=[i])))
                for b, i in zip(boxes, ids, strict=True))  # fmt: skip
    panel = text_pixels(OverlayRenderer(labels=False).annotate(black(), dets(boxes), info)) if info else 0
    return text_pixels(renderer.annotate(black(), dets(boxes, tracker_ids=ids), info)) - panel, alone


def test_labels_of_overlapping_boxes_do_not_cover_each_other() -> None:
    """Two people side by side: #137's label must not hide #131's (it did, drawn at the same height)."""
    together, alone = _readable([[200, 150, 300, 330], [240, 152, 340, 330]], [131, 137])
    assert together == alone


@pytest.mark.parametrize(
    "where",
    [
        "row",  # a queue: 8 boxes, each 30 px right of the last
        "top-right",  # 3 boxes in the top-right corner: no room above, none to the right
        "top-left",  # 3 boxes under the panel in the top-left corner
    ],
)
def test_crowded_labels_stay_in_frame_and_readable(where: str) -> None:
    boxes = {
        "row": [[100 + 30 * k, 200, 170 + 30 * k, 340] for k in range(8)],
        "top-right": [[W - 70 + 5 * k, 5 * k, W, 60 + 5 * k] for k in range(3)],
        "top-left": [[5 * k, 5 * k, 70 + 5 * k, 60 + 5 * k] for k in range(3)],
    }[where]
    info = PanelInfo(fps=30.0, latency_ms=20.0)
    together, alone = _readable(boxes, [101 + k for k in range(len(boxes))], info)
    assert together == alone  # every label whole: none cut by the frame edge or covered


def test_label_text_variants() -> None:
    box = [[200, 150, 400, 300]]
    plain = text_pixels(OverlayRenderer(panel=False).annotate(black(), dets(box)))
    tracked = text_pixels(OverlayRenderer(panel=False).annotate(black(), dets(box, tracker_ids=[12])))
    no_conf = text_pixels(OverlayRenderer(panel=False, confidence=False).annotate(black(), dets(box)))
    assert tracked > plain > no_conf > 0  # "#12 person 0.87" > "person 0.87" > "person"
    no_labels = OverlayRenderer(panel=False, labels=False).annotate(black(), dets(box))
    assert text_pixels(no_labels) == 0 and (no_labels[100:148] == 0).all()


def test_light_class_colour_gets_dark_text() -> None:
    light = 2  # palette entry F3F3F3, almost white
    out = OverlayRenderer(panel=False).annotate(black(), dets([[200, 150, 400, 300]], [light]))
    on_bg = np.all(out[100:150] == LIGHT_GREY, axis=2)
    ys, xs = np.nonzero(on_bg)
    label = out[100:150][ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]  # the filled label rectangle
    assert label.shape[0] > 8 and label.shape[1] > 40
    assert (label.max(axis=2) < 60).sum() > 20  # dark glyphs on the light background


def test_panel_drawn_and_toggled() -> None:
    grey = np.full((H, W, 3), 160, np.uint8)
    d = dets([[300, 150, 400, 300], [420, 150, 500, 300]], [0, 2])
    renderer = OverlayRenderer()
    out = renderer.annotate(grey, d, PanelInfo(fps=23.4, latency_ms=41.0, extra=["PAUSED"]))
    corner = out[5:40, 5:60]
    assert (corner < 100).all(axis=2).mean() > 0.5  # darkened background
    assert text_pixels(corner) > 20  # with readable text on it
    np.testing.assert_array_equal(out[H // 2 :, : W // 3], grey[H // 2 :, : W // 3])  # blend stays local
    renderer.panel = False  # the 'f' key
    off = renderer.annotate(grey, d, PanelInfo(fps=23.4))
    np.testing.assert_array_equal(off[:140, :280], grey[:140, :280])


def test_panel_shows_fps_placeholder_without_detections() -> None:
    grey = np.full((H, W, 3), 160, np.uint8)
    renderer = OverlayRenderer()
    np.testing.assert_array_equal(renderer.annotate(grey, Detections.empty(NAMES)), grey)  # nothing to show
    out = renderer.annotate(grey, Detections.empty(NAMES), PanelInfo(fps=None))
    assert (out[:30, :80] != 160).any()  # "proc fps --" shown before the first measurement


def _panel_height(img: np.ndarray) -> int:
    rows = np.flatnonzero((img[:, :40] != 160).any(axis=(1, 2)))  # the panel darkens the left columns
    return int(rows.max()) + 1


def test_panel_counts_are_capped() -> None:
    grey = np.full((720, 1280, 3), 160, np.uint8)
    names = {i: f"class{i}" for i in range(20)}
    renderer = OverlayRenderer(labels=False, line_width=1)

    def height(n_classes: int) -> int:
        boxes = [[600 + 10 * i, 300, 640 + 10 * i, 340] for i in range(n_classes)]
        return _panel_height(renderer.annotate(grey, dets(boxes, list(range(n_classes)), names=names)))

    assert height(3) < height(6) < height(8)  # one line per class
    assert height(8) == height(12) == height(20)  # then "+N more" instead of a growing list


@pytest.mark.parametrize(("w", "h"), [(320, 180), (3840, 2160)])
def test_works_at_small_and_4k_frames(w: int, h: int) -> None:
    s = w / W
    boxes = [[100 * s, 100 * s, 300 * s, 300 * s], [0, 0, 50 * s, 50 * s], [w - 40 * s, h - 40 * s, w, h]]
    out = OverlayRenderer().annotate(black(w, h), dets(boxes), PanelInfo(fps=30.0))
    assert out.shape == (h, w, 3)
    assert text_pixels(out) > 40 * s


def test_sizes_scale_with_frame_and_line_width_overrides() -> None:
    def thickness(renderer: OverlayRenderer, w: int, h: int) -> int:
        s = w / W
        out = renderer.annotate(black(w, h), dets([[100 * s, 100 * s, 300 * s, 300 * s]]))
        return int(np.all(out[int(200 * s)] == PERSON_BLUE, axis=1).sum()) // 2

    def label_text(w: int, h: int) -> int:
        s = w / W
        return text_pixels(
            OverlayRenderer(panel=False).annotate(black(w, h), dets([[300 * s] * 2 + [400 * s] * 2]))
        )

    auto = OverlayRenderer(panel=False, labels=False)
    assert thickness(auto, 320, 180) < thickness(auto, 1920, 1080) < thickness(auto, 3840, 2160)
    assert label_text(320, 180) < label_text(1920, 1080) < label_text(3840, 2160)
    fixed = OverlayRenderer(panel=False, labels=False, line_width=1)
    assert thickness(fixed, 320, 180) == thickness(fixed, 3840, 2160) == 1


def test_bad_boxes_are_skipped() -> None:
    boxes = [[np.nan, 0, 10, 10], [1e30, 1e30, 2e30, 2e30], [-50, -50, -10, -10], [50, 50, 50, 80]]
    out = OverlayRenderer(panel=False).annotate(black(), dets(boxes))
    assert not out.any()


def test_rejects_non_bgr_image() -> None:
    with pytest.raises(ValueError):
        OverlayRenderer().annotate(np.zeros((10, 10), np.uint8), Detections.empty())


def test_a_1080p_frame_with_20_boxes_is_drawn_near_them_only() -> None:
    """20 boxes, their labels and the panel on a 1080p frame: every label whole, and the frame away from
    them untouched (a pass over the whole frame per box would show there). What this costs is measured
    by tests/measure_overlay.py, not here: a test never passes or fails on speed."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (20, 2)) * [900, 700]  # boxes end left of x=1150, labels left of 1525
    d = Detections(
        xyxy=np.hstack([xy, xy + rng.uniform(50, 250, (20, 2))]),
        confidence=rng.uniform(0.3, 1, 20),
        class_id=np.zeros(20, np.int64),  # white text on blue: text_pixels counts every label
        tracker_id=np.arange(1, 21),
        names=NAMES,
    )
    img, info = np.full((1080, 1920, 3), 90, np.uint8), PanelInfo(29.9, 33.0)
    out = OverlayRenderer().annotate(img, d, info)
    panel = text_pixels(OverlayRenderer(labels=False).annotate(img, d, info))
    alone = sum(text_pixels(OverlayRenderer(panel=False).annotate(img, d[np.array([k])])) for k in range(20))
    assert text_pixels(out) - panel == alone  # every label drawn whole
    np.testing.assert_array_equal(out[:, 1600:], img[:, 1600:])  # far from every box: untouched


def test_class_color_stable_distinct_and_matches_ultralytics() -> None:
    from ultralytics.utils.plotting import colors

    palette = [class_color(i) for i in range(20)]
    assert palette == [tuple(colors(i, bgr=True)) for i in range(20)]  # Ultralytics' own, as BGR
    assert (palette[0], palette[2], palette[5]) == (PERSON_BLUE, LIGHT_GREY, BUS_PINK)
    assert len(set(palette)) == 20
    assert [class_color(i) for i in (20, 47, 85)] == [PERSON_BLUE, palette[7], BUS_PINK]  # by id modulo 20
    assert all(len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c) for c in palette)


def test_fps_meter_measures_and_smooths() -> None:
    meter = FpsMeter(alpha=0.1)
    assert meter.value is None
    assert meter.tick(0.0) == 0.0 and meter.value is None  # one tick: no interval yet
    for k in range(1, 30):
        fps = meter.tick(k * 0.1)
    assert fps == pytest.approx(10.0, rel=1e-6)
    assert meter.value == pytest.approx(10.0, rel=1e-6)
    t = 2.9
    t += 0.05
    after_speedup = meter.tick(t)
    assert 10.0 < after_speedup < 12.0  # smoothed, not jumping straight to 20
    for _ in range(100):
        t += 0.05
        meter.tick(t)
    assert meter.value == pytest.approx(20.0, rel=1e-3)
    meter.tick(t)  # duplicate timestamp is ignored
    assert meter.value == pytest.approx(20.0, rel=1e-3)
    meter.reset()
    assert meter.value is None
    assert FpsMeter().tick() == 0.0  # defaults to time.monotonic()
