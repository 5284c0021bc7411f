"""The pipelined loop with fakes: order, drop policy, errors in each stage, no hangs."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from conftest import FakeDetector

from detector.errors import StreamLost
from detector.events import EventRecord
from detector.pipeline.channel import Channel, Closed
from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.pipeline.gate import Gate
from detector.pipeline.lane import Lane
from detector.sources import SourceInfo
from detector.stages.overlay import OverlayStage
from detector.types import Frame, FrameResult


class FakeSource:
    """``n`` frames whose top-left pixel encodes the index; optionally paced like a live camera."""

    def __init__(
        self,
        n: int = 40,
        *,
        kind: str = "file",
        pace: float = 0.0,
        fail_at: int | None = None,
        drop_after: int | None = None,
        reopen_ok: bool = True,
    ) -> None:
        self.info = SourceInfo(name="fake", kind=kind, width=64, height=48, fps=Fraction(30), frame_count=n)
        self.n, self.pace, self.fail_at = n, pace, fail_at
        self.drop_after, self.reopen_ok = drop_after, reopen_ok
        self.i = 0
        self.corrupt = 0
        self.closed = False
        self.reopens = 0
        self._t0 = time.monotonic()

    def read(self) -> Frame | None:
        if self.fail_at is not None and self.i >= self.fail_at:
            raise RuntimeError("fake decode failure")
        if self.drop_after is not None and self.i >= self.drop_after and self.reopens == 0:
            raise ConnectionError("fake stream dropped")
        if self.i >= self.n:
            return None
        if self.pace:
            time.sleep(self.pace)
        img = np.zeros((48, 64, 3), np.uint8)
        img[0, 0] = (self.i % 256, self.i // 256, 0)
        now = time.monotonic()
        f = Frame(img, self.i, now - self._t0 if self.info.live else self.i / 30, now)
        self.i += 1
        return f

    def reopen(self) -> None:
        self.reopens += 1
        if not self.reopen_ok:
            raise ConnectionError("still down")

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.indices: list[int] = []
        self.pixels: list[int] = []
        self.events: list[dict[str, Any]] = []
        self.delay, self.fail_at = delay, fail_at
        self.closed = False

    def write(self, result: FrameResult) -> None:
        if self.fail_at is not None and len(self.indices) >= self.fail_at:
            raise OSError("fake disk full")
        if self.delay:
            time.sleep(self.delay)
        self.indices.append(result.frame.index)
        px = result.frame.image[0, 0]
        self.pixels.append(int(px[0]) + 256 * int(px[1]))

    def event(self, record: EventRecord) -> None:
        self.events.append(record.to_dict())

    def close(self) -> None:
        self.closed = True


def make(source: FakeSource, detector: Any = None, sink: RecordingSink | None = None, **kw: Any) -> Pipeline:
    options = PipelineOptions(**kw)
    return Pipeline.single(
        source, detector or FakeDetector(), [OverlayStage()], [sink or RecordingSink()], options
    )


def no_stage_threads() -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name in ("capture", "inference") and t.is_alive()]:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("det_delay", "sink_delay"), [(0.01, 0.0), (0.0, 0.01), (0.0, 0.0)])
def test_file_frames_arrive_in_order_and_none_dropped(det_delay, sink_delay):
    sink = RecordingSink(delay=sink_delay)
    src = FakeSource(40)
    [stats] = make(src, FakeDetector(delay=det_delay), sink).run()
    assert sink.indices == list(range(40))
    assert sink.pixels == list(range(40)), "output frame i must be input frame i"
    assert stats.frames_processed == 40 and stats.frames_dropped == 0 and stats.frames_read == 40
    assert src.closed and sink.closed
    assert no_stage_threads()


def test_live_source_keeps_newest_frame_and_counts_drops():
    sink = RecordingSink()
    src = FakeSource(60, kind="camera", pace=0.005)
    p = make(src, FakeDetector(delay=0.03), sink, reconnect_max=0)
    [stats] = p.run()
    assert stats.frames_dropped > 10, "a slow detector on a live source must drop, not queue"
    assert stats.frames_processed + stats.frames_dropped == stats.frames_read
    assert p.lanes[0].frames.max_depth <= 2, "the live queue holds only the newest frame (+ end marker)"
    assert sink.indices == sorted(sink.indices)
    assert sink.indices[-1] == 59, "the newest frame is never the one dropped"


def test_max_frames_and_vid_stride():
    sink = RecordingSink()
    [stats] = make(FakeSource(40), sink=sink, max_frames=5, vid_stride=3).run()
    assert sink.indices == [0, 3, 6, 9, 12]
    assert stats.frames_processed == 5


@pytest.mark.parametrize("stage", ["capture", "inference", "sink"])
def test_error_in_any_stage_ends_the_run_without_hanging(stage):
    src = FakeSource(200, fail_at=20 if stage == "capture" else None)
    det = FakeDetector(fail_at=20 if stage == "inference" else None)
    sink = RecordingSink(fail_at=20 if stage == "sink" else None)
    p = make(src, det, sink)
    t = time.monotonic()
    with pytest.raises((RuntimeError, OSError), match="fake"):
        p.run()
    assert time.monotonic() - t < 10
    assert src.closed and sink.closed, "outputs are closed even when a stage fails"
    assert no_stage_threads()


def test_live_reconnect_records_the_gap():
    sink = RecordingSink()
    src = FakeSource(400, kind="stream", drop_after=10, pace=0.002)
    p = make(src, sink=sink, reconnect_max=3, max_frames=25)
    p.lanes[0].reader.backoff = (0.01, 0.02)
    [stats] = p.run()
    assert src.reopens == 1
    assert stats.gaps == 1
    assert sink.events and sink.events[0]["event"] == "gap" and sink.events[0]["after_frame"] == 9
    assert sink.events[0]["id"] and sink.events[0]["wall_time"], "stamped by the lane before any sink"
    assert sink.indices == sorted(set(sink.indices)), "no fake or repeated frames fill the gap"
    assert stats.frames_processed == 25, "live --max-frames counts processed frames, not dropped ones"


def test_live_gives_up_after_reconnect_max():
    src = FakeSource(30, kind="stream", drop_after=5, reopen_ok=False)
    p = make(src, reconnect_max=2)
    p.lanes[0].reader.backoff = (0.01, 0.02)
    with pytest.raises(StreamLost, match="could not reconnect after 2 attempts"):
        p.run()
    assert src.reopens == 2


def test_channel_blocks_for_files_and_drops_for_live():
    stop = threading.Event()
    ch: Channel[int] = Channel(2, keep_latest=True, stop=stop)
    for i in range(5):
        assert ch.put(i)
    ch.put(-1, control=True)
    assert [ch.get(), ch.get(), ch.get()] == [3, 4, -1]
    assert ch.dropped == 3
    blocking: Channel[int] = Channel(1, keep_latest=False, stop=stop)
    blocking.put(1)
    done = threading.Event()
    threading.Thread(target=lambda: (blocking.put(2), done.set()), daemon=True).start()
    assert not done.wait(0.3), "put must block while the file queue is full"
    assert blocking.get() == 1
    assert done.wait(2)
    stop.set()
    assert blocking.get() == 2
    with pytest.raises(Closed):
        blocking.get()


# -- several sources, several frames in flight, batches ---------------------------------------------


class AsyncDetector(FakeDetector):
    """Up to ``in_flight`` frames at once on worker threads that finish in a scrambled order."""

    def __init__(self, in_flight: int = 3, delay: float = 0.004) -> None:
        super().__init__()
        self.max_in_flight = in_flight
        self.delay = delay
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(0)

    def submit(self, image: np.ndarray, on_ready: Any = None) -> Any:
        done = threading.Event()
        box: list[Any] = []
        pause = float(self._rng.uniform(0, 2 * self.delay))

        def work() -> None:
            with self._lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            time.sleep(pause)
            box.append(FakeDetector.detect(self, image))
            with self._lock:
                self.running -= 1
            done.set()
            if on_ready is not None:
                on_ready()

        threading.Thread(target=work, daemon=True).start()

        class Result:
            def ready(self) -> bool:
                return done.is_set()

            def result(self) -> Any:
                done.wait()
                return box[0]

        return Result()


class BatchDetector(FakeDetector):
    def __init__(self) -> None:
        super().__init__()
        self.max_batch = 4
        self.batches: list[int] = []

    def submit_batch(self, images: list[np.ndarray]) -> list[Any]:
        self.batches.append(len(images))
        return super().submit_batch(images)


def lanes(*sources: FakeSource) -> tuple[list[Lane], list[RecordingSink]]:
    sinks = [RecordingSink() for _ in sources]
    made = [
        Lane(src, [OverlayStage()], [sink], name=f"s{k}")
        for k, (src, sink) in enumerate(zip(sources, sinks, strict=True))
    ]
    return made, sinks


def test_frames_in_flight_leave_in_order():
    det = AsyncDetector(in_flight=3)
    made, sinks = lanes(FakeSource(60), FakeSource(45))
    Pipeline(made, det).run()
    assert det.most_running >= 2, "several frames were in the model at once"
    assert sinks[0].pixels == list(range(60)) and sinks[1].pixels == list(range(45)), "each source in order"


def test_several_sources_share_the_detector_fairly():
    """Two live cameras and a file through one slow model: each camera its share, the file drops nothing."""
    det = FakeDetector(delay=0.015)
    cams = [FakeSource(150, kind="camera", pace=0.01) for _ in range(2)]
    made, sinks = lanes(*cams, FakeSource(40))
    stats = Pipeline(made, det, PipelineOptions(reconnect_max=0)).run()
    live = [s.frames_processed for s in stats[:2]]
    assert min(live) >= 0.6 * max(live), f"no camera starves: {live}"
    assert all(s.frames_dropped > 0 for s in stats[:2]), (
        "a camera too fast for the model drops its own frames"
    )
    assert sinks[2].pixels == list(range(40)) and stats[2].frames_dropped == 0, "the file keeps every frame"


def test_frames_of_several_sources_go_in_one_batch():
    det = BatchDetector()
    made, sinks = lanes(FakeSource(30), FakeSource(30), FakeSource(30))
    Pipeline(made, det).run()
    assert max(det.batches) >= 3, f"frames of the three sources went in together: {det.batches}"
    assert all(sink.pixels == list(range(30)) for sink in sinks)


def test_one_source_failing_leaves_the_others_running():
    made, sinks = lanes(FakeSource(200, fail_at=10), FakeSource(50), FakeSource(50))
    stats = Pipeline(made, FakeDetector()).run()  # several sources: a failure does not raise
    assert isinstance(made[0].error, RuntimeError) and made[0].closed and sinks[0].closed
    assert [s.frames_processed for s in stats[1:]] == [50, 50]
    assert all(sink.closed and sink.pixels == list(range(50)) for sink in sinks[1:])
    assert no_stage_threads()


def test_a_gated_live_lane_keeps_two_frames_waiting_and_an_ungated_one_the_newest():
    """Most of a gated camera's frames skip the model and leave at once, so it may keep one more frame
    waiting while model runs on other lanes hold the inference loop; an ungated camera keeps only its
    newest (latency first)."""
    gated = Lane(FakeSource(10, kind="camera"), [], [RecordingSink()], name="gated", gate=Gate(detect_fps=1))
    plain = Lane(FakeSource(10, kind="camera"), [], [RecordingSink()], name="plain")
    Pipeline([gated, plain], FakeDetector())  # built, not run: the queues only
    for lane in (gated, plain):
        for _ in range(3):
            assert lane.frames.put(lane.source.read())
    assert (len(gated.frames), gated.frames.dropped) == (2, 1)
    assert (len(plain.frames), plain.frames.dropped) == (1, 2)
