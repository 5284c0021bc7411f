"""What is done to an MP4 once it is written: the faststart rewrite (a fragmented MP4 made a normal one,
atomically), and what a full disk leaves: a close that lost its last fragment without saying so
(PyAV's ``close`` does not report it) is found by the file's size. A file cut short is trimmed to its
last whole fragment (``trim_torn``: the MP4 box sizes say where it ends), so it plays to its end
without a decoder error."""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av

from detector.files import atomic_write
from detector.sinks.audio import AudioTrack, merge

log = logging.getLogger(__name__)


def muxer(path: Path) -> str:
    return "mov" if path.suffix.lower() == ".mov" else "mp4"


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
            with av.open(str(tmp), "w", format=muxer(path), options={"movflags": "+faststart"}) as dst:
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


# A fragmented MP4 is ftyp, moov, then (moof, mdat) pairs, and at a clean close an mfra index.
_BOX_TYPES = {b"ftyp", b"moov", b"moof", b"mdat", b"mfra", b"free", b"skip", b"styp", b"sidx", b"uuid"}


def top_boxes(path: Path) -> list[tuple[str, int, int]]:
    """The top-level boxes of an MP4 as (type, offset, size), up to the first one that is not whole
    (its header cut short, an unknown type, or a size past the end of the file). Read by hand: PyAV
    does not expose boxes, and only the 8- or 16-byte headers are needed."""
    boxes: list[tuple[str, int, int]] = []
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + 8 <= end:
            f.seek(offset)
            header = f.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1 and len(header) == 16:
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = end - offset
            if kind not in _BOX_TYPES or size < 8 or offset + size > end:
                break
            boxes.append((kind.decode(), offset, size))
            offset += size
    return boxes


def _known_box_at(path: Path, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        header = f.read(8)
    return len(header) == 8 and header[4:8] in _BOX_TYPES


def trim_torn(path: Path) -> int:
    """Cut a fragmented MP4 that a full disk tore back to the end of its last whole fragment (a moof
    and the whole mdat after it, followed by a whole box or the end of the file), so that no decoder
    meets a torn packet. Returns the bytes cut (0: the file was whole, or is not a fragmented MP4)."""
    try:
        boxes = top_boxes(path)
        size = path.stat().st_size
    except (OSError, struct.error) as exc:
        log.debug("%s: its boxes cannot be read (%s); kept as it is", path, exc)
        return 0
    if "moov" not in [kind for kind, _, _ in boxes]:
        return 0
    if boxes and sum(boxes[-1][1:]) < size and not _known_box_at(path, sum(boxes[-1][1:])):
        boxes.pop()  # what follows it is no box: its own size was torn (bytes written after a gap)
    keep = 0
    for i, (kind, offset, length) in enumerate(boxes):
        if kind == "moof":  # a fragment is whole with its mdat
            if i + 1 < len(boxes) and boxes[i + 1][0] == "mdat":
                continue
            break
        keep = offset + length
    if keep >= size:
        return 0
    try:
        os.truncate(path, keep)
    except OSError as exc:
        log.warning("%s: its torn last fragment cannot be cut off (%s)", path, exc)
        return 0
    log.info("%s: cut off its torn last fragment (%d bytes)", path, size - keep)
    return size - keep
