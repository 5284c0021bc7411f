"""Drawing primitives every layer shares (stages, sinks, the window): the palette, sizes that follow the
frame, readable text colours, and a text label on a filled box. One place, so boxes, lines, zones,
trails, snapshots and the window always agree."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import cv2

from detector.types import Image

Color = tuple[int, int, int]  # BGR
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
FONT = cv2.FONT_HERSHEY_SIMPLEX

# Ultralytics' default palette (RGB hex), so colours match `yolo predict` output.
_PALETTE_HEX = (
    "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
)  # fmt: skip
PALETTE: tuple[Color, ...] = tuple((int(h[4:], 16), int(h[2:4], 16), int(h[:2], 16)) for h in _PALETTE_HEX)


def class_color(class_id: int) -> Color:
    """Stable BGR colour for a class id (Ultralytics' 20-colour palette, by id modulo 20)."""
    return PALETTE[int(class_id) % len(PALETTE)]


def name_color(name: str) -> Color:
    """A stable palette colour for a line or zone name."""
    return class_color(zlib.crc32(name.encode("utf-8")))


def text_color(bg: Color) -> Color:
    """Black on light backgrounds, white on dark ones (Rec. 601 luma of a BGR colour)."""
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Style:
    """Sizes for one frame size: legible from 320p to 4K (Ultralytics' line-width rule)."""

    line_width: int
    font_scale: float
    thickness: int
    pad: int


@lru_cache(maxsize=8)
def style_for(height: int, width: int) -> Style:
    size = (height + width) / 2.0  # 280 at 320x240, 1500 at 1080p, 3000 at 4K
    font_scale = max(0.33, size * 0.0008)
    return Style(
        line_width=max(2, round(size * 0.003)),
        font_scale=font_scale,
        thickness=max(1, round(font_scale * 1.6)),
        pad=max(2, round(font_scale * 6)),
    )


def style_of(image: Image) -> Style:
    return style_for(int(image.shape[0]), int(image.shape[1]))


MIN_FONT_SCALE = 0.3  # Hershey simplex at 0.3: 8 px capitals, the smallest still read at a glance
LABEL_HEIGHT_SHARE = 1 / 3  # a box label at most this share of its box's height...
LABEL_WIDTH_SHARE = 1.5  # ...and this many times its box's width (down to MIN_FONT_SCALE)


def scaled(style: Style, font_scale: float) -> Style:
    """``style`` with the text at ``font_scale`` (its thickness and padding following)."""
    return Style(style.line_width, font_scale, max(1, round(font_scale * 1.6)), max(2, round(font_scale * 6)))


def box_label_style(
    text: str, style: Style, box_w: float, box_h: float
) -> tuple[Style, tuple[int, int, int]]:
    """The frame's ``style``, its text made smaller for a small box (a distant person's label is no
    wider than LABEL_WIDTH_SHARE x the person and no taller than LABEL_HEIGHT_SHARE of them), and the
    label's size in it (``label_size``)."""
    size = label_size(text, style)
    fit = min(1.0, box_w * LABEL_WIDTH_SHARE / size[0], box_h * LABEL_HEIGHT_SHARE / size[1])
    if fit >= 1.0:
        return style, size
    small = scaled(style, max(MIN_FONT_SCALE, style.font_scale * fit))
    return small, label_size(text, small)


def label_size(text: str, style: Style) -> tuple[int, int, int]:
    """(width, height, text height) of a label box with its padding."""
    (tw, th), base = cv2.getTextSize(text, FONT, style.font_scale, style.thickness)
    return tw + 2 * style.pad, th + base + 2 * style.pad, th


def draw_label_at(
    image: Image,
    text: str,
    left: int,
    top: int,
    bg: Color,
    style: Style,
    size: tuple[int, int, int] | None = None,
) -> Rect:
    """Text on a filled box with its top-left corner at (left, top); returns the box. ``size``:
    ``label_size(text, style)`` when the caller has it already."""
    w, h, th = label_size(text, style) if size is None else size
    cv2.rectangle(image, (left, top), (left + w - 1, top + h - 1), bg, cv2.FILLED)
    org = (left + style.pad, top + style.pad + th)
    cv2.putText(image, text, org, FONT, style.font_scale, text_color(bg), style.thickness, cv2.LINE_AA)
    return left, top, left + w, top + h


def draw_label(image: Image, text: str, center: tuple[float, float], bg: Color) -> Rect:
    """Text on a filled box centred at ``center``, moved inside the image when needed (in place)."""
    style = style_of(image)
    w, h, _ = label_size(text, style)
    ih, iw = image.shape[:2]
    left = int(min(max(0, round(center[0] - w / 2)), max(0, iw - w)))
    top = int(min(max(0, round(center[1] - h / 2)), max(0, ih - h)))
    return draw_label_at(image, text, left, top, bg, style)
