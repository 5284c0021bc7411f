"""Pictures: shrink to a width, encode as a JPEG (the web view, MQTT snapshots, a review item's picture
with its object outlined) or a data URI (the HTML report inlines everything), write to a file."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detector.files import atomic_write
from detector.review_items import Picture
from detector.types import Image

OUTLINE = (0, 255, 255)  # BGR yellow, as event snapshots outline their object


def fit_width(image: Image, width: int, *, fast: bool = False) -> Image:
    """``image`` scaled down (never up) to ``width`` pixels across, with the area filter (no aliasing).

    ``fast``: bilinear up to 2x (1080p to 1280 wide: ~1.4 ms, where the area filter took ~5 ms), the
    area filter beyond (for the live web view)."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    interpolation = cv2.INTER_LINEAR if fast and w <= 2 * width else cv2.INTER_AREA
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=interpolation)
    return np.asarray(small, dtype=np.uint8)


def jpeg(image: Image, width: int, quality: int, *, fast: bool = False) -> bytes | None:
    """``image`` as a JPEG, scaled down to at most ``width`` pixels across (``fit_width``); None when
    OpenCV cannot encode it."""
    ok, data = cv2.imencode(".jpg", fit_width(image, width, fast=fast), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None


def picture_jpeg(picture: Picture, width: int | None = None, quality: int = 85) -> bytes:
    """A JPEG of a review item's ``picture`` with its object outlined, scaled down to ``width`` pixels if
    wider (``fit_width``); ``ValueError`` when OpenCV cannot encode it."""
    image = picture.image if width is None else fit_width(picture.image, width)
    scale = image.shape[1] / picture.image.shape[1]
    image = image.copy() if image is picture.image else image  # the frame is shared: never drawn on
    x1, y1, x2, y2 = (round(v * scale) for v in picture.xyxy)
    thick = max(2, round(image.shape[1] / 320))
    cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 0), thick + 2)
    cv2.rectangle(image, (x1, y1), (x2, y2), OUTLINE, thick)
    data = jpeg(image, image.shape[1], quality)
    if data is None:
        raise ValueError("the picture could not be encoded")
    return data


def data_uri(image: Image, kind: str = "png", quality: int = 80) -> str | None:
    """``data:image/...;base64,...`` for a BGR image; None when OpenCV cannot encode it."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if kind == "jpeg" else ".png", image, params)
    return f"data:image/{kind};base64,{base64.b64encode(data.tobytes()).decode('ascii')}" if ok else None


def write_image(path: Path, image: Image, params: Sequence[int] = ()) -> None:
    """Write ``image`` atomically (``files.atomic_write``); ``OSError`` if it cannot. Encoded in memory
    and written here, so a full disk says so (``ENOSPC``), which ``cv2.imwrite`` would not."""
    try:
        ok, data = cv2.imencode(path.suffix or ".png", image, list(params))
    except cv2.error as exc:
        raise OSError(str(exc)) from exc
    if not ok:
        raise OSError(f"OpenCV could not encode {path.suffix or 'the picture'} (unknown format)")

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as f:
            f.write(data.tobytes())

    atomic_write(path, write)
