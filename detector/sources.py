"""Frame sources behind one interface: video file, camera, network stream, images.

A source decodes one frame per ``read()`` call (``None`` at the end). Threading,
drop policy and reconnects live in ``capture.py``; this module only decodes.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import av
import av.error
import cv2
import numpy as np

from detector.errors import SourceError
from detector.types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
URL_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"}
SourceKind = Literal["file", "camera", "stream", "images"]


@dataclass
class SourceInfo:
    """What we know about a source once it is open."""

    name: str
    kind: SourceKind
    width: int
    height: int
    fps: Fraction
    frame_count: int | None = None  # an estimate from the header; never trusted for correctness
    codec: str = ""
    duration: float | None = None

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")


class Source(Protocol):
    info: SourceInfo
    corrupt: int  # frames or packets skipped because they would not decode

    def read(self) -> Frame | None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


def _valid_rate(rate: Fraction | None) -> Fraction | None:
    if rate is None:
        return None
    try:
        value = float(rate)
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    if not math.isfinite(value) or value <= 0 or value > 1000:
        return None
    return Fraction(rate).limit_denominator(1001)


def _natural_key(path: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


class PyAVSource:
    """A video file or network stream decoded with FFmpeg (PyAV)."""

    def __init__(
        self, target: str, *, kind: SourceKind, connect_timeout: float = 10.0, read_timeout: float = 5.0
    ) -> None:
        self.target = target
        self.kind: SourceKind = kind
        self.corrupt = 0
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._index = 0
        self._t0: float | None = None
        self._start_pts: float | None = None
        self._open()

    def _open(self) -> None:
        options: dict[str, str] = {}
        if self.kind == "stream":
            # No "fflags nobuffer": it throws away the packets read while probing, so the first
            # picture (and the first after each reconnect) waited for the next keyframe.
            options = {"probesize": "500000", "analyzeduration": "1000000"}
            if self.target.startswith("rtsp"):
                options["rtsp_transport"] = "tcp"
        try:
            self._container = av.open(
                self.target, options=options, timeout=(self._connect_timeout, self._read_timeout)
            )
        except av.error.FileNotFoundError as exc:
            raise SourceError(f"input {self.target} not found") from exc
        except av.error.PermissionError as exc:
            raise SourceError(f"input {self.target} cannot be read (permission denied)") from exc
        except (av.error.InvalidDataError, ValueError, av.error.EOFError) as exc:
            raise SourceError(
                f"input {self.target} is not a video FFmpeg can read (corrupt, truncated or not a video: "
                f"{_reason(exc)})"
            ) from exc
        except av.error.ExitError as exc:
            raise SourceError(
                f"could not connect to {self.target} within {self._connect_timeout:g} s"
            ) from exc
        except (av.error.FFmpegError, OSError) as exc:
            what = "connect to" if self.kind == "stream" else "open"
            raise SourceError(f"could not {what} {self.target}: {_reason(exc)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"input {self.target} has no video stream")
        stream = self._container.streams.video[0]
        # Frame threading holds back one frame per decoder thread (3 frames = 100 ms at 30 fps,
        # unseen by the capture-to-sink latency); a live stream decodes with slice threads only.
        stream.thread_type = "SLICE" if self.kind == "stream" else "AUTO"
        ctx = stream.codec_context
        if ctx is None or not ctx.name or ctx.width <= 0:
            self._container.close()
            raise SourceError(f"input {self.target} uses a video codec this FFmpeg cannot decode")
        self._stream = stream
        fps = (
            _valid_rate(stream.average_rate)
            or _valid_rate(stream.guessed_rate)
            or _valid_rate(stream.base_rate)
        )
        if fps is None:
            log.warning("%s declares no usable frame rate; assuming 30 fps", self.target)
            fps = Fraction(30)
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        frames = stream.frames or (round(duration * float(fps)) if duration else None)
        self.info = SourceInfo(
            name=self.target,
            kind=self.kind,
            width=ctx.width,
            height=ctx.height,
            fps=fps,
            frame_count=frames or None,
            codec=ctx.name,
            duration=duration,
        )
        self._frames = self._decode()

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Yield decoded frames, skipping (and counting) packets that fail to decode."""
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except (av.error.InvalidDataError, ValueError) as exc:
                self.corrupt += 1
                log.debug("skipping unreadable packet: %s", exc)
                continue
            try:
                yield from packet.decode()
            except (av.error.InvalidDataError, ValueError, av.error.UndefinedError) as exc:
                self.corrupt += 1
                log.debug("skipping frame that failed to decode: %s", exc)

    def read(self) -> Frame | None:
        try:
            vf = next(self._frames, None)
        except av.error.ExitError as exc:  # read timeout on a stream
            if self.kind == "stream":
                raise TimeoutError(f"no data from {self.target} for {self._read_timeout:g} s") from exc
            raise SourceError(f"reading {self.target} stalled for {self._read_timeout:g} s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            if self.kind == "stream":
                raise ConnectionError(f"{self.target}: {_reason(exc)}") from exc
            raise SourceError(f"reading {self.target} failed: {_reason(exc)}") from exc
        if vf is None:
            return None
        now = time.monotonic()
        image: np.ndarray = vf.to_ndarray(format="bgr24")
        if self.kind == "stream":
            if self._t0 is None:
                self._t0 = now
            pts = now - self._t0
        else:
            t = vf.time
            if t is None:
                t = self._index / float(self.info.fps)
            if self._start_pts is None:
                self._start_pts = t
            pts = max(0.0, t - self._start_pts)
        frame = Frame(image=image, index=self._index, pts=pts, capture_time=now)
        self._index += 1
        return frame

    def reopen(self) -> None:
        self.close()
        t0, index = self._t0, self._index
        self._open()
        self._t0, self._index = t0, index  # indices and live clock continue across reconnects

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(av.error.FFmpegError):
                container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[-1].strip() or type(exc).__name__


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
        self.index_ = index
        self.corrupt = 0
        self._size = size
        self._fps = fps
        self._count = 0
        self._t0: float | None = None
        self._open()

    def _open(self) -> None:
        cap = open_camera_quietly(self.index_)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {self.index_} not found; list cameras with `detector cameras` or pass a file or URL"
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
            raise SourceError(f"camera {self.index_} opened but gives no frames")
        self._cap = cap
        self._pending: np.ndarray | None = first
        fps = _valid_rate(Fraction(cap.get(cv2.CAP_PROP_FPS)).limit_denominator(1001)) or Fraction(30)
        self.info = SourceInfo(
            name=f"camera {self.index_}",
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
                raise ConnectionError(f"camera {self.index_} stopped giving frames")
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


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    w, h = text.lower().split("x")
    return int(w), int(h)


def check_url(spec: str) -> None:
    """Reject a malformed URL before anything slow happens (model load, connect)."""
    scheme, _, rest = spec.strip().partition("://")
    if scheme.lower() not in URL_SCHEMES:
        raise SourceError(
            f"URL scheme '{scheme}' is not supported; use one of {', '.join(sorted(URL_SCHEMES))}"
        )
    if not rest.strip("/"):
        raise SourceError(f"URL {spec} has no host")


def open_source(
    spec: str,
    *,
    image_fps: float = 30.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 5.0,
    camera_size: str | None = None,
    camera_fps: float | None = None,
) -> Source:
    """Open whatever ``spec`` names: camera index, URL, folder, glob, image or video file."""
    spec = spec.strip()
    if spec.isdigit():
        return CameraSource(int(spec), size=parse_size(camera_size), fps=camera_fps)
    if "://" in spec:
        check_url(spec)
        return PyAVSource(spec, kind="stream", connect_timeout=connect_timeout, read_timeout=read_timeout)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            (str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
        )
        if not files:
            raise SourceError(f"folder {spec} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return ImageSource(files, spec, image_fps)
    if any(c in spec for c in "*?[") and not path.exists():
        files = sorted(
            (p for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS),
            key=_natural_key,
        )
        if not files:
            raise SourceError(f"pattern {spec} matches no images")
        return ImageSource(files, spec, image_fps)
    if not path.exists():
        raise SourceError(f"input {spec} not found")
    if not path.is_file():
        raise SourceError(f"input {spec} is not a file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"input {spec} cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise SourceError(f"input {spec} is empty (0 bytes)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource([str(path)], spec, image_fps)
    return PyAVSource(str(path), kind="file", connect_timeout=connect_timeout, read_timeout=read_timeout)
