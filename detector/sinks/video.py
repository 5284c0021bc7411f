"""H.264 MP4 sink (PyAV + libx264) that survives being killed.

While writing, the file at ``path`` is a fragmented MP4 with a keyframe (and a
fragment) every ``fragment_seconds``, flushed to the OS as each fragment ends, so
a process killed with SIGKILL leaves a file that plays up to the last fragment.
``close()`` flushes the encoder and remuxes (stream copy) into a normal
``+faststart`` MP4 that replaces the fragmented one atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from detector.errors import UserError
from detector.machine import cpu_count
from detector.settings.model import X264_PRESETS, EncoderSettings
from detector.sinks.audio import AudioSpan, AudioTrack, merge
from detector.sinks.base import FrameResult

log = logging.getLogger(__name__)

FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
LIVE_TIME_BASE = Fraction(1, 90000)
TICKS_PER_FRAME = 100  # source timing: a tick is 1/100 of a frame, so variable frame rates keep their times
SNAP = 0.02  # a source time within 2% of a frame of the fps grid is on it (CFR stays exactly regular)
MAX_AUTO_THREADS = 16  # more x264 frame threads add latency (frames lost on a crash) for little gain


def _thread_count(threads: int) -> int:
    if threads > 0:
        return threads
    return max(1, min(cpu_count(), MAX_AUTO_THREADS))


def _muxer(path: Path) -> str:
    return "mov" if path.suffix.lower() == ".mov" else "mp4"


def _write_failed(path: Path, exc: OSError) -> UserError:
    return UserError(f"writing {path} failed: {exc.strerror or exc}; the video up to here is kept")


class VideoWriterSink:
    """Encodes annotated frames to H.264 (yuv420p) in an MP4/MOV; opens on the first frame."""

    def __init__(
        self,
        path: str | Path,
        *,
        fps: Fraction | float,
        live: bool,
        source_times: bool = False,
        preset: str = "ultrafast",
        crf: int = 23,
        threads: int = 0,
        fragment_seconds: float = 1.0,
        audio_from: Path | None = None,
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
        self.path = Path(path).expanduser()
        self.fps = fps
        self.live = live
        # Frame times: live -> capture clock; source_times -> each frame's own source time (phones record
        # at a variable frame rate); otherwise evenly spaced at ``fps`` (image folders, --vid-stride).
        self.source_times = source_times and not live
        self.preset = preset
        self.crf = int(crf)
        self.threads = _thread_count(threads)
        self.fragment_seconds = float(fragment_seconds)
        self.gop = max(1, round(fps * Fraction(fragment_seconds)))
        ticks = TICKS_PER_FRAME if self.source_times else 1
        self.time_base = LIVE_TIME_BASE if live else 1 / (fps * ticks)
        self.frames_written = 0
        self._container: Any = None  # av.container.OutputContainer once open
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the source
        self._pad = (0, 0)  # (right, bottom) black pixels added
        self._t0 = 0.0
        self._last_pts = -1
        self._frame_ticks = ticks if not live else max(1, round(1 / (fps * LIVE_TIME_BASE)))
        self._error: UserError | None = None
        self._resize_warned = False
        self._closed = False
        self.audio_from = audio_from  # a file whose audio track is kept, cut to the frames written
        self._span: tuple[float, float] | None = None  # source pts of the first and last frame written

    @classmethod
    def from_settings(
        cls,
        encoder: EncoderSettings,
        path: Path,
        fps: Fraction,
        *,
        live: bool,
        source_times: bool = False,
        audio_from: Path | None = None,
    ) -> VideoWriterSink:
        """The annotated-video sink with the ``encoder`` settings (run and bench build it the same way)."""
        return cls(
            path,
            fps=fps,
            live=live,
            source_times=source_times,
            preset=encoder.preset,
            crf=encoder.crf,
            threads=encoder.threads,
            fragment_seconds=encoder.fragment_seconds,
            audio_from=audio_from,
        )

    # -- opening ---------------------------------------------------------------------------------
    def _open(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._pad = (width & 1, height & 1)
        out_w, out_h = width + self._pad[0], height + self._pad[1]
        if any(self._pad):
            msg = "%s: %dx%d has an odd side; padding to %dx%d with black (H.264 4:2:0 needs even sizes)"
            log.warning(msg, self.path, width, height, out_w, out_h)
        options = {"movflags": FRAGMENTED_MOVFLAGS, "flush_packets": "1"}
        if self.live:  # frames may come slower than fps: also cap fragments by time
            options["frag_duration"] = str(round(2e6 * self.fragment_seconds))
        try:
            container = av.open(str(self.path), "w", format=_muxer(self.path), options=options)
        except OSError as exc:
            raise UserError(f"cannot create video output {self.path}: {exc.strerror or exc}") from exc
        try:
            stream = container.add_stream(
                "libx264",
                rate=self.fps,
                options={
                    "preset": self.preset,
                    "crf": str(self.crf),
                    "x264-params": f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0",
                },
            )
            stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
            stream.time_base = self.time_base
            cc = stream.codec_context
            cc.time_base = self.time_base
            cc.gop_size = self.gop
            cc.thread_count = self.threads
            cc.thread_type = "FRAME"
            # cv2's BGR->I420 is BT.601 limited range: tag it so players use the same matrix.
            cc.colorspace = Colorspace.ITU601
            cc.color_range = ColorRange.MPEG
            cc.color_primaries = ColorPrimaries.BT709
            cc.color_trc = ColorTrc.BT709
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream
        log.info(
            "writing %s: %dx%d H.264 %s crf %d, %s fps%s, keyframe every %d frames, %d threads",
            *(self.path, out_w, out_h, self.preset, self.crf, self.fps),
            *(" (live timestamps)" if self.live else "", self.gop, self.threads),
        )

    # -- writing ---------------------------------------------------------------------------------
    def _prepare(self, img: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        assert self._size is not None
        width, height = self._size
        if (img.shape[1], img.shape[0]) != self._size:
            if not self._resize_warned:
                log.warning(
                    "%s: frame size changed from %dx%d to %dx%d; scaling to the first size",
                    self.path,
                    width,
                    height,
                    img.shape[1],
                    img.shape[0],
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
            pts = n * self._frame_ticks if abs(t - n) < SNAP else round(t * self._frame_ticks)
        elif not self.live:
            pts = self.frames_written
        elif self.frames_written == 0:
            self._t0, pts = capture_time, 0
        else:
            pts = round((capture_time - self._t0) / LIVE_TIME_BASE)
        pts = max(pts, self._last_pts + 1)  # strictly increasing
        self._last_pts = pts
        return pts

    def write(self, result: FrameResult) -> None:
        if self._closed:
            raise RuntimeError(f"VideoWriterSink({self.path}) is closed")
        if self._error is not None:
            raise self._error
        img = result.annotated
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"annotated frame must be HxWx3 uint8 BGR, got {img.dtype} {img.shape}")
        if self._container is None:
            self._open(int(img.shape[1]), int(img.shape[0]))
        yuv = self._prepare(img)
        if yuv.shape[0] % 6:  # PyAV's zero-copy path rounds such heights down to a multiple of 4
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        else:
            frame = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
        frame.pts = self._next_pts(result.frame.capture_time, result.frame.pts)
        frame.time_base = self.time_base
        frame.duration = self._frame_ticks
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as exc:
            self._error = _write_failed(self.path, exc)
            raise self._error from exc
        self.frames_written += 1
        pts = result.frame.pts
        self._span = (pts, pts) if self._span is None else (self._span[0], pts)

    def event(self, record: dict[str, Any]) -> None:
        """Events are not drawn into the video."""

    # -- closing ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and finalize; idempotent. Leaves a playable file if a frame was written."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None:
            return
        error: OSError | None = None
        try:
            if self._error is None:
                for packet in self._stream.encode(None):
                    container.mux(packet)
        except OSError as exc:
            error = exc
        finally:
            try:
                container.close()
            except OSError as exc:
                error = error or exc
        if self._error is not None:  # already reported by write(); the fragmented file stays
            return
        if self.frames_written == 0 and error is None:  # opened, but no frame made it: no empty file
            self.path.unlink(missing_ok=True)
            return
        if error is not None:
            self._error = _write_failed(self.path, error)
            raise self._error from error
        self._faststart()
        log.info("wrote %s: %d frames", self.path, self.frames_written)

    def _audio_track(self, dst: Any) -> AudioTrack | None:
        if self.audio_from is None or self._span is None or self.live:
            return None
        end = self._span[1] + 1 / float(self.fps)  # through the end of the last frame written
        try:
            return AudioTrack(dst, AudioSpan(self.audio_from, self._span[0], end))
        except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
            log.warning(
                "%s: audio from %s cannot be kept (%s); writing video only", self.path, self.audio_from, exc
            )
            return None

    @staticmethod
    def _video_packets(src: Any, src_stream: Any, dst_stream: Any) -> Iterator[tuple[float, Any]]:
        # B-frames delay the first picture in the fragmented file (no edit list is possible
        # there); shift it back to 0, the muxer writes the edit list.
        shift = src_stream.start_time
        for packet in src.demux(src_stream):
            if packet.dts is None:  # the demuxer's end-of-stream packet
                continue
            if shift is None:
                shift = packet.pts or 0
            packet.dts -= shift
            if packet.pts is not None:
                packet.pts -= shift
            packet.stream = dst_stream
            yield float(packet.dts * src_stream.time_base), packet

    def _faststart(self) -> None:
        """Remux the fragmented file into a faststart MP4 next to it, then replace it atomically."""
        started = time.perf_counter()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with av.open(str(self.path)) as src:
                src_stream = src.streams.video[0]
                with av.open(
                    str(tmp), "w", format=_muxer(self.path), options={"movflags": "+faststart"}
                ) as dst:
                    dst_stream = dst.add_stream_from_template(src_stream)
                    audio = self._audio_track(dst)
                    try:
                        video = self._video_packets(src, src_stream, dst_stream)
                        for packet in merge(video, audio.packets()) if audio else (p for _, p in video):
                            dst.mux(packet)
                    finally:
                        if audio is not None:
                            audio.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except (OSError, av.FFmpegError, ValueError, IndexError) as exc:
            msg = "%s: could not rewrite as a faststart MP4 (%s); keeping the fragmented MP4, which plays"
            log.warning(msg, self.path, exc)
            return
        finally:  # also on SIGTERM (Terminated) mid-remux: no temp file left behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # make the rename durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        log.debug("%s: faststart remux took %.0f ms", self.path, (time.perf_counter() - started) * 1000)
