"""The web view's server on real loopback sockets, fed by the test (or by a real pipeline with the
fake detector): paths and token, MJPEG fan-out, the viewer cap, SSE records, metrics and health.

Runtime: ~15 s. The real model, live streams and a real browser are in test_web_live.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeDetector
from prometheus_client.parser import text_string_to_metric_families
from web_client import EventReader, Viewer, get, wait_for

from detector.cli import main
from detector.errors import UserError
from detector.events import Gap, LineCross
from detector.pipeline.engine import Pipeline
from detector.pipeline.lane import Lane
from detector.settings import Settings
from detector.sinks.jsonl import frame_record
from detector.sources import open_source
from detector.sources.base import SourceInfo
from detector.stages.overlay import OverlayStage
from detector.stats import RunStats
from detector.types import Detections, Frame, FrameResult, Sink
from detector.web.config import TOKEN_ENV, ServeConfig, serve_config
from detector.web.feeds import Phase
from detector.web.view import WebView

NAMES = {0: "person", 1: "car"}
TRAVERSALS = [
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/..%2f..%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/app.js/../../../etc/passwd",
    "/static/../../etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
    "/index.html",
    "/detector/web/static/app.js",
    "/web/static/",
    "/..%5c..%5cetc%5cpasswd",
    "/%c0%ae%c0%ae/etc/passwd",
]


@pytest.fixture
def serve() -> Iterator[Callable[..., WebView]]:
    views: list[WebView] = []

    def start(**kw: Any) -> WebView:
        view = WebView(ServeConfig("127.0.0.1", 0, **{"token": None, **kw})).start()
        views.append(view)
        return view

    yield start
    for view in views:
        view.close()


def add_camera(view: WebView, name: str = "cam", size: tuple[int, int] = (640, 360)) -> tuple[Sink, RunStats]:
    stats = RunStats(source=name)
    info = SourceInfo(name, "stream", size[0], size[1], Fraction(30))
    (sink,) = view.add_source(name, info, stats)
    return sink, stats


def shade(index: int) -> int:
    return (index * 37) % 200 + 30


def result(
    index: int, size: tuple[int, int] = (640, 360), noise: bool = False, boxes: int = 0
) -> FrameResult:
    w, h = size
    if noise:
        image = np.random.default_rng(index).integers(0, 255, (h, w, 3), dtype=np.uint8)
    else:
        image = np.full((h, w, 3), shade(index), np.uint8)
    detections = Detections(
        xyxy=np.array([[10 + i, 20, 110 + i, 220] for i in range(boxes)], np.float32).reshape(-1, 4),
        confidence=np.full(boxes, 0.9, np.float32),
        class_id=np.zeros(boxes, np.int64),
        names=NAMES,
    )
    frame = Frame(image, index, index / 30, time.monotonic())
    return FrameResult(frame, detections, image, 12.5, source="cam")


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` parsed by prometheus_client: ``{"name{label=value,...}": value}``."""
    reply = get(url, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def viewers(url: str) -> dict[str, int]:
    return get(url, "/api/status").json()["viewers"]  # type: ignore[no-any-return]


# -- what is served, and to whom ---------------------------------------------------------------------------
def test_only_the_page_and_its_assets_are_served_every_other_path_404(serve: Callable[..., WebView]) -> None:
    url = serve().url
    page = get(url, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b'src="/app.js"' in page.body and b'href="/style.css"' in page.body
    assert get(url, "/app.js").headers["content-type"].startswith("text/javascript")
    assert get(url, "/style.css").status == 200
    for path in TRAVERSALS:
        reply = get(url, path)
        assert reply.status == 404, f"{path}: {reply.status}"
        assert b"root:" not in reply.body
    for path in ("/", "/app.js", "/api/status", "/healthz", "/metrics", "/nope", *TRAVERSALS[:2]):
        headers = get(url, path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["cache-control"] == "no-store", path


def test_without_a_token_only_requests_for_this_machine_are_answered(serve: Callable[..., WebView]) -> None:
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 must not read the stream."""
    url = serve().url
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1"):
        assert get(url, "/api/status", {"Host": host}).status == 403, host
    for host in ("127.0.0.1:8080", "localhost:1234", "localhost", "[::1]:8080", "127.0.0.2"):
        assert get(url, "/api/status", {"Host": host}).status == 200, host


def test_a_token_guards_every_request(serve: Callable[..., WebView]) -> None:
    token = "s3cret-token_with/odd+chars"
    view = serve(token=token)
    sink, _ = add_camera(view)
    sink.write(result(0))
    url = view.url
    from urllib.parse import quote

    q = quote(token, safe="")
    for path in ("/", "/app.js", "/api/status", "/metrics", "/healthz", "/snapshot.jpg", "/events", "/nope"):
        assert get(url, path).status == 401, path
        assert get(url, path, {"Authorization": "Bearer wrong"}).status == 401, path
        assert get(url, path, {"Authorization": f"Bearer {token}x"}).status == 401, path
        assert get(url, f"{path}?token={q[:-1]}").status == 401, path
    assert get(url, "/api/status", {"Authorization": f"Bearer {token}"}).status == 200
    assert get(url, f"/api/status?token={q}").status == 200
    assert get(url, f"/snapshot.jpg?token={q}").status == 200
    page = get(url, f"/?token={q}")
    assert page.status == 200
    assert f'src="/app.js?token={q}"'.encode() in page.body, "the page's own assets carry the token"
    assert get(url, f"/app.js?token={q}").status == 200
    for path in TRAVERSALS[:4]:
        assert get(url, path, {"Authorization": f"Bearer {token}"}).status == 404


def test_non_loopback_without_a_token_exits_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sample_clip: Path
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    out = tmp_path / "out.mp4"
    code = main(["run", str(sample_clip), "--serve", "0.0.0.0:0", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--serve-token" in err and TOKEN_ENV in err, err
    assert not out.exists(), "nothing ran"
    # The token may come from the environment; a loopback address needs none.
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    config = serve_config(Settings.model_validate({"serve": {"bind": "0.0.0.0:8080"}}))
    assert config is not None and config.token == "from-env" and config.host == "0.0.0.0"
    monkeypatch.delenv(TOKEN_ENV)
    for bind, host in (("8080", "127.0.0.1"), ("localhost:8080", "localhost"), ("[::1]:0", "::1")):
        config = serve_config(Settings.model_validate({"serve": {"bind": bind}}))
        assert config is not None and config.host == host and config.token is None
    with pytest.raises(UserError, match="token"):
        serve_config(Settings.model_validate({"serve": {"bind": "[::]:8080"}}))


@pytest.mark.parametrize("bind", ["http://x:80", "1.2.3.4:", "70000", "::1:80", ":8080"])
def test_bad_addresses_are_one_line_errors(
    bind: str, capsys: pytest.CaptureFixture[str], sample_clip: Path
) -> None:
    assert main(["run", str(sample_clip), "--serve", bind]) == 2
    err = capsys.readouterr().err
    assert err.startswith("detector: error: --serve") and err.count("\n") == 1, err


def test_a_taken_port_exits_2_naming_it(
    serve: Callable[..., WebView], capsys: pytest.CaptureFixture[str], sample_clip: Path
) -> None:
    taken = serve().url.rstrip("/").rsplit(":", 1)[1]
    assert main(["run", str(sample_clip), "--serve", taken]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("detector: error:")]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{taken}" in errors[0], err
    assert "Traceback" not in err


# -- the video ----------------------------------------------------------------------------------------------
def test_each_frame_is_encoded_once_for_all_viewers_and_only_while_watched(
    serve: Callable[..., WebView],
) -> None:
    view = serve()
    sink, _ = add_camera(view)
    url = view.url
    for i in range(20):  # nobody watches: nothing is encoded
        sink.write(result(i))
    assert metrics(url)["detector_jpeg_encodes_total{}"] == 0
    watchers = [Viewer(url, keep_jpegs=True).start() for _ in range(3)]
    wait_for("3 viewers", lambda: viewers(url)["video"] == 3)
    last = 119
    for i in range(20, last + 1):
        sink.write(result(i))
        time.sleep(0.005)
    wait_for("the last frame at every viewer", lambda: all(last in v.frames for v in watchers))
    encodes = metrics(url)["detector_jpeg_encodes_total{}"]
    for v in watchers:
        v.close()
        assert v.status == 200 and v.error is None, v.error
        assert v.frames == sorted(set(v.frames)), "frames out of order or repeated"
        assert v.frames[0] >= 19, "a new viewer starts at the newest frame"
        # What arrives is that frame: the JPEG shows its shade.
        assert abs(float(v.parts[-1].image().mean()) - shade(last)) < 3
    distinct = len(set().union(*(v.frames for v in watchers)))
    assert encodes == distinct, f"{encodes} encodes for {distinct} distinct frames sent to 3 viewers"


def test_wide_frames_are_scaled_to_serve_width(serve: Callable[..., WebView]) -> None:
    view = serve(width=800)
    sink, _ = add_camera(view, size=(1920, 1080))
    sink.write(result(0, size=(1920, 1080)))
    viewer = Viewer(view.url, keep_jpegs=True).start()
    wait_for("a frame", lambda: viewer.parts)
    viewer.close()
    assert viewer.parts[0].image().shape == (450, 800, 3)
    snap = get(view.url, "/snapshot.jpg")
    assert snap.status == 200 and snap.headers["content-type"] == "image/jpeg"
    assert snap.headers["x-frame"] == "0"


def test_slow_and_stuck_viewers_never_hold_up_the_pipeline_or_other_viewers(
    serve: Callable[..., WebView], caplog: pytest.LogCaptureFixture
) -> None:
    """1080p noise (JPEGs of ~1 MB) to 3 viewers that never read, 3 that read 4 KB/s and one at full
    rate: every write returns, the full-rate viewer sees the newest frames, and close() is prompt."""
    view = serve(width=1920)
    sink, _ = add_camera(view, size=(1920, 1080))
    url = view.url
    sink.write(result(0, (1920, 1080), noise=True))
    stuck = [Viewer(url, stuck=True).start() for _ in range(3)]
    slow = [Viewer(url, rate=4000).start() for _ in range(3)]
    fast = Viewer(url).start()
    wait_for("7 viewers", lambda: viewers(url)["video"] == 7)
    frames = [result(i, (1920, 1080), noise=True) for i in range(1, 8)]
    done = threading.Event()
    written: list[int] = []

    def pipeline() -> None:
        for i in range(1, 151):
            image = frames[i % len(frames)].annotated
            frame = Frame(image, i, i / 30, time.monotonic())
            sink.write(FrameResult(frame, Detections.empty(NAMES), image, 5.0))
            written.append(i)
            time.sleep(1 / 60)
        done.set()

    thread = threading.Thread(target=pipeline, daemon=True)
    thread.start()
    thread.join(60)
    assert done.is_set(), f"the pipeline was held up after {len(written)} frames"
    wait_for("the last frame at the full-rate viewer", lambda: 150 in fast.frames)
    assert len(fast.frames) >= 10, fast.frames
    for v in slow:
        assert v.error is None and len(v.frames) <= 2, "a 4 KB/s viewer cannot take more than a frame or two"
    assert all(v.connected.is_set() and v.error is None for v in stuck)
    started = time.monotonic()
    view.close()
    closing = time.monotonic() - started
    for v in (*stuck, *slow, fast):
        v.close()
    assert closing < 5, f"close() took {closing:.1f} s with stuck viewers"
    # The stuck streams were cut off, not cancelled mid-send (which uvicorn reports with a traceback).
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, errors


def test_viewers_are_capped_and_a_freed_slot_is_given_again(serve: Callable[..., WebView]) -> None:
    view = serve(max_viewers=2)
    sink, _ = add_camera(view)
    sink.write(result(0))
    url = view.url
    first, second = Viewer(url).start(), Viewer(url).start()
    wait_for("2 viewers", lambda: viewers(url)["video"] == 2)
    third = Viewer(url).start()
    third.connected.wait(10)
    third.close()
    assert third.status == 503
    refused = get(url, "/stream.mjpg")
    assert refused.status == 503 and refused.headers["retry-after"] and b"--serve-max-viewers" in refused.body
    first.close()
    wait_for("the slot given back", lambda: viewers(url)["video"] == 1)
    fourth = Viewer(url).start()
    wait_for("the new viewer's first frame", lambda: fourth.parts)
    assert fourth.status == 200
    # Event streams have a cap of their own.
    streams = [EventReader(url).start() for _ in range(2)]
    wait_for("2 event streams", lambda: viewers(url)["events"] == 2)
    assert get(url, "/events").status == 503
    for v in (second, fourth, *streams):
        v.close()


def test_a_viewer_before_the_source_waits_and_an_unknown_source_is_404(serve: Callable[..., WebView]) -> None:
    view = serve()
    url = view.url
    assert get(url, "/snapshot.jpg").status == 503
    early = Viewer(url).start()  # while the model loads: the stream opens and waits
    wait_for("the early viewer", lambda: viewers(url)["video"] == 1)
    sink, _ = add_camera(view, "door")
    assert get(url, "/snapshot.jpg?source=door").status == 503  # no frame yet
    sink.write(result(7))
    wait_for("the first frame at the early viewer", lambda: early.frames == [7])
    early.close()
    for path in ("/stream.mjpg?source=hall", "/snapshot.jpg?source=hall"):
        reply = get(url, path)
        assert reply.status == 404 and b"there are: door" in reply.body, path
    assert get(url, "/events?source=hall").status == 404


# -- events, status, metrics, health -------------------------------------------------------------------------
def test_events_stream_the_jsonl_records_in_order(serve: Callable[..., WebView]) -> None:
    view = serve()
    sink, _ = add_camera(view)
    reader = EventReader(view.url).start()
    wait_for("the event stream", lambda: viewers(view.url)["events"] == 1)
    sent: list[FrameResult] = [result(i, boxes=i % 3) for i in range(5)]
    gap = Gap(after_frame=2, from_pts=0.067, to_pts=1.2, seconds=1.1, attempts=1, id="a", source="door")
    cross = LineCross(line="door", track_id=3, class_name="person", direction="in", id="b", source="door")
    for r in sent[:3]:
        sink.write(r)
    sink.event(gap)
    for r in sent[3:]:
        sink.write(r)
    sink.event(cross)
    wait_for("7 records", lambda: len(reader.records) >= 7)
    reader.close()
    import json

    expected = [json.loads(json.dumps(frame_record(r))) for r in sent]
    assert reader.records == [*expected[:3], gap.to_dict(), *expected[3:], cross.to_dict()]
    status = get(view.url, "/api/status").json()
    assert [e["event"] for e in status["sources"][0]["events"]] == ["gap", "line_cross"]


def test_status_follows_the_run_from_loading_to_finished(serve: Callable[..., WebView]) -> None:
    view = serve()
    url = view.url
    view.set_phase(Phase.LOADING)
    assert get(url, "/api/status").json()["phase"] == "loading the model"
    sink, stats = add_camera(view)
    view.set_model("yolo.xml", "openvino")
    status = get(url, "/api/status").json()
    assert status["sources"][0]["phase"] == "connecting" and status["model"] == "yolo.xml"
    for i in range(3):
        r = result(i, boxes=2)
        sink.write(r)
        stats.count_frame(r.detections.counts(), 40.0, 0.0)
    stats.reconnecting = True
    status = get(url, "/api/status").json()
    src = status["sources"][0]
    assert src["phase"] == "reconnecting" and src["frames"]["processed"] == 3 == status["frames"]
    assert src["counts"] == {"person": 2} and src["latency_ms"]["p50"] == 40.0
    assert set(status) >= {"model", "backend", "fps", "frames", "dropped", "latency_ms", "counts", "uptime_s"}
    stats.reconnecting = False
    sink.close()
    assert get(url, "/api/status").json()["sources"][0]["phase"] == "finished"


def test_health_is_503_once_frames_stall_longer_than_the_stall_timeout(serve: Callable[..., WebView]) -> None:
    view = serve(stall_timeout=0.5)
    url = view.url
    assert get(url, "/healthz").status == 200  # starting: loading a model is no stall
    sink, _ = add_camera(view)
    sink.write(result(0))
    assert get(url, "/healthz").status == 200
    wait_for("503 after the stall timeout", lambda: get(url, "/healthz").status == 503)
    body = get(url, "/healthz").json()
    assert body["status"] == "stalled" and body["stalled_s"]["cam"] >= 0.5
    assert metrics(url)["detector_source_up{source=cam}"] == 0
    sink.write(result(1))
    assert get(url, "/healthz").status == 200
    sink.close()
    assert get(url, "/healthz").json() == {"status": "finished"}


def test_metrics_of_a_real_pipeline_parse_and_add_up(serve: Callable[..., WebView], tiny_clip: Path) -> None:
    """The fake detector (one box a frame) on a 30-frame clip through the real pipeline and stages."""
    view = serve()
    source = open_source(str(tiny_clip))
    stats = RunStats(source="tiny")
    stages = [OverlayStage()]
    lane = Lane(source, stages, view.add_source("tiny", source.info, stats, stages), name="tiny", stats=stats)
    Pipeline(lane, FakeDetector()).run()
    m = metrics(view.url)
    assert m["detector_frames_processed_total{source=tiny}"] == 30
    assert m["detector_frames_read_total{source=tiny}"] == 30
    assert m["detector_frames_dropped_total{source=tiny}"] == 0
    assert m["detector_reconnects_total{source=tiny}"] == 0
    assert m["detector_detections_total{class=person,source=tiny}"] == 30
    assert m["detector_inference_seconds_count{source=tiny}"] == 30
    assert m["detector_latency_seconds_count{source=tiny}"] == 30
    assert m["detector_latency_seconds_bucket{le=+Inf,source=tiny}"] == 30
    assert 0 < m["detector_latency_seconds_sum{source=tiny}"] == pytest.approx(stats.latency.total / 1000)
    assert m["detector_viewers{kind=video}"] == 0 and m["detector_uptime_seconds{}"] > 0


def test_batch_runs_never_serve(tmp_path: Path) -> None:
    """A config's serve.bind is for ``detector run``; batch workers would all take the same port."""
    from detector.batch.jobs import Job

    base = Settings.model_validate({"serve": {"bind": "8080", "token": "t"}})
    job = Job(tmp_path / "a.mp4", "a", tmp_path / "a.out.mp4", tmp_path / "a.jsonl")
    assert serve_config(job.settings(base)) is None
