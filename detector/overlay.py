"""Draw detections and a small status panel onto frames (OpenCV only, on a copy).

Style lives in ``OverlayRenderer.__init__``; ``annotate`` draws. Sizes scale with the
frame so labels stay legible from 320p to 4K, and the only blending is over the panel
rectangle, so a 1080p frame with 20 boxes takes about a millisecond.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detector.types import Detections

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
Color = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

# Ultralytics' default palette (RGB hex), so colours match `yolo predict` output.
_PALETTE_HEX = (
    "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
)  # fmt: skip
_PALETTE_BGR: tuple[Color, ...] = tuple(
    (int(h[4:], 16), int(h[2:4], 16), int(h[:2], 16)) for h in _PALETTE_HEX
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PANEL_MAX_CLASSES = 8
_PANEL_DARKEN = 0.3  # remaining brightness of the frame under the panel


def class_color(class_id: int) -> Color:
    """Stable BGR colour for a class id (Ultralytics' 20-colour palette, by id modulo 20)."""
    return _PALETTE_BGR[int(class_id) % len(_PALETTE_BGR)]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _text_color(bg: Color) -> Color:
    """Black on light backgrounds, white on dark ones (Rec. 601 luma of a BGR colour)."""
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass
class PanelInfo:
    """What the corner panel shows besides the per-class counts."""

    fps: float | None
    latency_ms: float | None = None
    extra: Sequence[str] = ()


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


@dataclass(frozen=True)
class _Style:
    line_width: int
    font_scale: float
    thickness: int
    pad: int


class OverlayRenderer:
    """Boxes with class labels plus a top-left panel (fps, latency, extra lines, counts).

    ``panel`` may be toggled between frames. ``line_width`` fixes the box thickness;
    otherwise it and the font size follow the frame size.
    """

    def __init__(
        self,
        *,
        panel: bool = True,
        labels: bool = True,
        confidence: bool = True,
        line_width: int | None = None,
    ) -> None:
        if line_width is not None and line_width < 1:
            raise ValueError(f"line_width must be >= 1, got {line_width}")
        self.panel = panel
        self.labels = labels
        self.confidence = confidence
        self.line_width = line_width
        self._style_cache: dict[tuple[int, int], _Style] = {}

    def _style(self, h: int, w: int) -> _Style:
        style = self._style_cache.get((h, w))
        if style is None:
            size = (h + w) / 2.0  # 250 at 320x180, 1500 at 1080p, 3000 at 4K
            lw = self.line_width or max(1, round(size * 0.003))
            font_scale = max(0.33, size * 0.0008)
            thickness = max(1, round(font_scale * 1.6))
            style = _Style(lw, font_scale, thickness, max(2, round(font_scale * 6)))
            self._style_cache = {(h, w): style}  # one size at a time is the common case
        return style

    def annotate(self, image: Image, detections: Detections, info: PanelInfo | None = None) -> Image:
        """Return an annotated copy of BGR ``image``; ``image`` itself is not modified."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected HxWx3 uint8 BGR image, got {image.dtype} {image.shape}")
        out = image.copy()
        h, w = out.shape[:2]
        style = self._style(h, w)
        rows, visible, colors = self._draw_boxes(out, detections, style) if len(detections) else ([], [], [])
        panel_rect = self._draw_panel(out, detections, info, style) if self.panel else None
        if self.labels and visible:
            self._draw_labels(out, detections, rows, visible, colors, style, panel_rect)
        return out

    def _label(self, detections: Detections, i: int) -> str:
        text = detections.class_name(int(detections.class_id[i]))
        if detections.tracker_id is not None:
            text = f"#{int(detections.tracker_id[i])} {text}"
        if self.confidence:
            text = f"{text} {float(detections.confidence[i]):.2f}"
        return text

    def _draw_boxes(
        self, out: Image, detections: Detections, style: _Style
    ) -> tuple[list[list[int]], list[int], list[Color]]:
        """Draw the visible boxes; return all boxes in int pixels, the visible indices and their colours."""
        h, w = out.shape[:2]
        xyxy = detections.xyxy
        ok = np.isfinite(xyxy).all(axis=1)
        # Clip in float first so huge or NaN coordinates cannot overflow the int cast.
        fb = np.nan_to_num(xyxy).clip(0.0, [w - 1, h - 1, w - 1, h - 1])
        boxes = np.rint(fb).astype(np.int64)
        ok &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        visible = np.flatnonzero(ok).tolist()
        if len(visible) < len(boxes):
            log.debug("skipping %d empty or off-frame boxes", len(boxes) - len(visible))
        rows = boxes.tolist()
        class_ids = detections.class_id.tolist()
        colors = [class_color(class_ids[i]) for i in visible]
        for i, color in zip(visible, colors, strict=True):
            x1, y1, x2, y2 = rows[i]
            # Axis-aligned: LINE_8 looks the same as LINE_AA here and is ~4x cheaper.
            cv2.rectangle(out, (x1, y1), (x2, y2), color, style.line_width, cv2.LINE_8)
        return rows, visible, colors

    def _draw_labels(
        self,
        out: Image,
        detections: Detections,
        rows: list[list[int]],
        visible: list[int],
        colors: list[Color],
        style: _Style,
        avoid: Rect | None,
    ) -> None:
        """Labels go on after all boxes and the panel, so nothing is drawn across them."""
        h, w = out.shape[:2]
        for i, color in zip(visible, colors, strict=True):
            text = self._label(detections, i)
            (tw, th), base = cv2.getTextSize(text, _FONT, style.font_scale, style.thickness)
            lab_w, lab_h = tw + 2 * style.pad, th + base + 2 * style.pad
            x1, y1 = rows[i][0], rows[i][1]
            left = max(0, min(x1, w - lab_w))
            # Above the box when there is room, otherwise inside its top; always in frame.
            top = y1 - lab_h if y1 - lab_h >= 0 else y1
            top = max(0, min(top, h - lab_h))
            if avoid and _overlaps((left, top, left + lab_w, top + lab_h), avoid):
                if avoid[2] + lab_w <= w:  # move right of the panel, else below it
                    left = avoid[2]
                else:
                    top = max(0, min(avoid[3], h - lab_h))
            cv2.rectangle(out, (left, top), (left + lab_w - 1, top + lab_h - 1), color, cv2.FILLED)
            org = (left + style.pad, top + style.pad + th)
            cv2.putText(
                out, text, org, _FONT, style.font_scale, _text_color(color), style.thickness, cv2.LINE_AA
            )

    def _panel_lines(self, detections: Detections, info: PanelInfo | None) -> list[str]:
        lines: list[str] = []
        if info is not None:
            lines.append("FPS --" if info.fps is None else f"FPS {info.fps:.1f}")
            if info.latency_ms is not None:
                lines.append(f"latency {info.latency_ms:.0f} ms")
            lines.extend(str(s) for s in info.extra)
        counts = list(detections.counts().items())
        if len(counts) > _PANEL_MAX_CLASSES:
            shown, rest = counts[: _PANEL_MAX_CLASSES - 1], counts[_PANEL_MAX_CLASSES - 1 :]
            lines.extend(f"{name}: {n}" for name, n in shown)
            lines.append(f"+{len(rest)} more ({sum(n for _, n in rest)})")
        else:
            lines.extend(f"{name}: {n}" for name, n in counts)
        return lines

    def _draw_panel(
        self, out: Image, detections: Detections, info: PanelInfo | None, style: _Style
    ) -> Rect | None:
        """Draw the panel; return its rectangle (None when there is nothing to show)."""
        lines = self._panel_lines(detections, info)
        if not lines:
            return None
        h, w = out.shape[:2]
        scale, thick, pad = style.font_scale, style.thickness, style.pad
        sizes = [cv2.getTextSize(s, _FONT, scale, thick)[0] for s in lines]
        (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thick)
        line_h = th + base + pad
        margin = pad
        x0, y0 = margin, margin
        x1 = min(w, x0 + max(tw for tw, _ in sizes) + 2 * pad)
        y1 = min(h, y0 + len(lines) * line_h + pad)
        if x1 <= x0 or y1 <= y0:
            return None
        roi = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = cv2.convertScaleAbs(roi, alpha=_PANEL_DARKEN)  # dark, see-through
        for k, text in enumerate(lines):
            baseline_y = y0 + pad + k * line_h + th
            color = (255, 255, 255) if k or info is None else (120, 255, 120)
            cv2.putText(out, text, (x0 + pad, baseline_y), _FONT, scale, color, thick, cv2.LINE_AA)
        return x0, y0, x1, y1
