"""Kept audio: the source file's audio track, cut to the processed span, muxed beside our video.

Used by the video sink's final remux. Audio already in an MP4-friendly codec (AAC, MP3,
Opus, ALAC) is copied packet by packet; anything else is transcoded to AAC. Packets of
both streams are written in time order, so nothing is buffered beyond one packet each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

log = logging.getLogger(__name__)

COPY_CODECS = {"aac", "mp3", "opus", "alac"}


@dataclass(frozen=True)
class AudioSpan:
    """Take audio from ``source`` between ``start`` and ``end`` seconds of its video timeline."""

    source: Path
    start: float
    end: float


def audio_codec(path: str | Path) -> str | None:
    """The codec of the first audio stream of a file, or None (also for unreadable files)."""
    try:
        with av.open(str(path)) as c:
            return c.streams.audio[0].codec_context.name if c.streams.audio else None
    except (av.FFmpegError, OSError):
        return None


def _video_start(container: Any) -> float:
    video = container.streams.video[0] if container.streams.video else None
    if video is not None and video.start_time is not None:
        return float(video.start_time * video.time_base)
    return 0.0


class AudioTrack:
    """Adds an audio stream to ``dst`` and yields its packets (timestamps in ``dst`` time)."""

    def __init__(self, dst: Any, span: AudioSpan) -> None:
        self.span = span
        self._src = av.open(str(span.source))
        self._in = self._src.streams.audio[0]
        self._offset = _video_start(self._src) + span.start  # source seconds that become output 0
        name = self._in.codec_context.name
        self.copy = name in COPY_CODECS
        if self.copy:
            self.stream = dst.add_stream_from_template(self._in)
        else:
            rate = self._in.codec_context.sample_rate or 48000
            self.stream = dst.add_stream("aac", rate=rate)
            self.stream.layout = self._in.codec_context.layout.name or "stereo"
            self._resampler = av.AudioResampler(format="fltp", layout=self.stream.layout, rate=rate)
        log.info("audio: %s %s", name, "copied" if self.copy else "transcoded to AAC")

    def packets(self) -> Iterator[tuple[float, Any]]:
        """(output seconds, packet) in order, only inside the span."""
        length = self.span.end - self.span.start
        tb = self._in.time_base or Fraction(1, 1000)
        if self.copy:
            for packet in self._src.demux(self._in):
                if packet.pts is None or packet.dts is None:
                    continue
                t = float(packet.pts * tb) - self._offset
                if t < -1e-6:
                    continue
                if t >= length - 1e-6:
                    break
                shift = round(self._offset / tb)
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = self.stream
                yield t, packet
            return
        out_tb = Fraction(1, self.stream.codec_context.sample_rate)
        for frame in self._src.decode(self._in):
            if frame.pts is None:
                continue
            t = float(frame.pts * (frame.time_base or tb)) - self._offset
            if t < -1e-6:
                continue
            if t >= length - 1e-6:
                break
            frame = _trim(frame, round((length - t) * frame.sample_rate))
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                for packet in self.stream.encode(resampled):
                    yield float(packet.pts * out_tb) if packet.pts is not None else t, packet
        for packet in self.stream.encode(None):
            yield float(packet.pts * out_tb) if packet.pts is not None else length, packet

    def close(self) -> None:
        self._src.close()


def _trim(frame: Any, keep: int) -> Any:
    """The first ``keep`` samples of an audio frame (the span ends inside it)."""
    if keep >= frame.samples:
        return frame
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    arr = arr[:, :keep] if frame.format.is_planar else arr[:, : keep * channels]
    out = av.AudioFrame.from_ndarray(arr, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
    return out


def merge(video: Iterator[tuple[float, Any]], audio: Iterator[tuple[float, Any]]) -> Iterator[Any]:
    """Interleave two time-ordered packet streams."""
    a = next(audio, None)
    for tv, pv in video:
        while a is not None and a[0] <= tv:
            yield a[1]
            a = next(audio, None)
        yield pv
    while a is not None:
        yield a[1]
        a = next(audio, None)
