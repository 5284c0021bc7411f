"""What is done to an MP4 once it is written: the faststart rewrite (a fragmented MP4 made a normal one,
atomically), and what a full disk leaves: a close that lost its last fragment without saying so
(PyAV's ``close`` does not report it) is found by the file's size. A file cut short is kept as it is:
it plays up to its last whole fragment, and its demuxer still gives every whole packet of the
fragment it was writing (only the last one is torn)."""

from __future__ import annotations

import errno
import logging
import os
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
