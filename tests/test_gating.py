"""Gated detection without the real model: ``--detect-fps`` through the real pipeline (the fake detector
finds the white square of ``write_clip``), the tracker stepping through frames the model skips, the
figures in ``/api/status`` and ``/metrics``, stationary tracks, and the settings' one-line errors.

The real model on real footage (motion gating on a quiet camera, live and from a file; a box on every
frame of the video with ``--detect-fps``; a parked object) is in test_motion_e2e.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FakeDetector, write_clip
from web_client import get

from detector.cli import main
from detector.errors import UserError
from detector.events import EventRecord
from detector.pipeline.capture import Item
from detector.pipeline.channel import Channel
from detector.pipeline.engine import Pipeline
from detector.pipeline.gate import Gate
from detector.pipeline.lane import Lane
from detector.settings import Settings, load_settings
from detector.settings.analytics import LineSpec
from detector.settings.motion import MotionSettings
from detector.sources import open_source
from detector.stages.build import build_stages
from detector.stages.lines import LinesStage
from detector.stages.privacy import PrivacyStage
from detector.stages.stationary import StationaryBook
from detector.stages.track import TrackStage, TrackTally
from detector.stats import RunStats
from detector.tracking import ByteTrack
from detector.types import Detections, Frame, FrameResult, Inference
from detector.web.config import ServeConfig
from detector.web.view import WebView

NAMES = {0: "person", 1: "car"}


class Collect:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.events: list[EventRecord] = []

    def write(self, result: FrameResult) -> None:
        self.results.append(result)

    def event(self, record: EventRecord) -> None:
        self.events.append(record)

    def close(self) -> None:
        pass


def frame(index: int, fps: float = 30.0, motion: bool | None = None) -> Frame:
    boxes = None if motion is None else np.array([[0, 0, 9, 9]] if motion else [], np.float32).reshape(-1, 4)
    return Frame(np.zeros((4, 4, 3), np.uint8), index, index / fps, 0.0, motion=boxes)


def runs(gate: Gate, frames: list[Frame]) -> list[int]:
    return [f.index for f in frames if gate.admit(f).inference is Inference.RAN]


# -- the gate's decisions --------------------------------------------------------------------------------


def test_detect_fps_runs_the_model_n_times_a_second_evenly() -> None:
    thirty = [frame(i) for i in range(90)]  # 3 s at 30 fps
    assert runs(Gate(detect_fps=10), thirty) == list(range(0, 90, 3))
    twelve = runs(Gate(detect_fps=12), thirty)
    assert len(twelve) == 36 and max(np.diff(twelve)) <= 3  # 12 a second, never two frames apart more
    assert runs(Gate(detect_fps=50), thirty) == list(range(90)), "a rate above the source's: every frame"


def test_a_pause_in_the_motion_is_not_followed_by_a_burst_of_runs() -> None:
    """Still from 1 s to 3 s (no runs but the rechecks, 1 s after the last run), then moving: 10 runs a
    second from the first moving frame on."""
    frames = [frame(i, 30, motion=not 30 <= i < 90) for i in range(150)]
    ran = runs(Gate(MotionSettings(recheck=1.0), detect_fps=10), frames)
    # Frame 30 runs for the motion on 28-29, which the rate held back (the last run: frame 27).
    assert [i for i in ran if 30 <= i < 90] == [30, 60]
    after = [i for i in ran if i >= 90]
    assert after[:3] == [90, 93, 96] and len(after) == 20


def test_motion_gating_runs_the_model_on_moving_frames_and_every_recheck() -> None:
    still = [frame(i, 10, motion=False) for i in range(50)]  # 5 s at 10 fps, nothing moves
    assert runs(Gate(MotionSettings(recheck=2.0)), still) == [0, 20, 40]  # the first, then every 2 s
    moving = [frame(i, 10, motion=i % 10 == 5) for i in range(30)]
    assert runs(Gate(MotionSettings(recheck=2.0)), moving) == [0, 5, 15, 25]


def test_motion_the_rate_held_back_runs_the_model_when_the_rate_allows() -> None:
    """--detect-fps 2 at 10 fps with motion gating: something moves on frame 3 only (the model last
    ran on frame 0); frame 5, the next one the rate allows, runs though nothing moves on it."""
    frames = [frame(i, 10, motion=i == 3) for i in range(30)]
    assert runs(Gate(MotionSettings(recheck=60.0), detect_fps=2), frames) == [0, 5]


def test_motion_on_a_frame_a_live_queue_drops_is_not_lost() -> None:
    """A live lane keeps only the newest frame: the dropped frame's motion boxes go on with the frame
    that replaced it, so the model runs on it though nothing moved between the two."""
    gate = Gate(MotionSettings(recheck=60.0))
    queue: Channel[Item] = Channel(1, keep_latest=True, stop=threading.Event(), merge=gate.carry)
    assert gate.admit(frame(0, 10, motion=False)).inference is Inference.RAN  # the first frame
    queue.put(frame(1, 10, motion=True))
    queue.put(frame(2, 10, motion=False))  # frame 1 is dropped
    kept = queue.get_nowait()
    assert isinstance(kept, Frame) and kept.index == 2 and queue.dropped == 1
    assert kept.motion is not None and kept.motion.tolist() == [[0, 0, 9, 9]]
    assert gate.admit(kept).inference is Inference.RAN
    queue.put(frame(3, 10, motion=False))
    queue.put(frame(4, 10, motion=False))
    assert gate.admit(queue.get_nowait()).inference is Inference.NO_MOTION


def test_time_going_back_restarts_the_gate() -> None:
    gate = Gate(MotionSettings(recheck=60.0))
    assert runs(gate, [frame(i, 10, motion=i == 15) for i in range(20)]) == [0, 15]
    assert runs(gate, [frame(i, 10, motion=False) for i in range(3)]) == [0], "a new stream: a fresh run"


# -- through the pipeline ----------------------------------------------------------------------------------


def gated_run(clip: Path, detector: FakeDetector, gate: Gate, track: bool = True) -> tuple[Collect, RunStats]:
    source = open_source(str(clip))
    stats = RunStats(source="clip")
    sink = Collect()
    stages = [TrackStage(ByteTrack(30.0))] if track else []
    lane = Lane(source, stages, [sink], name="clip", stats=stats, gate=gate)
    Pipeline(lane, detector).run()
    return sink, stats


def test_detect_fps_through_the_pipeline_every_frame_gets_a_tracked_box(tmp_path: Path) -> None:
    """90 frames at 30 fps, --detect-fps 5: the model runs on 15 of them; on the others the tracker's
    prediction carries the moving square's box on, in order and with one id."""
    clip = write_clip(tmp_path / "square.mp4", frames=90)
    detector = FakeDetector()
    sink, stats = gated_run(clip, detector, Gate(detect_fps=5))
    assert detector.calls == 15
    assert [r.frame.index for r in sink.results] == list(range(90))
    kinds = [r.frame.inference for r in sink.results]
    assert kinds.count(Inference.RAN) == 15 and kinds.count(Inference.BETWEEN) == 75
    assert (stats.frames_processed, stats.frames_detected, stats.frames_rate_skipped) == (90, 15, 75)
    boxes = [r.detections.xyxy for r in sink.results[1:]]  # the first frame: confirmed at once
    assert all(len(b) == 1 for b in boxes), "a box on every frame"
    assert {int(r.detections.tracker_id[0]) for r in sink.results[1:]} == {1}  # type: ignore[index]
    # Predicted boxes move on with the square between two runs (the fake detector's box moves 2 px
    # a frame), where holding would repeat the last one.
    between = [r for r in sink.results[6:] if r.frame.inference is Inference.BETWEEN]
    xs = [float(r.detections.xyxy[0, 0]) for r in between]
    moved = np.abs(np.diff(xs))
    assert np.median(moved) > 0.5


