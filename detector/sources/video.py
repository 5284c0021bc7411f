"""A video file or network stream decoded with FFmpeg (PyAV).

A ``PacketTap`` (raw recording) gets each demuxed packet before it is decoded, on the capture
thread, and each stream as it is (re)opened; it must not block (``storage.raw`` only queues).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, Protocol

import av
import av.error
import numpy as np

from detector.errors import SourceError
from detector.sources.base import SourceInfo, SourceKind, valid_rate
from detector.sources.naming import redact_url
from detector.sources.timing import FrameClock
from detector.types import Frame

log = logging.getLogger(__name__)

FIRST_PICTURE_PACKETS = 2000  # a stream joined between keyframes: read this far for the next one


class PacketTap(Protocol):
    def stream(self, stream: Any) -> None: ...

    def packet(self, packet: Any) -> None: ...


class PyAVSource:
    """A video file or network stream decoded with FFmpeg (PyAV)."""

    def __init__(
        self, target: str, *, kind: SourceKind, connect_timeout: float = 10.0, read_timeout: float = 5.0
    ) -> None:
        self.target = target  # may hold credentials: never in a message, log line or SourceInfo
        self.shown = redact_url(target)
        self.kind: SourceKind = kind
        self.corrupt = 0
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._index = 0
        self._t0: float | None = None
        self._tap: PacketTap | None = None
        self._open()

    def set_tap(self, tap: PacketTap) -> None:
        """Hand ``tap`` every packet from now on (the stream open now first, then each reopened one)."""
        self._tap = tap
        tap.stream(self._stream)

    def _open(self) -> None:
        options: dict[str, str] = {}
        if self.kind == "stream":
            # No "fflags nobuffer": it throws away the packets read while probing, so the first
            # picture (and the first after each reconnect) waited for the next keyframe.
            options = {"probesize": "500000", "analyzeduration": "500000"}
            if self.target.startswith("rtsp"):
                options["rtsp_transport"] = "tcp"
        try:
            self._container = av.open(
                self.target, options=options, timeout=(self._connect_timeout, self._read_timeout)
            )
        except av.error.FileNotFoundError as exc:
            raise SourceError(f"input {self.shown} not found") from exc
        except av.error.PermissionError as exc:
            raise SourceError(f"input {self.shown} cannot be read (permission denied)") from exc
        except (av.error.InvalidDataError, ValueError, av.error.EOFError) as exc:
            raise SourceError(
                f"input {self.shown} is not a video FFmpeg can read (corrupt, truncated or not a video: "
                f"{_reason(exc)})"
            ) from exc
        except av.error.ExitError as exc:
            raise SourceError(
                f"could not connect to {self.shown} within {self._connect_timeout:g} s"
            ) from exc
        except (av.error.FFmpegError, OSError) as exc:
            what = "connect to" if self.kind == "stream" else "open"
            raise SourceError(f"could not {what} {self.shown}: {_reason(exc)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"input {self.shown} has no video stream")
        if self.kind == "stream" and _is_recording(self._container):
            # A VOD playlist (#EXT-X-ENDLIST) is a recording: every frame once, then the end, no
            # reconnect (which replayed it from the start, for ever). Other URLs stay live: an RTSP
            # server announcing a range may still be a camera that resends on reconnect.
            log.info("%s is a recorded HLS playlist: read once to its end, like a file", self.shown)
            self.kind = "file"
        stream = self._container.streams.video[0]
        # Frame threading holds back one frame per decoder thread (3 frames = 100 ms at 30 fps,
        # unseen by the capture-to-sink latency); a live stream decodes with slice threads only.
        stream.thread_type = "SLICE" if self.kind == "stream" else "AUTO"
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            self._container.close()
            raise SourceError(f"input {self.shown} uses a video codec this FFmpeg cannot decode")
        self._stream = stream
        packets: Sequence[av.Packet] = ()
        first: Sequence[av.VideoFrame] = ()
        if ctx.width <= 0:  # no picture size in what FFmpeg probed: it comes with the next keyframe
            packets, first = self._first_picture()
        fps = (
            valid_rate(stream.average_rate) or valid_rate(stream.guessed_rate) or valid_rate(stream.base_rate)
        )
        if fps is None:
            log.warning("%s declares no usable frame rate; assuming 30 fps", self.shown)
            fps = Fraction(30)
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        frames = stream.frames or (round(duration * float(fps)) if duration else None)
        self.info = SourceInfo(
            name=self.shown,
            kind=self.kind,
            width=first[0].width if first else ctx.width,
            height=first[0].height if first else ctx.height,
            fps=fps,
            frame_count=frames or None,
            codec=ctx.name,
            duration=duration,
        )
        time_base = float(stream.time_base or Fraction(1, 90000))
        self._clock = FrameClock.for_container(self._container.format, time_base, 1 / float(fps))
        self._frames = itertools.chain(self._replay(packets, first), self._decode())
        if self._tap is not None:
            self._tap.stream(stream)

    def _first_picture(self) -> tuple[list[av.Packet], list[av.VideoFrame]]:
        """The packets up to the first that decodes to a picture, and its pictures. A stream joined
        between keyframes (a camera with a long keyframe interval, more so one that sends no
        timestamps, whose probe FFmpeg cannot bound by time) shows no picture size in its first
        half second; reading on to its next keyframe finds it. A ``SourceError`` that says so when
        none comes within ``FIRST_PICTURE_PACKETS`` packets or the connect timeout."""
        packets: list[av.Packet] = []
        deadline = time.monotonic() + self._connect_timeout
        timed, then = False, ""
        try:
            for packet in self._container.demux(self._stream):
                packets.append(packet)
                timed = timed or packet.pts is not None or packet.dts is not None
                with contextlib.suppress(av.error.InvalidDataError, ValueError, av.error.UndefinedError):
                    frames = list(packet.decode())
                    if frames:
                        return packets, frames
                if len(packets) >= FIRST_PICTURE_PACKETS or time.monotonic() > deadline:
                    break
        except (av.error.FFmpegError, OSError) as exc:  # a read timeout, the stream cut
            then = f", then {_reason(exc)}"
        self._container.close()
        stamps = "" if timed or not packets else "; its packets carry no timestamps"
        raise SourceError(
            f"input {self.shown} sent no picture FFmpeg could decode in {len(packets)} packets{then}: "
            f"no keyframe with the picture size came{stamps}"
        )

    def _replay(
        self, packets: Sequence[av.Packet], frames: Sequence[av.VideoFrame]
    ) -> Iterator[av.VideoFrame]:
        """What ``_first_picture`` read: its packets to the tap (when one is set by then), its pictures."""
        if self._tap is not None:
            for packet in packets:
                if packet.size:
                    self._tap.packet(packet)
        yield from frames

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
            if self._tap is not None and packet.size:
                self._tap.packet(packet)  # as demuxed: before the clock unsets times it cannot trust
            try:
                yield from self._clock.packet(packet).decode()
            except (av.error.InvalidDataError, ValueError, av.error.UndefinedError) as exc:
                self.corrupt += 1
                log.debug("skipping frame that failed to decode: %s", exc)

    def read(self) -> Frame | None:
        try:
            vf = next(self._frames, None)
        except av.error.ExitError as exc:  # read timeout on a stream
            if self.kind == "stream":
                raise TimeoutError(f"no data from {self.shown} for {self._read_timeout:g} s") from exc
            raise SourceError(f"reading {self.shown} stalled for {self._read_timeout:g} s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            if self.kind == "stream":
                raise ConnectionError(f"{self.shown}: {_reason(exc)}") from exc
            raise SourceError(f"reading {self.shown} failed: {_reason(exc)}") from exc
        if vf is None:
            return None
        now = time.monotonic()
        image: np.ndarray = vf.to_ndarray(format="bgr24")
        if self.kind == "stream":
            if self._t0 is None:
                self._t0 = now
            pts = now - self._t0
        else:
            pts = self._clock.time(vf.pts, vf.dts)
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


def _is_recording(container: av.container.InputContainer) -> bool:
    """An HLS playlist that ends (FFmpeg knows its duration only then)."""
    return container.format.name == "hls" and bool(container.duration)


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason, without the file name or URL PyAV puts after it."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[-1].strip().strip("'\"") or type(exc).__name__
