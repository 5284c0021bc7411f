"""What is done to an MP4 once it is written: the faststart rewrite (a fragmented MP4 made a normal one,
atomically), and what a full disk leaves: a close that lost its last fragment without saying so
(PyAV's ``close`` does not report it) is found by the file's size. A file cut short keeps its whole
fragments and the whole packets of the torn one, and loses the torn packet (``trim_torn``: the MP4
box sizes say where each ends), so it plays to its end without a decoder error."""

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
from detector.media.audio import AudioTrack, merge

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
    """Cut a fragmented MP4 that a full disk tore so that no decoder meets a torn packet: after its
    last whole fragment (a moof and the whole mdat after it, followed by a whole box or the end of
    the file), the torn fragment keeps its whole packets (``_whole_samples``), or goes. Returns the
    bytes cut (0: the file was whole, or is not a fragmented MP4)."""
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
        with open(path, "r+b") as f:
            # The torn fragment's whole packets stay (its moof and mdat told so): nothing playable goes.
            keep = _whole_samples(f, keep, size) or keep
            f.truncate(keep)
    except (OSError, struct.error) as exc:
        log.warning("%s: its torn last fragment cannot be cut off (%s)", path, exc)
        return 0
    log.info("%s: cut off its torn last fragment (%d bytes)", path, size - keep)
    return size - keep


def _children(data: bytes, start: int, end: int) -> dict[bytes, list[int]]:
    """Offsets (in ``data``) of the boxes inside ``data[start:end]``, by type."""
    found: dict[bytes, list[int]] = {}
    while start + 8 <= end:
        length, kind = struct.unpack(">I4s", data[start : start + 8])
        if length < 8 or start + length > end:
            break
        found.setdefault(kind, []).append(start)
        start += length
    return found


def _whole_samples(f: Any, moof: int, size: int) -> int | None:
    """The torn fragment at ``moof`` cut to its whole samples, in place (no room needed): its trun's
    sample count and its mdat's size rewritten. Where it ends, or None (no whole sample, or a layout
    this does not read: one traf and one trun, the sample sizes given)."""
    f.seek(moof)
    head = f.read(8)
    if len(head) < 8:
        return None
    length, kind = struct.unpack(">I4s", head)
    f.seek(moof)
    data = f.read(length + 16)
    if kind != b"moof" or len(data) < length + 16 or data[length + 4 : length + 8] != b"mdat":
        return None
    trafs = _children(data, 8, length).get(b"traf", [])
    if len(trafs) != 1:
        return None
    traf = trafs[0]
    inner = _children(data, traf + 8, traf + struct.unpack(">I", data[traf : traf + 4])[0])
    if len(inner.get(b"trun", [])) != 1 or len(inner.get(b"tfhd", [])) != 1:
        return None
    tfhd, trun = inner[b"tfhd"][0], inner[b"trun"][0]
    tf_flags = struct.unpack(">I", data[tfhd + 8 : tfhd + 12])[0] & 0xFFFFFF
    at = (
        tfhd + 16 + (8 if tf_flags & 0x1 else 0) + (4 if tf_flags & 0x2 else 0) + (4 if tf_flags & 0x8 else 0)
    )
    default_size = struct.unpack(">I", data[at : at + 4])[0] if tf_flags & 0x10 else None
    flags, count = struct.unpack(">II", data[trun + 8 : trun + 16])
    flags &= 0xFFFFFF
    at = trun + 16
    offset = None
    if flags & 0x1:
        offset = struct.unpack(">i", data[at : at + 4])[0]
        at += 4
    at += 4 if flags & 0x4 else 0
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    if offset is None or not (flags & 0x200 or default_size) or tf_flags & 0x1:
        return None  # data not placed relative to this moof (default-base-is-moof), or sizes unknown
    start = moof + offset
    sizes = []
    for _ in range(count):
        entry = struct.unpack(f">{len(fields)}I", data[at : at + 4 * len(fields)]) if fields else ()
        sizes.append(entry[fields.index(0x200)] if flags & 0x200 else default_size)
        at += 4 * len(fields)
    end, whole = start, 0
    for sample in sizes:
        if end + sample > size:
            break
        end, whole = end + sample, whole + 1
    if whole == 0:
        return None
    f.seek(moof + trun + 12)  # ``trun`` is its offset in ``data``, which starts at the moof
    f.write(struct.pack(">I", whole))
    mdat = moof + length
    mdat_size = struct.unpack(">I", data[length : length + 4])[0]
    if mdat_size == 1:  # a 64-bit size after the type
        f.seek(mdat + 8)
        f.write(struct.pack(">Q", end - mdat))
    else:
        f.seek(mdat)
        f.write(struct.pack(">I", end - mdat))
    return end
