"""Annotated frames -> H.264 packets, once, for every output that wants them.

``H264Encoder`` owns one libx264 context (PyAV), independent of any file: the ``--output`` MP4 and the
event clips are both made from its packets, so the video is never encoded twice. Each keyframe
carries its SPS/PPS in-band (no global header), so any run of packets that starts at a keyframe is
a stream a muxer can start a file with. Keyframes come every ``fragment_seconds`` (no scene cuts):
the MP4 fragment interval and the finest start a clip can have.

Timing: files with ``source_times`` keep each frame's own source time (a tick is 1/100 of a frame, so
variable frame rates keep their times); other files are evenly spaced at ``fps``; live sources are
stamped from the capture clock. Every packet also carries the source ``pts`` of its frame, the clock
events are stamped in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from detector.errors import UserError
from detector.machine import cpu_count
from detector.settings.model import X264_PRESETS, EncoderSettings

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)
TICKS_PER_FRAME = 100  # source timing: a tick is 1/100 of a frame
SNAP = 0.02  # a source time within 2% of a frame of the fps grid is on it (CFR stays exactly regular)
MAX_AUTO_THREADS = 16  # more x264 frame threads add latency (frames lost on a crash) for little gain


def thread_count(threads: int) -> int:
    if threads > 0:
        return threads
    return max(1, min(cpu_count(), MAX_AUTO_THREADS))


@dataclass
class Encoded:
    """One H.264 packet with the times the outputs need. ``pts``/``dts`` are in the encoder's
    ``time_base``; ``source_pts`` is the source time (s) of the frame it shows."""

    packet: Any  # av.Packet
    pts: int
    dts: int
    keyframe: bool
    source_pts: float
    nbytes: int


class H264Encoder:
    """Encodes BGR frames to H.264 yuv420p packets; opens on the first frame (its size is the video's)."""

    def __init__(
        self,
        *,
        fps: Fraction | float,
        live: bool,
        source_times: bool = False,
        preset: str = "ultrafast",
        crf: int = 23,
        threads: int = 0,
        fragment_seconds: float = 1.0,
        name: str = "video",
    ) -> None:
        fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(100_000)
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if preset not in X264_PRESETS:
            raise UserError(f"unknown x264 preset {preset!r}; use one of: {' '.join(X264_PRESETS)}")
        if not 0 <= crf <= 51:
            raise UserError(f"crf must be 0..51 (lower is better quality), got {crf}")
        if fragment_seconds <= 0:
            raise ValueError(f"fragment_seconds must be > 0, got {fragment_seconds}")
        self.fps = fps
        self.live = live
        self.source_times = source_times and not live
        self.preset = preset
        self.crf = int(crf)
        self.threads = thread_count(threads)
        self.fragment_seconds = fragment_seconds
        self.gop = max(1, round(fps * Fraction(fragment_seconds)))
        self.name = name  # for messages: the output it is for
        ticks = TICKS_PER_FRAME if self.source_times else 1
        self.time_base = LIVE_TIME_BASE if live else 1 / (fps * ticks)
        self.frame_ticks = ticks if not live else max(1, round(1 / (fps * LIVE_TIME_BASE)))
        self.frames_encoded = 0
        self.size: tuple[int, int] | None = None  # (width, height) as encoded, padded to even sides
        self._source_size: tuple[int, int] | None = None
        self._pad = (0, 0)
        self._cc: Any = None  # av.VideoCodecContext once open
        self._t0 = 0.0
        self._last_pts = -1
        self._source_pts: dict[int, float] = {}  # encoder pts -> source pts, until its packet comes out
        self._resize_warned = False

    @classmethod
    def from_settings(
        cls,
        settings: EncoderSettings,
        *,
        fps: Fraction | float,
        live: bool,
        source_times: bool = False,
        name: str = "video",
    ) -> H264Encoder:
        """The encoder with the ``encoder:`` settings (the annotated video's, run and bench alike)."""
        return cls(
            fps=fps,
            live=live,
            source_times=source_times,
            preset=settings.preset,
            crf=settings.crf,
            threads=settings.threads,
            fragment_seconds=settings.fragment_seconds,
            name=name,
        )

    def _open(self, width: int, height: int) -> None:
        self._source_size = (width, height)
        self._pad = (width & 1, height & 1)
        out_w, out_h = width + self._pad[0], height + self._pad[1]
        if any(self._pad):
            msg = "%s: %dx%d has an odd side; padding to %dx%d with black (H.264 4:2:0 needs even sizes)"
            log.warning(msg, self.name, width, height, out_w, out_h)
        cc = av.CodecContext.create("libx264", "w")
        cc.width, cc.height, cc.pix_fmt = out_w, out_h, "yuv420p"
        cc.time_base = self.time_base
        cc.framerate = self.fps
        cc.gop_size = self.gop
        cc.thread_count = self.threads
        cc.thread_type = "FRAME"
        # cv2's BGR->I420 is BT.601 limited range: tag it so players use the same matrix.
        cc.colorspace = Colorspace.ITU601
        cc.color_range = ColorRange.MPEG
        cc.color_primaries = ColorPrimaries.BT709
        cc.color_trc = ColorTrc.BT709
        cc.options = {
            "preset": self.preset,
            "crf": str(self.crf),
            "x264-params": f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0",
        }
        cc.open()
        self._cc = cc
        self.size = (out_w, out_h)

    def _prepare(self, img: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        assert self._source_size is not None
        width, height = self._source_size
        if (img.shape[1], img.shape[0]) != self._source_size:
            if not self._resize_warned:
                log.warning(
                    "%s: frame size changed from %dx%d to %dx%d; scaling to the first size",
                    *(self.name, width, height, img.shape[1], img.shape[0]),
                )
                self._resize_warned = True
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        if any(self._pad):
            img = cv2.copyMakeBorder(img, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_CONSTANT, value=0)
        # cv2's SIMD BGR->I420 is ~4x faster than swscale; the encoder copies the planes.
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)  # no copy

    def _next_pts(self, capture_time: float, source_pts: float) -> int:
        if self.source_times:
            t = source_pts * float(self.fps)  # in frames
            n = round(t)
            pts = n * self.frame_ticks if abs(t - n) < SNAP else round(t * self.frame_ticks)
        elif not self.live:
            pts = self.frames_encoded
        elif self.frames_encoded == 0:
            self._t0, pts = capture_time, 0
        else:
            pts = round((capture_time - self._t0) / LIVE_TIME_BASE)
        pts = max(pts, self._last_pts + 1)  # strictly increasing
        self._last_pts = pts
        return pts

    def encode(self, image: npt.NDArray[Any], capture_time: float, source_pts: float) -> list[Encoded]:
        """Encode one BGR frame; returns the packets that came out (x264 holds a few frames back)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"annotated frame must be HxWx3 uint8 BGR, got {image.dtype} {image.shape}")
        if self._cc is None:
            self._open(int(image.shape[1]), int(image.shape[0]))
        yuv = self._prepare(image)
        if yuv.shape[0] % 6:  # PyAV's zero-copy path rounds such heights down to a multiple of 4
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        else:
            frame = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
        frame.pts = self._next_pts(capture_time, source_pts)
        frame.time_base = self.time_base
        frame.duration = self.frame_ticks
        self._source_pts[frame.pts] = source_pts
        self.frames_encoded += 1
        return self._wrap(self._cc.encode(frame))

    def flush(self) -> list[Encoded]:
        """The packets x264 still holds; the encoder is finished afterwards."""
        if self._cc is None:
            return []
        cc, self._cc = self._cc, None
        return self._wrap(cc.encode(None))

    def _wrap(self, packets: list[Any]) -> list[Encoded]:
        out = []
        for packet in packets:
            pts = int(packet.pts)
            out.append(
                Encoded(
                    packet=packet,
                    pts=pts,
                    dts=int(packet.dts if packet.dts is not None else pts),
                    keyframe=bool(packet.is_keyframe),
                    source_pts=self._source_pts.pop(pts, float(pts * self.time_base)),
                    nbytes=int(packet.size),
                )
            )
        return out
