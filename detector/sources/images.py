"""A single image, a folder of images, or a glob; frames take the first image's size."""

from __future__ import annotations

import logging
import re
import time
from fractions import Fraction

import cv2
import numpy as np

from detector.errors import SourceError
from detector.sources.base import SourceInfo
from detector.types import Frame

log = logging.getLogger(__name__)


def natural_key(path: str) -> list[object]:
    """``img2.jpg`` before ``img10.jpg``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


class ImageSource:
    """A single image, a folder of images, or a glob; frames take the first image's size."""

    def __init__(self, paths: list[str], name: str, fps: float = 30.0) -> None:
        self.paths = paths
        self.corrupt = 0
        self._pos = 0
        self._count = 0
        first = None
        while self._pos < len(paths) and first is None:
            first = self._load(paths[self._pos])
            self._pos += 1
        if first is None:
            raise SourceError(f"none of the {len(paths)} image(s) in {name} can be read")
        self._pending: np.ndarray | None = first
        h, w = first.shape[:2]
        self.info = SourceInfo(
            name=name,
            kind="images",
            width=w,
            height=h,
            fps=Fraction(fps).limit_denominator(1001),
            frame_count=len(paths),
            codec="image",
        )

    def _load(self, path: str) -> np.ndarray | None:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            self.corrupt += 1
            log.warning("skipping unreadable image %s", path)
        return img

    def read(self) -> Frame | None:
        img = self._pending
        self._pending = None
        while img is None and self._pos < len(self.paths):
            img = self._load(self.paths[self._pos])
            self._pos += 1
        if img is None:
            return None
        if img.shape[1] != self.info.width or img.shape[0] != self.info.height:
            img = np.asarray(
                cv2.resize(img, (self.info.width, self.info.height), interpolation=cv2.INTER_AREA), np.uint8
            )
        frame = Frame(
            image=img,
            index=self._count,
            pts=self._count / float(self.info.fps),
            capture_time=time.monotonic(),
        )
        self._count += 1
        return frame

    def reopen(self) -> None:  # pragma: no cover - images never reconnect
        raise ConnectionError("image sources cannot reconnect")

    def close(self) -> None:
        pass
