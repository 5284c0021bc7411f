"""A local camera through OpenCV, with its internal buffer kept at one frame."""

from __future__ import annotations

import time
from fractions import Fraction

import cv2
import numpy as np

from detector.errors import SourceError
from detector.sources.base import SourceInfo, valid_rate
from detector.types import Frame


def open_camera_quietly(index: int) -> cv2.VideoCapture:
    """``cv2.VideoCapture(index)`` without OpenCV's multi-line WARN/ERROR dump on stderr when it is absent."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)


class CameraSource:
    """A local camera through OpenCV, with its internal buffer kept at one frame."""

    def __init__(self, index: int, *, size: tuple[int, int] | None = None, fps: float | None = None) -> None:
        self.camera_index = index
        self.corrupt = 0
        self._size = size
        self._fps = fps
        self._count = 0
        self._t0: float | None = None
        self._open()

    def _open(self) -> None:
        cap = open_camera_quietly(self.camera_index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {self.camera_index} not found; "
                "list cameras with `detector cameras` or pass a file or URL"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self._size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        if self._fps:
            cap.set(cv2.CAP_PROP_FPS, self._fps)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"camera {self.camera_index} opened but gives no frames")
        self._cap = cap
        self._pending: np.ndarray | None = first
        fps = valid_rate(Fraction(cap.get(cv2.CAP_PROP_FPS)).limit_denominator(1001)) or Fraction(30)
        self.info = SourceInfo(
            name=f"camera {self.camera_index}",
            kind="camera",
            width=first.shape[1],
            height=first.shape[0],
            fps=fps,
            codec=cap.getBackendName(),
        )

    def read(self) -> Frame | None:
        if self._pending is not None:
            img, self._pending = self._pending, None
        else:
            ok, img = self._cap.read()
            if not ok or img is None:
                raise ConnectionError(f"camera {self.camera_index} stopped giving frames")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        frame = Frame(image=img, index=self._count, pts=now - self._t0, capture_time=now)
        self._count += 1
        return frame

    def reopen(self) -> None:
        self.close()
        count, t0 = self._count, self._t0
        self._open()
        self._count, self._t0 = count, t0

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    w, h = text.lower().split("x")
    return int(w), int(h)