def test_frames_that_skip_the_model_without_tracking_carry_the_last_detections(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "square.mp4", frames=30)
    sink, _ = gated_run(clip, FakeDetector(), Gate(detect_fps=10), track=False)
    for r in sink.results:
        ran = r.frame.index - r.frame.index % 3  # the frame the model last ran on
        assert r.detections.xyxy.tolist() == sink.results[ran].detections.xyxy.tolist()


def test_status_and_metrics_give_each_sources_detected_and_skipped_frames(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "square.mp4", frames=30)
    view = WebView(ServeConfig("127.0.0.1", 0, token=None)).start()
    try:
        source = open_source(str(clip))
        stats = RunStats(source="cam")
        lane = Lane(source, [], view.add_source("cam", source.info, stats), name="cam", stats=stats,
                    gate=Gate(detect_fps=10))  # fmt: skip
        Pipeline(lane, FakeDetector()).run()
        frames = get(view.url, "/api/status").json()["sources"][0]["frames"]
        assert frames == {
            "read": 30, "processed": 30, "dropped": 0, "detected": 10, "motion_skipped": 0,
            "rate_skipped": 20,
        }  # fmt: skip
        text = get(view.url, "/metrics").body.decode()
        assert 'detector_frames_detected_total{source="cam"} 10.0' in text
        assert 'detector_frames_rate_skipped_total{source="cam"} 20.0' in text
        assert 'detector_frames_motion_skipped_total{source="cam"} 0.0' in text
    finally:
        view.close()


