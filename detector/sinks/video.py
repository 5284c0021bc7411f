"""H.264 MP4 output (PyAV + libx264) that survives being killed, and the sink that feeds it.

``VideoWriterSink`` encodes each annotated frame once (``media.encoder``) and hands the packets to
its outputs: the ``--output`` file (an ``Mp4Writer``) and any ``PacketOutput`` such as the event
clip recorder, so clips cost no second encode.

``Mp4Writer`` writes packets to ``path``: while writing, the file is a fragmented MP4 with a
keyframe (and a fragment) every ``fragment_seconds``, flushed to the OS as each fragment ends, so a
process killed with SIGKILL leaves a file that plays up to the last fragment. ``close()`` remuxes
(stream copy) into a normal ``+faststart`` MP4 that replaces the fragmented one atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av

from detector.errors import StorageError, UserError, raise_together, storage_error
from detector.events import EventRecord
from detector.files import make_parents
from detector.media.audio import AudioSpan, AudioTrack
from detector.media.encoder import Encoded, H264Encoder
from detector.media.mp4files import faststart, lost_on_close, muxer
from detector.settings.model import EncoderSettings
from detector.types import FrameResult, part_reports

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
        if self.error is not None:  # already reported by write(); the fragmented file stays
            return
        if self.frames_written == 0 and error is None:  # opened, but no frame made it: no empty file
            self.path.unlink(missing_ok=True)
            return
        if error is not None:
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


class VideoWriterSink:
    """Encodes annotated frames once to H.264 (yuv420p) and hands the packets to the ``path`` MP4/MOV
    (if any) and to ``outputs`` (event clips, recording segments). Opens on the first frame.

    A full disk under one of them (``StorageError``, raised once) does not stop the others: the file
    closes what it has and is left out from then on, the outputs keep getting packets."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        fps: Fraction | float,
        live: bool,
        source_times: bool = False,
        preset: str = "ultrafast",
        crf: int = 23,
        threads: int = 0,
        fragment_seconds: float = 1.0,
        audio_from: Path | None = None,
        outputs: Sequence[PacketOutput] = (),
    ) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self.encoder = H264Encoder(
            fps=fps,
            live=live,
            source_times=source_times,
            preset=preset,
            crf=crf,
            threads=threads,
            fragment_seconds=fragment_seconds,
            name=str(self.path or "the annotated video"),
        )
        self.file = (
            None
            if self.path is None
            else Mp4Writer(self.path, self.encoder, audio_from=audio_from, fragment_seconds=fragment_seconds)
        )
        self.outputs = list(outputs)
        for output in self.outputs:
            output.bind(self.encoder)
        self._logged = False
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        encoder: EncoderSettings,
        path: Path | None,
        fps: Fraction,
        *,
        live: bool,
        source_times: bool = False,
        audio_from: Path | None = None,
        outputs: Sequence[PacketOutput] = (),
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
            outputs=outputs,
        )

    @property
    def frames_written(self) -> int:
        return self.file.frames_written if self.file is not None else self.encoder.frames_encoded

    @property
    def failed(self) -> str | None:
        """Why the ``--output`` file stopped part-way (it plays up to its last whole fragment)."""
        return self.file.failed if self.file is not None else None

    def write(self, result: FrameResult) -> None:
        if self._closed:
            raise RuntimeError(f"VideoWriterSink({self.path}) is closed")
        if self.file is not None and self.file.error is not None:
            if not isinstance(self.file.error, StorageError):
                raise self.file.error
            if not self.outputs:
                return  # the file stopped at a full disk, and nothing else wants the video
        frame = result.frame
        packets = self.encoder.encode(result.annotated, frame.capture_time, frame.pts)
        if not self._logged:
            self._log_start()
        for output in self.outputs:
            output.frame(result)
        self._send(packets)

    def _send(self, packets: Sequence[Encoded]) -> None:
        full: list[StorageError] = []
        if self.file is not None and self.file.error is None:
            try:
                for packet in packets:
                    self.file.write(packet)
            except StorageError as exc:
                full.append(exc)
        for output in self.outputs:
            try:
                output.packets(packets)
            except StorageError as exc:
                full.append(exc)
        raise_together(full)

    def _log_start(self) -> None:
        enc = self.encoder
        self._logged = True
        assert enc.size is not None
        log.info(
            "writing %s: %dx%d H.264 %s crf %d, %s fps%s, keyframe every %d frames, %d threads",
            *(enc.name, *enc.size, enc.preset, enc.crf, enc.fps),
            *(" (live timestamps)" if enc.live else "", enc.gop, enc.threads),
        )

    def report(self) -> dict[str, Any]:
        """What the packet outputs (the clip recorder) add to the run report."""
        out: dict[str, Any] = {}
        for part in part_reports(self.outputs):
            out.update(part)
        return out

    def event(self, record: EventRecord) -> None:
        """Events are not drawn into the video (the clip recorder, an attacher, clips them)."""

    def close(self) -> None:
        """Flush the encoder and finalize every output; idempotent. The first failure is raised."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        try:
            self._send(self.encoder.flush())
        except (OSError, UserError) as exc:
            errors.append(exc)
        closers: list[Mp4Writer | PacketOutput] = [*([self.file] if self.file else []), *self.outputs]
        for closer in closers:
            try:
                closer.close()
            except (OSError, UserError) as exc:
                errors.append(exc)
        if self.file is not None and self.file.frames_written and self.file.error is None:
            log.info("wrote %s: %d frames", self.path, self.file.frames_written)
        fatal = [e for e in errors if not isinstance(e, StorageError)]
        if fatal:
            raise fatal[0]
        raise_together([e for e in errors if isinstance(e, StorageError)])
