"""The annotated-video sink: H.264 MP4 output (PyAV + libx264) that survives being killed.

``VideoWriterSink`` encodes each annotated frame once (``media.encoder``) and hands the packets to
its outputs: the ``--output`` file (an ``Mp4Writer``, ``media.mp4writer``) and any ``PacketOutput``
such as the event clip recorder, so clips cost no second encode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.errors import StorageError, UserError, raise_together
from detector.events import EventRecord
from detector.media.encoder import Encoded, H264Encoder
from detector.media.mp4writer import Mp4Writer, PacketOutput
from detector.settings.model import EncoderSettings
from detector.types import FrameResult, part_reports

log = logging.getLogger(__name__)


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
        encoder: EncoderSettings | None = None,
        audio_from: Path | None = None,
        outputs: Sequence[PacketOutput] = (),
    ) -> None:
        """``fps``, ``live`` and ``source_times`` are the stream's (``H264Encoder``); ``encoder``: the
        ``encoder:`` settings (preset, crf, threads, fragment length; the defaults without)."""
        self.path = None if path is None else Path(path).expanduser()
        settings = encoder if encoder is not None else EncoderSettings()
        self.encoder = H264Encoder.from_settings(
            settings,
            fps=fps,
            live=live,
            source_times=source_times,
            name=str(self.path or "the annotated video"),
        )
        self.file = (
            None
            if self.path is None
            else Mp4Writer(
                self.path, self.encoder, audio_from=audio_from, fragment_seconds=settings.fragment_seconds
            )
        )
        self.outputs = list(outputs)
        for output in self.outputs:
            output.bind(self.encoder)
        self._logged = False
        self._closed = False

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