# -- the tracker on frames without the model ----------------------------------------------------------------


def moving_box(k: int) -> Detections:
    x = 100.0 + 5 * k
    return Detections(np.array([[x, 100, x + 40, 200]]), [0.9], [0], names=NAMES)


def test_held_tracks_stay_put_where_predicted_ones_drift() -> None:
    """Nothing moves for 10 s after a walk: still frames keep the box where it was; plain prediction
    would have carried it off by its last velocity."""
    held, predicted = ByteTrack(10.0, lost_s=1.0), ByteTrack(10.0, lost_s=1.0)
    for k in range(10):
        held.update(moving_box(k)), predicted.update(moving_box(k))
    last = float(held.predict(0).xyxy[0, 0])
    assert float(held.predict(100, still=True).xyxy[0, 0]) == pytest.approx(last, abs=0.01)
    assert float(predicted.predict(100).xyxy[0, 0]) > last + 100
    back = held.update(moving_box(9))  # the model runs again, the object where it stood
    assert back.tracker_id.tolist() == [1]  # type: ignore[union-attr]


# -- stationary objects -------------------------------------------------------------------------------------


def parked(stationary: float | None) -> tuple[list[list[int]], list[dict[str, object]], list[list[int]]]:
    """A car parked for 6 s, missed by the model for 3 s, seen again where it stood, then driven off
    across a line (10 fps). Returns each frame's ids, the events, and the stationary ids."""
    track = TrackStage(ByteTrack(10.0), StationaryBook(stationary) if stationary else None)
    tally = TrackTally(track.book, announce=[1])
    line = LinesStage([LineSpec(name="gate", start=(600, 0), end=(600, 480))], (800, 480), NAMES, track.book)
    still = Detections(np.array([[300, 200, 420, 280]]), [0.8], [1], names=NAMES)
    plan = [still] * 60 + [Detections.empty(NAMES)] * 30 + [still] * 20
    plan += [Detections(np.array([[300 + 12 * k, 200, 420 + 12 * k, 280]]), [0.8], [1], names=NAMES)
             for k in range(1, 30)]  # fmt: skip
    ids, events, still_ids = [], [], []
    for i, found in enumerate(plan):
        f = Frame(np.zeros((480, 800, 3), np.uint8), i, i / 10, 0.0)
        result = track.update(f, found)
        still_ids.append(list(result.facts.stationary or []) if result.facts else [])
        for stage in (tally, line):
            result = stage.update(f, result.detections)
            events += [e.to_dict() for e in result.events]
        ids.append(result.detections.tracker_id.tolist())  # type: ignore[union-attr]
    return ids, events, still_ids


def test_a_parked_object_found_again_keeps_its_id_and_fires_again_once_it_moves() -> None:
    ids, events, still = parked(stationary=3.0)
    assert [e["event"] for e in events] == ["track_new", "line_cross"]
    assert {t for frame_ids in ids for t in frame_ids} == {1}
    assert still[29] == [] and still[31] == [1], "stationary from 3 s on"
    assert still[-1] == [], "not once it drives off"
    # Without it, the car found again is a new track: a second track_new.
    ids, events, _ = parked(stationary=None)
    assert [e["event"] for e in events] == ["track_new", "track_new", "line_cross"]


def test_stationary_objects_are_on_by_default_for_live_sources_only() -> None:
    """A camera left alone gets the parked-car rule without a flag; a file's results stay as they were;
    ``--stationary-seconds 0`` turns it off."""

    def book(settings: Settings, live: bool) -> StationaryBook | None:
        stages = build_stages(settings, (320, 240), {0: "person"}, RunStats(), live=live, fps=10.0)
        return next(s for s in stages if isinstance(s, TrackStage)).stationary

    tracked = Settings(tracker="bytetrack")
    live_book = book(tracked, live=True)
    assert live_book is not None and live_book.seconds == 30.0
    assert book(tracked, live=False) is None
    assert book(Settings(tracker="bytetrack", stationary={"seconds": 0}), live=True) is None
    explicit = book(Settings(tracker="bytetrack", stationary={"seconds": 5}), live=False)
    assert explicit is not None and explicit.seconds == 5.0


