"""H.264 MP4 output (PyAV + libx264) that survives being killed, and the sink that feeds it.

``VideoWriterSink`` encodes each annotated frame once (``sinks.encoder``) and hands the packets to
its outputs: the ``--output`` file (an ``Mp4Writer``) and any ``PacketOutput`` such as the event
clip recorder, so clips cost no second encode.

``Mp4Writer`` writes packets to ``path``: while writing, the file is a fragmented MP4 with a
keyframe (and a fragment) every ``fragment_seconds``, flushed to the OS as each fragment ends, so a
process killed with SIGKILL leaves a file that plays up to the last fragment. ``close()`` remuxes
(stream copy) into a normal ``+faststart`` MP4 that replaces the fragmented one atomically.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av

from detector.errors import StorageError, UserError, raise_together, storage_error
from detector.events import EventRecord
from detector.files import atomic_write
from detector.report import part_reports
from detector.settings.model import EncoderSettings
from detector.sinks.audio import AudioSpan, AudioTrack, merge
from detector.sinks.base import FrameResult
from detector.sinks.encoder import Encoded, H264Encoder
from detector.sinks.paths import make_parents

log = logging.getLogger(__name__)

FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def _muxer(path: Path) -> str:
    return "mov" if path.suffix.lower() == ".mov" else "mp4"


def _write_failed(path: Path, exc: OSError) -> UserError:
    """A full disk is a ``StorageError`` (the run goes on without this file); anything else ends it."""
    message = f"writing {path} failed: {exc.strerror or exc}; the video up to here is kept"
    return storage_error(exc, path, message) or UserError(message)


def lost_on_close(path: Path, expected: int) -> OSError | None:
    """PyAV's ``close`` does not report a trailer (the last fragment) that did not fit: a file smaller
    than the packets written into it lost them. The error a full disk would have raised, or None."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return exc
    if size >= expected:
        return None
    free = free_space(path)
    code = errno.ENOSPC if free is None or free < expected - size + 65536 else errno.EIO
    return OSError(code, os.strerror(code))


def trim_torn_fragment(path: Path) -> None:
    """A fragmented MP4 cut short by a full disk ends inside a fragment: cut it back to the end of its
    last whole one (a ``moof`` counts with its ``mdat`` only), so every packet left is whole, and the
    space the torn one took is free again. Top-level box headers are all that is read."""
    try:
        size = path.stat().st_size
        good = pos = 0
        with open(path, "rb") as f:
            while pos + 8 <= size:
                f.seek(pos)
                head = f.read(16)
                length, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if length == 1 and len(head) == 16:
                    length = int.from_bytes(head[8:16], "big")
                if length < 8 or pos + length > size:
                    break
                pos += length
                if kind != b"moof":
                    good = pos
        if good < size:
            os.truncate(path, good)
            log.debug("%s: cut back to its last whole fragment (%d of %d bytes)", path, good, size)
    except OSError as exc:
        log.debug("%s: could not cut back the torn fragment: %s", path, exc)


def free_space(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def faststart(path: Path, audio: Callable[[Any], AudioTrack | None] | None = None) -> bool:
    """Rewrite the (fragmented) MP4 at ``path`` as a faststart MP4 that replaces it atomically: its
    first video stream copied (with B-frames, shifted back to start at 0), and ``audio(dst)``'s track
    if given. False, with a warning, when it cannot be (the fragmented file stays, and plays)."""
    started = time.perf_counter()

    def remux(tmp: Path) -> None:
        with av.open(str(path)) as src:
            src_stream = src.streams.video[0]
            with av.open(str(tmp), "w", format=_muxer(path), options={"movflags": "+faststart"}) as dst:
                dst_stream = dst.add_stream_from_template(src_stream)
                track = audio(dst) if audio is not None else None
                try:
                    video = _video_packets(src, src_stream, dst_stream)
                    for packet in merge(video, track.packets()) if track else (p for _, p in video):
                        dst.mux(packet)
                finally:
                    if track is not None:
                        track.close()

    try:
        atomic_write(path, remux)
    except (OSError, av.FFmpegError, ValueError, IndexError) as exc:
        msg = "%s: could not rewrite as a faststart MP4 (%s); keeping the fragmented MP4, which plays"
        log.warning(msg, path, exc)
        return False
    log.debug("%s: faststart remux took %.0f ms", path, (time.perf_counter() - started) * 1000)
    return True


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
            container = av.open(str(self.path), "w", format=_muxer(self.path), options=options)
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
        if self.error is not None or error is not None:
            trim_torn_fragment(self.path)
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
