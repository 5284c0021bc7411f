"""Video and JSON-lines sinks: real files, decoded back with PyAV (no model)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import files as files_mod
from detector.errors import StorageError, UserError
from detector.events import Gap, LineCross
from detector.settings.model import EncoderSettings
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.sinks.paths import check_json_output_path, check_video_output_path
from detector.sinks.video import VideoWriterSink
from detector.types import Detections, Frame, FrameResult

ROOT = Path(__file__).resolve().parent.parent


def make_image(i: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), 60, np.uint8)
    x = (i * 9) % max(width - 40, 1)
    img[height // 3 : height // 3 + 40, x : x + 40] = (0, 0, 255)
    return img


def make_result(
    i: int,
    width: int = 640,
    height: int = 360,
    capture_time: float | None = None,
    dets: Detections | None = None,
) -> FrameResult:
    img = make_image(i, width, height)
    t = i / 30 if capture_time is None else capture_time
    frame = Frame(image=img, index=i, pts=t, capture_time=1000.0 + t)
    return FrameResult(frame=frame, detections=dets or Detections.empty(), annotated=img, latency_ms=12.34)


def decode(path: Path) -> tuple[SimpleNamespace, list[av.VideoFrame]]:
    """The video stream's facts, read while the file is open (PyAV 18.1 refuses a closed container's
    stream), and its decoded frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        ctx = stream.codec_context
        facts = SimpleNamespace(
            codec_context=SimpleNamespace(name=ctx.name, pix_fmt=ctx.pix_fmt),
            width=stream.width,
            height=stream.height,
            average_rate=stream.average_rate,
            duration=stream.duration,
            time_base=stream.time_base,
        )
    return facts, frames


def top_level_boxes(path: Path) -> list[str]:
    boxes = []
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            boxes.append(kind.decode("latin-1"))
            if size == 0:
                break
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            f.seek(size - 8, os.SEEK_CUR)
    return boxes


def write_video(path: Path, n: int, fps: Fraction, size: tuple[int, int] = (640, 360), **kw: object) -> None:
    sink = VideoWriterSink(path, fps=fps, live=False, encoder=EncoderSettings(threads=2, **kw))  # type: ignore[arg-type]
    for i in range(n):
        sink.write(make_result(i, *size))
    sink.close()
    sink.close()  # idempotent
    assert sink.frames_written == n


# -- video: file mode --------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(179, 6), Fraction(25, 2), Fraction(30)])
def test_file_mode_rate_count_codec(tmp_path: Path, fps: Fraction) -> None:
    out = tmp_path / "out.mp4"
    write_video(out, 60, fps)
    stream, frames = decode(out)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (640, 360)
    assert len(frames) == 60
    assert stream.average_rate == fps
    assert frames[0].time == 0
    img = frames[-1].to_ndarray(format="bgr24")  # colours survive (BT.601 tags match the conversion)
    assert abs(img.astype(int) - make_image(59, 640, 360)).mean() < 3
    assert np.abs(img[120:160].astype(int) - (0, 0, 255)).min(axis=(0, 1)).max() < 10
    assert frames[-1].time == pytest.approx(59 / float(fps), abs=1e-3)
    assert not list(tmp_path.glob(".*tmp")), "temporary remux file left behind"