# -- settings ------------------------------------------------------------------------------------------------


def test_motion_switch_from_a_config_merges_with_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("motion: on\n")  # YAML's on: True
    s = load_settings(config, {"motion": {"threshold": 30}}, env={})
    assert (s.motion.enabled, s.motion.threshold) == (True, 30)
    mask = "[[[0, 0], [1, 0], [1, 0.1]]]"
    config.write_text(f"motion: auto\nsources: [{{source: a.mp4, motion: {{masks: {mask}}}}}]\n")
    s = load_settings(config, {"motion": {"enabled": False}}, env={})
    assert s.motion.enabled is False and s.motion.on(live=True) is False
    assert Settings().motion.on(live=True) and not Settings().motion.on(live=False)


def test_a_sources_own_motion_keys_replace_the_top_level_ones(tmp_path: Path) -> None:
    from detector.compose.plan import plan_sources

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "motion": {"threshold": 40, "recheck": 5},
        "detect_fps": 4,
        "sources": [{"source": "a.mp4", "motion": {"recheck": 1}, "detect_fps": 2}, {"source": "b.mp4"}],
    }))  # fmt: skip
    a, b = plan_sources(load_settings(config, env={}), [])
    assert (a.settings.motion.threshold, a.settings.motion.recheck, a.settings.detect_fps) == (40, 1, 2)
    assert (b.settings.motion.threshold, b.settings.motion.recheck, b.settings.detect_fps) == (40, 5, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--motion-threshold", "0"], "--motion-threshold should be greater than or equal to 1"),
        (["--detect-fps", "0"], "--detect-fps should be greater than 0"),
        (["--motion-recheck", "-1"], "--motion-recheck should be greater than 0"),
    ],
)
def test_bad_motion_flags_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(write_clip(tmp_path / "c.mp4")), *args]) == 2
    err = capfd.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_motion_switch_in_a_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("motion: sometimes\n")
    with pytest.raises(UserError, match=r"key 'motion.enabled' should be auto, on or off"):
        load_settings(config, env={})


@pytest.fixture
def botsort() -> Iterator[object]:
    pytest.importorskip("ultralytics")
    from detector.backends.ultralytics import UltralyticsTracker

    yield UltralyticsTracker("botsort")


def test_botsort_holds_its_boxes_on_frames_without_the_model(botsort: object) -> None:
    """Ultralytics' trackers cannot step through a frame without detections: they hold."""
    image = np.zeros((300, 400, 3), np.uint8)
    for k in range(3):
        out = botsort.update(moving_box(k), image)  # type: ignore[attr-defined]
    held = botsort.predict(1)  # type: ignore[attr-defined]
    assert held.xyxy.tolist() == out.xyxy.tolist() and held.tracker_id.tolist() == out.tracker_id.tolist()


def test_privacy_covers_a_person_where_the_tracker_carried_them_between_two_runs() -> None:
    """On a frame the model skipped, the person's last detection (where they were) and their tracked
    box (where they are now) are both blurred; on a frame it ran on, only what it found."""
    image = np.random.default_rng(3).integers(0, 255, (300, 400, 3), np.uint8)
    was = Detections(np.array([[40, 50, 100, 150]]), [0.9], [0], names=NAMES)
    now = Detections(np.array([[220, 50, 280, 150]]), [0.9], [0], tracker_id=[1], names=NAMES)

    def detail(kind: Inference) -> tuple[float, float]:
        stage = PrivacyStage([0], None, [], (400, 300))
        stage.update(Frame(image, 1, 0.1, 0.0, inference=kind), was)
        out = stage.annotate(image.copy(), now)
        return float(out[60:140, 50:90].std()), float(out[60:140, 230:270].std())

    sharp = float(image.std())
    between, ran = detail(Inference.BETWEEN), detail(Inference.RAN)
    assert max(between) < sharp / 3, "both places covered"
    assert ran[0] < sharp / 3 and ran[1] == pytest.approx(float(image[60:140, 230:270].std()))
