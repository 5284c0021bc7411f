"""Writing H.264 packets to an MP4 that survives being killed (``Mp4Writer``), and ``PacketOutput``, what
gets the packets of the one encode besides the ``--output`` file (event clips, recording segments).

``Mp4Writer`` writes packets to ``path``: while writing, the file is a fragmented MP4 with a
keyframe (and a fragment) every ``fragment_seconds``, flushed to the OS as each fragment ends, so a
process killed with SIGKILL leaves a file that plays up to the last fragment; one a full disk cut
short loses its torn packet as it closes (no decoder meets it; ``mp4files.trim_torn``).
``close()`` remuxes (stream copy) into a normal ``+faststart`` MP4 that replaces the fragmented one
atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import av

from detector.errors import UserError, storage_error
from detector.files import make_parents
from detector.media.audio import AudioSpan, AudioTrack
from detector.media.encoder import Encoded, H264Encoder
from detector.media.mp4files import faststart, lost_on_close, muxer, trim_torn
from detector.types import FrameResult

log = logging.getLogger(__name__)

FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def _write_failed(path: Path, exc: OSError) -> UserError:
    """A full disk is a ``StorageError`` (the run goes on without this file); anything else ends it."""
    message = f"writing {path} failed: {exc.strerror or exc}; the video up to here is kept"
    return storage_error(exc, path, message) or UserError(message)


class PacketOutput(Protocol):
    """Something made from the encoded video besides the ``--output`` file (event clips)."""

    def bind(self, encoder: H264Encoder) -> None:
        """The encoder whose packets it will get (its size, rate and time base)."""
        ...

    def frame(self, result: FrameResult) -> None:
        """The annotated frame just encoded (its packets may come out a few frames later)."""
        ...

    def packets(self, packets: Sequence[Encoded]) -> None: ...

    def close(self) -> None:
        """After the last packets: finish what is open."""
        ...


class Mp4Writer:
    """Writes the packets of one H.264 stream to an MP4/MOV; opens on the first packet.

    ``from_zero`` shifts the first packet to time 0 (a clip cut from the middle of a run);
    ``audio_from``: a file whose audio track is kept, cut to the span of the frames written.
    """

    def __init__(
        self,
        path: Path,
        encoder: H264Encoder,
        *,
        from_zero: bool = False,
        audio_from: Path | None = None,
        fragment_seconds: float = 1.0,
    ) -> None:
        self.path = path
        self.encoder = encoder
        self.from_zero = from_zero
        self.audio_from = audio_from
        self.fragment_seconds = fragment_seconds
        self.frames_written = 0
        self.bytes_written = 0  # of the packets; the file holds at least as much
        self.error: UserError | None = None
        self.failed: str | None = None  # the reason behind ``error``
        self._container: Any = None
        self._stream: Any = None
        self._origin = 0
        self._span: tuple[float, float] | None = None  # source pts of the first and last frame written
        self._closed = False

    def _open(self, first: Encoded) -> None:
        enc = self.encoder
        assert enc.size is not None
        options = {"movflags": FRAGMENTED_MOVFLAGS, "flush_packets": "1"}
        if enc.live:  # frames may come slower than fps: also cap fragments by time
            options["frag_duration"] = str(round(2e6 * self.fragment_seconds))
        make_parents(self.path)
        try:
            container = av.open(str(self.path), "w", format=muxer(self.path), options=options)
        except OSError as exc:
            message = f"cannot create video output {self.path}: {exc.strerror or exc}"
            self.failed = exc.strerror or str(exc)
            self.error = storage_error(exc, self.path, message) or UserError(message)
            raise self.error from exc
        width, height = enc.size
        self._stream = container.add_mux_stream("h264", rate=enc.fps, width=width, height=height)
        self._stream.time_base = enc.time_base
        self._container = container
        self._origin = first.pts if self.from_zero else 0

    def write(self, enc: Encoded) -> None:
        if self._closed:
            raise RuntimeError(f"Mp4Writer({self.path}) is closed")
        if self.error is not None:
            raise self.error
        if self._container is None:
            self._open(enc)
        packet = enc.packet
        # The same packet goes to several files: set its times each time (muxing rescales them in place).
        packet.time_base = self.encoder.time_base
        packet.pts, packet.dts = enc.pts - self._origin, enc.dts - self._origin
        packet.stream = self._stream
        try:
            self._container.mux(packet)
        except OSError as exc:
            self.failed = exc.strerror or str(exc)
            self.error = _write_failed(self.path, exc)
            raise self.error from exc
        self.frames_written += 1
        self.bytes_written += enc.nbytes
        t = enc.source_pts
        self._span = (t, t) if self._span is None else (min(self._span[0], t), max(self._span[1], t))

    def close(self) -> None:
        """Finalize; idempotent. Leaves a playable file if a frame was written."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None:
            return
        error: OSError | None = None
        try:
            container.close()
        except OSError as exc:
            error = exc
        if error is None and self.error is None and self.frames_written:
            error = lost_on_close(self.path, self.bytes_written)
        if self.error is not None:  # already reported by write(); the fragmented file stays, trimmed
            trim_torn(self.path)
            return
        if self.frames_written == 0 and error is None:  # opened, but no frame made it: no empty file
            self.path.unlink(missing_ok=True)
            return
        if error is not None:
            trim_torn(self.path)
            self.failed = error.strerror or str(error)
            self.error = _write_failed(self.path, error)
            raise self.error from error
        self._faststart()

    def _audio_track(self, dst: Any) -> AudioTrack | None:
        if self.audio_from is None or self._span is None or self.encoder.live:
            return None
        end = self._span[1] + 1 / float(self.encoder.fps)  # through the end of the last frame written
        try:
            return AudioTrack(dst, AudioSpan(self.audio_from, self._span[0], end))
        except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
            log.warning(
                "%s: audio from %s cannot be kept (%s); writing video only", self.path, self.audio_from, exc
            )
            return None

    def _faststart(self) -> None:
        faststart(self.path, self._audio_track)