def test_finished_file_is_faststart(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    write_video(out, 45, Fraction(30))
    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert "moof" not in boxes, "finished file should no longer be fragmented"


def test_odd_size_is_padded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "odd.mov"
    with caplog.at_level(logging.WARNING, logger="detector.sinks.video"):
        write_video(out, 20, Fraction(30), size=(321, 241), preset="ultrafast")
    assert sum("odd" in r.getMessage() for r in caplog.records) == 1
    stream, frames = decode(out)
    assert (stream.width, stream.height) == (322, 242)
    assert len(frames) == 20
    last = frames[-1].to_ndarray(format="bgr24")
    assert last[:, -1].mean() < 30 and last[-1, :].mean() < 30  # the pad is black (source is grey 60)
    assert abs(last[:-1, :-1].astype(int) - make_image(19, 321, 241)).mean() < 4


@pytest.mark.parametrize("size", [(480, 270), (322, 246)])
def test_heights_not_multiple_of_4(tmp_path: Path, size: tuple[int, int]) -> None:
    out = tmp_path / "out.mp4"
    write_video(out, 10, Fraction(30), size=size, preset="ultrafast")
    stream, frames = decode(out)
    assert (stream.width, stream.height) == size
    img = frames[-1].to_ndarray(format="bgr24")
    assert abs(img.astype(int) - make_image(9, *size)).mean() < 4


# -- video: live mode --------------------------------------------------------------------------


def test_live_mode_uses_capture_times(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    times = [i / 30 for i in range(91) if i == 90 or i % 7 not in (3, 4)]  # some frames dropped
    times = [0.0, *sorted(t + rng.uniform(-0.005, 0.005) for t in times[1:-1]), 3.0]
    times.insert(5, times[4])  # a repeated capture time must still give increasing pts
    out = tmp_path / "live.mp4"
    sink = VideoWriterSink(
        out, fps=Fraction(30), live=True, encoder=EncoderSettings(preset="ultrafast", threads=2)
    )
    for i, t in enumerate(times):
        sink.write(make_result(i, 320, 240, capture_time=t))
    sink.close()
    stream, frames = decode(out)
    assert len(frames) == len(times) == sink.frames_written
    pts = [f.time for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[0] == 0
    assert pts[-1] == pytest.approx(3.0, abs=1 / 30)
    assert stream.duration is not None and stream.time_base is not None
    assert float(stream.duration * stream.time_base) == pytest.approx(3.0, abs=1.5 / 30)


# -- video: crash safety and write errors -------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from fractions import Fraction
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_sinks import make_result
    from detector.settings.model import EncoderSettings
    from detector.sinks.video import VideoWriterSink
    encoder = EncoderSettings(threads=2, fragment_seconds=1.0)
    sink = VideoWriterSink({out!r}, fps=Fraction(30), live=False, encoder=encoder)
    for i in range(90):
        sink.write(make_result(i, 320, 240))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sigkill_leaves_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "crash.mp4"
    script = CRASH_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert "moof" in top_level_boxes(out)
    stream, frames = decode(out)
    assert stream.codec_context.name == "h264"
    assert len(frames) >= 60


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_a_storage_error_raised_once(tmp_path: Path) -> None:
    """A full disk is a ``StorageError`` (a ``UserError``), raised once: the file is left out from then
    on (the lane goes on with the other sinks), and closing reports nothing more."""
    out = tmp_path / "full.mp4"
    out.symlink_to("/dev/full")
    sink = VideoWriterSink(check_video_output_path(out, overwrite=True), fps=Fraction(30), live=False)
    with pytest.raises(StorageError, match=r"writing .*full\.mp4 failed: No space left.*kept") as caught:
        for i in range(30):
            sink.write(make_result(i, 64, 64))
    assert isinstance(caught.value, UserError) and caught.value.reason == "No space left on device"
    sink.write(make_result(31, 64, 64))  # no second error: the file stopped
    assert sink.failed == "No space left on device"
    sink.close()  # the error was already reported: no second one
    sink.close()


def test_remux_failure_keeps_fragmented_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_mod.os, "replace", broken_replace)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="detector.sinks.video"):
        write_video(out, 40, Fraction(30), preset="ultrafast")
    assert any("keeping the fragmented" in r.getMessage() for r in caplog.records)
    assert "moof" in top_level_boxes(out)
    assert len(decode(out)[1]) == 40
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_close_without_frames_creates_nothing(tmp_path: Path) -> None:
    sink = VideoWriterSink(tmp_path / "none.mp4", fps=Fraction(30), live=False)
    r = make_result(0, 64, 64)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        sink.write(FrameResult(r.frame, r.detections, r.annotated[:, :, 0], 1.0))
    sink.close()
    assert not (tmp_path / "none.mp4").exists()


def test_size_change_is_scaled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out.mp4"
    sink = VideoWriterSink(
        out, fps=Fraction(30), live=False, encoder=EncoderSettings(preset="ultrafast", threads=2)
    )
    with caplog.at_level(logging.WARNING, logger="detector.sinks.video"):
        for i in range(6):
            sink.write(make_result(i, 320, 240) if i < 3 else make_result(i, 640, 480))
        sink.close()
    assert sum("size changed" in r.getMessage() for r in caplog.records) == 1
    stream, frames = decode(out)
    assert (stream.width, stream.height, len(frames)) == (320, 240, 6)


# -- output path checks -------------------------------------------------------------------------


@pytest.mark.parametrize("check", [check_video_output_path, check_json_output_path])
def test_bad_output_paths(tmp_path: Path, check: object) -> None:
    assert callable(check)
    deep = tmp_path / "missing" / "deeper" / "out.mp4"
    assert check(deep, False) == deep
    assert not (tmp_path / "missing").exists(), "checking makes no folder"
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UserError, match="is not a folder"):
        check(tmp_path / "file" / "deeper" / "out.mp4", False)
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"x")
    with pytest.raises(UserError, match=r"exists; pass --overwrite"):
        check(existing, False)
    assert check(existing, True) == existing
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        check(tmp_path / "dir.mp4", True)


