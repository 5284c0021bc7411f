"""A fragment torn by a full disk is cut off when the file closes (issue 29, item 4): the file then
decodes to its end with no error (``ffmpeg -v error -i FILE -f null -`` prints nothing), where it
used to play its whole fragments and then give "Invalid NAL unit size". tmpfs mounts, as
``test_full_disk``; CI runs as root."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import pytest
from test_full_disk import fill, noise, whole_frames

from detector.errors import StorageError
from detector.media.encoder import H264Encoder
from detector.media.mp4files import top_boxes
from detector.media.mp4writer import Mp4Writer
from detector.storage.raw import RawRecorder
from detector.storage.recorder import SegmentBook


def decode_errors(path: Path) -> str:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr.strip()


def write_until_full(disk: Path, frames: int, *, free_after: bool, leave: int) -> tuple[Mp4Writer, int]:
    """Frames of noise (about 37 kB each) into ``disk/a.mp4`` until the disk is full (``leave`` bytes
    left once two fragments are written); then, with ``free_after``, room again before the file
    closes (retention deleted something)."""
    enc = H264Encoder(fps=Fraction(10), live=False, fragment_seconds=1.0, crf=0)
    writer = Mp4Writer(disk / "a.mp4", enc)
    theirs = None
    written = 0
    for i in range(frames):
        if i == 25:
            theirs = fill(disk, leave=leave)
        try:
            for packet in enc.encode(noise(i), 0.0, i / 10):
                writer.write(packet)
                written += 1
        except StorageError:
            break
    else:
        raise AssertionError("the disk never filled")
    if free_after and theirs is not None:
        theirs.unlink()
    writer.close()  # the full disk was raised by the write
    return writer, written


@pytest.mark.parametrize("free_after", [False, True], ids=["still-full", "room-again-at-close"])
@pytest.mark.parametrize("leave", [30_000, 150_000], ids=["no-whole-frame-torn", "whole-frames-torn"])
def test_a_torn_last_fragment_is_cut_off(
    small_disk: Callable[[str], Path], free_after: bool, leave: int
) -> None:
    """Frames 0-19 are two whole fragments; the third (20-29) is torn where the disk filled: its
    whole frames stay (its moof and mdat are rewritten to end with them), the torn one goes."""
    disk = small_disk("2m")
    writer, _ = write_until_full(disk, 200, free_after=free_after, leave=leave)
    path = disk / "a.mp4"
    assert decode_errors(path) == "", "plays to its end without a decoder error"
    frames = whole_frames(path)
    if leave < 37_000:
        assert frames == 20, "the two whole fragments"
    else:
        assert 22 <= frames < 30, "the two whole fragments and the whole frames of the torn one"
    assert [kind for kind, _, _ in top_boxes(path)][:2] == ["ftyp", "moov"]
    assert writer.failed == "No space left on device"


def test_the_lost_trailer_case_decodes_cleanly(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("400k")
    enc = H264Encoder(fps=Fraction(10), live=False, fragment_seconds=1.0)
    writer = Mp4Writer(disk / "a.mp4", enc)
    for i in range(25):
        for packet in enc.encode(noise(i), 0.0, i / 10):
            writer.write(packet)
    fill(disk)
    with pytest.raises(StorageError):
        writer.close()
    assert decode_errors(disk / "a.mp4") == ""
    assert whole_frames(disk / "a.mp4") == 20, "the two whole fragments"


def test_a_raw_segment_torn_by_a_full_disk_is_cut_off(
    small_disk: Callable[[str], Path], tmp_path: Path
) -> None:
    """``record.mode: raw`` copies the source's packets with PyAV: its segment is trimmed the same way."""
    source = tmp_path / "noise.mp4"  # 4 s of noise, lossless: 1.2 MB, more than the disk holds
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=10, options={"g": "10", "bf": "0", "crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(40):
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise(i), format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    root = small_disk("1m") / "rec"
    recorder = RawRecorder(SegmentBook(root, "cam", seconds=600, live=False, mode="raw"))
    with av.open(str(source)) as c:
        recorder.stream(c.streams.video[0])
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                recorder.packet(packet)
    with pytest.raises(StorageError, match="No space left on device"):
        recorder.close()
    (segment,) = root.glob("cam/*/*.mp4")
    assert decode_errors(segment) == "", "plays to its end without a decoder error"
    frames = whole_frames(segment)
    assert 10 <= frames < 40, "its whole fragments"
