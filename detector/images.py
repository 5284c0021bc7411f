"""Pictures for pages: shrink to a width, encode as a data URI (the HTML report inlines everything)."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from detector.types import Image


def fit_width(image: Image, width: int) -> Image:
    """``image`` scaled down (never up) to ``width`` pixels across."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    small = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)


def data_uri(image: Image, kind: str = "png", quality: int = 80) -> str | None:
    """``data:image/...;base64,...`` for a BGR image; None when OpenCV cannot encode it."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if kind == "jpeg" else ".png", image, params)
    return f"data:image/{kind};base64,{base64.b64encode(data.tobytes()).decode('ascii')}" if ok else None