def test_video_extension_must_be_a_container(tmp_path: Path) -> None:
    for name in ("out.txt", "out.jpg", "out"):
        with pytest.raises(UserError, match=r"written as H.264 in MP4; use a \.mp4"):
            check_video_output_path(tmp_path / name, False)
    for name in ("a.mp4", "b.M4V", "c.mov"):
        assert check_video_output_path(tmp_path / name, False) == tmp_path / name


@pytest.mark.parametrize("check", [check_video_output_path, check_json_output_path])
def test_read_only_folder(read_only_dir: Path, check: object) -> None:
    """A folder this process cannot write into: mode 555, or for root a read-only mount."""
    assert callable(check)
    with pytest.raises(
        UserError, match=re.escape(f"folder {read_only_dir} is not writable; choose another path")
    ):
        check(read_only_dir / "out.mp4", False)
    assert not list(read_only_dir.iterdir())


def test_not_writable_message(read_only_file: Path) -> None:
    """An existing file this process cannot replace (mode 444, or for root a read-only bind mount),
    in a writable folder: refused even with --overwrite, and left as it was."""
    with pytest.raises(
        UserError, match=re.escape(f"{read_only_file} exists and is not writable; choose another path")
    ):
        check_video_output_path(read_only_file, True)
    with pytest.raises(UserError, match="exists; pass --overwrite"):
        check_video_output_path(read_only_file, False)
    assert read_only_file.read_text() == "old"


# -- JSON lines ---------------------------------------------------------------------------------


def sample_detections() -> Detections:
    return Detections(
        xyxy=np.array([[10.04, 20.0, 30.5, 40.26], [1, 2, 3, 4]], np.float32),
        confidence=np.array([0.91234, 0.5], np.float32),
        class_id=np.array([0, 2]),
        tracker_id=np.array([7, 8]),
        names={0: "person", 2: "car"},
    )


def test_jsonl_schema_and_flush(tmp_path: Path) -> None:
    out = tmp_path / "dets.jsonl"
    sink = JsonLinesSink(out, overwrite=False)
    dets = sample_detections()
    for i in range(3):
        r = make_result(i, 64, 48, capture_time=i / 3, dets=dets if i != 1 else Detections.empty())
        sink.write(r)
        lines = out.read_text(encoding="utf-8").splitlines()  # before close: already flushed
        assert len(lines) == i + 1
    sink.event(
        Gap(
            after_frame=2,
            from_pts=0.667,
            to_pts=3.0,
            seconds=float("nan"),
            attempts=np.int64(3),
            frame=3,
            pts=3.0,
        )
    )
    records = read_jsonl(out)
    sink.close()
    sink.close()
    assert len(records) == 4
    first = records[0]
    assert list(first) == ["frame", "pts", "latency_ms", "detections"]
    assert first["frame"] == 0 and first["pts"] == 0 and first["latency_ms"] == 12.3
    assert records[1]["pts"] == 0.333333 and records[1]["detections"] == []
    assert first["detections"] == dets.to_records()
    assert first["detections"][0] == {
        "class_id": 0,
        "class_name": "person",
        "confidence": 0.9123,
        "xyxy": [10.0, 20.0, 30.5, 40.3],
        "track_id": 7,
    }
    assert records[3] == {
        "event": "gap", "id": "", "source": "", "wall_time": "", "after_frame": 2, "from_pts": 0.667,
        "to_pts": 3.0, "seconds": None, "attempts": 3, "frame": 3, "pts": 3.0,
    }  # fmt: skip
    assert "NaN" not in out.read_text()


def test_jsonl_one_write_per_line(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "d.jsonl", overwrite=False)
    assert sink._raw is None, "opened at the first line, not before"
    calls: list[bytes] = []
    raw = sink._open()

    class Spy:
        def write(self, data: memoryview) -> int | None:
            calls.append(bytes(data))
            return raw.write(data)

        def close(self) -> None:
            raw.close()

    sink._raw = Spy()  # type: ignore[assignment]
    sink.write(make_result(0, 32, 32, dets=sample_detections()))
    sink.event(LineCross(line="door", direction="in"))
    sink.close()
    assert len(calls) == 2 and all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in calls)


def test_jsonl_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_json_output_path("-", overwrite=False) is None
    sink = JsonLinesSink("-", overwrite=False)
    sink.write(make_result(5, 32, 32, dets=sample_detections()))
    sink.event(LineCross(line="door", direction="in", id="x", source="cam"))
    sink.close()
    print("still open")
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0])["frame"] == 5
    assert json.loads(lines[1])["event"] == "line_cross" and json.loads(lines[1])["id"] == "x"
    assert lines[2] == "still open"


def test_read_jsonl_skips_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "torn.jsonl"
    path.write_text('{"a":1}\n{"b":2}\n{"c":', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    path.write_text('{"a":1}\nnot json\n{"b":2}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        read_jsonl(path)


names_st = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ['a "quoted" name', "two\nlines", "tab\there", "back\\slash", "😀 émoji", "\u2028sep"]
)
finite = st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def detections_st(draw: st.DrawFn) -> Detections:
    n = draw(st.integers(0, 5))
    class_ids = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    return Detections(
        xyxy=np.array(
            draw(st.lists(st.tuples(finite, finite, finite, finite), min_size=n, max_size=n)), np.float32
        ),
        confidence=np.array(draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n)), np.float32),
        class_id=np.array(class_ids, np.int64),
        tracker_id=None if draw(st.booleans()) else np.arange(n),
        names={c: draw(names_st) for c in class_ids},
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dets=st.lists(detections_st(), min_size=1, max_size=4), pts=finite, latency=finite)
def test_jsonl_round_trip(dets: list[Detections], pts: float, latency: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        sink = JsonLinesSink(path, overwrite=False)
        for i, d in enumerate(dets):
            frame = Frame(np.zeros((2, 2, 3), np.uint8), i, pts, 0.0)
            sink.write(FrameResult(frame, d, frame.image, latency))
        sink.close()
        records = read_jsonl(path)
        assert path.read_bytes().count(b"\n") == len(dets)
    assert len(records) == len(dets)
    for i, (rec, d) in enumerate(zip(records, dets, strict=True)):
        assert list(rec) == ["frame", "pts", "latency_ms", "detections"]
        assert rec["frame"] == i
        assert rec["pts"] == pytest.approx(pts, abs=5.01e-7)  # microseconds
        assert rec["latency_ms"] == pytest.approx(latency, abs=0.0501)  # 0.1 ms
        # what went in, read back against the documented precision (not against the code that writes it)
        assert len(rec["detections"]) == len(d.xyxy)
        for k, det in enumerate(rec["detections"]):
            cid = int(d.class_id[k])
            assert list(det) == ["class_id", "class_name", "confidence", "xyxy", "track_id"]
            assert det["class_id"] == cid and det["class_name"] == d.names.get(cid, str(cid))
            assert det["confidence"] == pytest.approx(float(d.confidence[k]), abs=5.01e-5)  # 4 decimals
            assert det["xyxy"] == pytest.approx([float(v) for v in d.xyxy[k]], abs=0.0501)  # 0.1 px
            assert det["track_id"] == (None if d.tracker_id is None else int(d.tracker_id[k]))
