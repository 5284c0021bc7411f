"""Composition of one ``detector run`` over one or several sources: check the outputs, load the model
once, open every source, build each source's stages and sinks, run the pipeline, and report. A failed
start leaves no half-made outputs; a source that fails during the run does not stop the others.

Exit codes: 0 every source ended normally; 2 a source cannot be opened (nothing runs); 3 some
source failed during the run (the others' outputs are complete).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.backends import Detector, load_detector
from detector.errors import SourceError, SourcesFailed, UserError
from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.pipeline.lane import Lane
from detector.progress import Progress, ProgressBoard
from detector.report import build_report, part_reports, write_report
from detector.settings import Settings
from detector.signals import interrupts
from detector.sinks.audio import audio_codec
from detector.sinks.base import Sink
from detector.sinks.clips import EventLog
from detector.sinks.events import event_sinks, packet_outputs
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.paths import check_outputs
from detector.sinks.shared import shared_handles
from detector.sinks.tables import CsvSink, MotSink
from detector.sinks.video import VideoWriterSink
from detector.sinks.window import Window, display_available
from detector.sources import Source, SourceInfo, check_url, is_live_spec, open_source
from detector.sources.naming import source_name, unique_names
from detector.sources.opening import open_together
from detector.stages.base import Stage
from detector.stages.build import build_stages
from detector.stages.overlay import OverlayStage
from detector.stats import RunStats
from detector.web.feeds import Phase
from detector.web.view import WebView, web_view

log = logging.getLogger(__name__)

IN_FLIGHT = (
    2  # frames in the model at once: OpenVINO's throughput mode keeps both cores of a 2-core machine busy
)


@dataclass
class SourcePlan:
    """One source of the run: its name (``{name}``), spec, and settings (its own lines and zones)."""

    name: str
    spec: str
    settings: Settings


def plan_sources(settings: Settings, specs: list[str]) -> list[SourcePlan]:
    """The sources to run: SOURCE arguments, else the config's ``sources:``; names made unique."""
    if specs:
        entries = [(source_name(s), s.strip(), settings) for s in specs]
    elif settings.sources:
        entries = []
        for src in settings.sources:
            own: dict[str, Any] = {"lines": src.lines if src.lines is not None else settings.lines}
            own["zones"] = src.zones if src.zones is not None else settings.zones
            entries.append(
                (src.name or source_name(src.source), src.source.strip(), settings.model_copy(update=own))
            )
    else:
        raise UserError(
            "no SOURCE given: pass a camera index, video file, URL or folder, or list `sources:` in a config"
        )
    names = unique_names([name for name, _, _ in entries])
    return [SourcePlan(name, spec, s) for name, (_, spec, s) in zip(names, entries, strict=True)]


def decide_show(settings: Settings, live_camera: bool) -> bool:
    """Window on by default for cameras when a display exists; ``--show`` without one is an error."""
    has_display = display_available()
    if settings.show is True and not has_display:
        raise UserError(
            "--show needs a display (no DISPLAY/WAYLAND_DISPLAY, or OpenCV without GUI); drop --show"
        )
    if settings.show is None:
        if live_camera and not has_display:
            log.info("no display found; running without a window")
        return live_camera and has_display
    return settings.show


def _audio_source(spec: str, kind: str, wanted: bool) -> Path | None:
    if not wanted or kind != "file" or "://" in spec:  # a recorded stream (HLS VOD): video only
        return None
    codec = audio_codec(spec)
    if codec:
        log.info("keeping the %s audio of %s", codec, spec)
    return Path(spec) if codec else None


def build_sinks(
    settings: Settings,
    paths: dict[str, Path],
    info: SourceInfo,
    spec: str,
    stages: Sequence[Stage] = (),
    *,
    with_source: bool = False,
    clip_log: EventLog | None = None,
) -> list[Sink]:
    """One source's file sinks in the order they write: the video first (its clip recorder adds
    ``clip`` and ``snapshot`` to event records before the others see them), JSON lines, tables, then
    the heatmap and report pages. ``clip_log``: the clips folder several sources share."""
    sinks: list[Sink] = []
    clips = packet_outputs(settings, paths, info, clip_log) if clip_log or "clips" in paths else []
    if "output" in paths or clips:
        sinks.append(
            VideoWriterSink.from_settings(
                settings.encoder,
                paths.get("output"),
                Fraction(info.fps) / settings.vid_stride,
                live=info.live,
                source_times=info.kind == "file" and settings.vid_stride == 1,
                audio_from=_audio_source(spec, info.kind, settings.audio) if "output" in paths else None,
                outputs=clips,
            )
        )
    if "json_path" in paths or (settings.json_path == "-" and not with_source):
        sinks.append(
            JsonLinesSink(paths.get("json_path", "-"), overwrite=settings.overwrite, with_source=with_source)
        )
    if "csv" in paths:
        sinks.append(CsvSink(paths["csv"], overwrite=settings.overwrite))
    if "mot" in paths:
        sinks.append(MotSink(paths["mot"], overwrite=settings.overwrite))
    return sinks + event_sinks(settings, paths, stages)


def _progress(board: ProgressBoard, settings: Settings, name: str, info: SourceInfo) -> Progress | None:
    if info.live or settings.json_path == "-":
        return None
    total = info.frame_count
    if total and settings.vid_stride > 1:
        total = -(-total // settings.vid_stride)
    if settings.max_frames:
        total = min(total or settings.max_frames, settings.max_frames)
    return board.task(name, total)


class Run:
    """One ``detector run``. ``reports`` holds each source's run report once it processed frames, also
    when the run ends with an error or a signal (the CLI prints their summaries)."""

    def __init__(
        self,
        settings: Settings,
        sources: list[str] | None = None,
        *,
        started_at: float | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.settings = settings
        self.plans = plan_sources(settings, list(sources or []))
        self.started_at = time.monotonic() if started_at is None else started_at
        self.detector = detector  # an already-loaded model (``detector batch`` workers)
        self.reports: list[dict[str, Any]] = []
        self.lanes: list[Lane] = []
        self._quit = threading.Event()  # the window's q
        self.web: WebView | None = None

    @property
    def stats(self) -> RunStats | None:
        """The first source's stats (for one source: the run's)."""
        return self.lanes[0].stats if self.lanes else None

    def execute(self) -> list[RunStats]:
        self.web = web_view(self.settings)  # --serve: up first, so the page shows the model loading
        try:
            return self._execute(self.web)
        finally:
            self.web.close()

    def _execute(self, web: WebView) -> list[RunStats]:
        settings, plans = self.settings, self.plans
        several = len(plans) > 1
        outputs, shared = check_outputs(
            settings.output_paths(), settings.overwrite, [(p.name, p.spec) for p in plans]
        )
        for plan in plans:
            if "://" in plan.spec:
                check_url(plan.spec)
        if self.detector is None and any(is_live_spec(p.spec) for p in plans):
            # Live: load the model first, so no frames pile up (and get dropped) while it loads.
            web.set_phase(Phase.LOADING)
            self.detector = load_detector(settings, requests=IN_FLIGHT)
        web.set_phase(Phase.CONNECTING)
        sources: list[Source] = []
        created: list[Path] = [p for paths in outputs for k, p in paths.items() if k != "report"]
        created += [Path(v) for k, v in shared.items() if k == "json_path" and v != "-"]
        try:
            sources.extend(self._open_all())
            if self.detector is None:
                web.set_phase(Phase.LOADING)
                self.detector = load_detector(settings, requests=IN_FLIGHT)
            web.set_model(self.detector.model_path, self.detector.backend)
            log.info("model %s (%s backend)", self.detector.model_path, self.detector.backend)
            self._build_lanes(sources, outputs, shared, web)
            options = PipelineOptions(
                max_frames=settings.max_frames,
                vid_stride=settings.vid_stride,
                queue_size=settings.queue_size,
                reconnect_max=settings.reconnect_max,
                started_at=self.started_at,
                stop=(self._quit, interrupts().stop),
            )
            with interrupts().deferred():
                Pipeline(self.lanes, self.detector, options).run()
            self._check_decoded(several)
            for lane, paths in zip(self.lanes, outputs, strict=True):
                lane.stats.outputs = [str(p) for k, p in paths.items() if k != "report"]
            interrupts().raise_if_requested()
            failed = [lane for lane in self.lanes if lane.error is not None]
            if failed:
                why = "; ".join(f"{lane.name}: {lane.error}" for lane in failed)
                raise SourcesFailed(f"{len(failed)} of {len(self.lanes)} sources failed: {why}")
            return [lane.stats for lane in self.lanes]
        except BaseException:
            for lane in self.lanes:  # built but never run (a later lane failed to build): close its sinks
                lane.close()
            if not any(lane.stats.frames_processed for lane in self.lanes):
                for p in created:  # a failed start leaves nothing half-made behind
                    if not p.is_dir():  # --clips names a folder (made only at the first event)
                        p.unlink(missing_ok=True)
            raise
        finally:
            for source in sources:
                if not any(lane.source is source for lane in self.lanes):
                    source.close()  # opened, but the run never got to it
            self._report(outputs)

    def _open_all(self) -> list[Source]:
        """Open every source, at the same time (a stream buffers from the moment it connects, so one
        opened long before the run starts would begin with a burst of stale frames), each on its own
        thread, so a Ctrl-C during a connect ends the run at once. If one cannot be opened, the others
        are closed and its error is raised."""
        return open_together([(plan.name, functools.partial(self._open, plan)) for plan in self.plans])

    def _open(self, plan: SourcePlan) -> Source:
        s = plan.settings
        source = open_source(
            plan.spec,
            image_fps=s.image_fps,
            connect_timeout=s.connect_timeout,
            read_timeout=s.stall_timeout,
            camera_size=s.camera_size,
            camera_fps=s.camera_fps,
        )
        info = source.info
        log.info(
            "source %s (%s): %s %dx%d @ %.3g fps%s",
            *(plan.name, info.kind, info.name, info.width, info.height, float(info.fps)),
            f", ~{info.frame_count} frames" if info.frame_count else "",
        )
        return source

    def _build_lanes(
        self, sources: list[Source], outputs: list[dict[str, Path]], shared: dict[str, str], web: WebView
    ) -> None:
        settings, plans, detector = self.settings, self.plans, self.detector
        assert detector is not None
        several = len(plans) > 1
        # Every source's stages first: they check the class names, before any output file exists.
        built = []
        for plan, source in zip(plans, sources, strict=True):
            info = source.info
            stats = RunStats(source=info.name, backend=detector.backend)
            size = (info.width, info.height)
            built.append((stats, build_stages(plan.settings, size, detector.names, stats, live=info.live)))
        window = None
        if decide_show(settings, any(s.info.kind == "camera" for s in sources)):
            video = outputs[0].get("output")
            window = Window(
                sources[0].info.name if not several else f"{len(plans)} sources",
                [p.name for p in plans],
                snapshot_dir=video.parent if video is not None else Path.cwd(),
                on_toggle_panel=self._toggle_panels,
                on_pause=lambda paused: None if paused else self._reset_fps(),
                on_quit=self._quit.set,
            )
        json_handles = []
        clip_log = EventLog(Path(shared["clips"]), settings.overwrite) if "clips" in shared else None
        if "json_path" in shared:
            one = JsonLinesSink(shared["json_path"], overwrite=settings.overwrite, with_source=True)
            json_handles = shared_handles(one, len(plans))
        board = ProgressBoard(interval=settings.log_interval)
        for k, (plan, source, paths, (stats, stages)) in enumerate(
            zip(plans, sources, outputs, built, strict=True)
        ):
            info = source.info
            sinks = build_sinks(
                plan.settings, paths, info, plan.spec, stages, with_source=several, clip_log=clip_log
            )
            if json_handles:
                sinks.insert(0, json_handles[k])
            sinks += web.add_source(plan.name, info, stats, stages)
            if window is not None:
                sinks.append(window.tile(plan.name))
            progress = _progress(board, plan.settings, plan.name if several else Path(info.name).name, info)
            self.lanes.append(
                Lane(
                    source, stages, sinks, name=plan.name, stats=stats, progress=progress, tag_events=several
                )
            )

    def _toggle_panels(self) -> None:
        for lane in self.lanes:
            for stage in lane.stages:
                if isinstance(stage, OverlayStage):
                    stage.toggle_panel()

    def _reset_fps(self) -> None:
        for lane in self.lanes:
            lane.stats.fps_meter.reset()

    def _check_decoded(self, several: bool) -> None:
        """A source that gave no frame failed; a file far shorter than its header says gets a warning."""
        for lane in self.lanes:
            stats, info = lane.stats, lane.source.info
            if stats.frames_read == 0 and lane.error is None:
                lane.error = SourceError(
                    f"input {info.name} gave no frames that decode (truncated or corrupt?)"
                )
                if not several:
                    raise lane.error
            declared = info.frame_count or 0
            short = stats.frames_read < declared - max(2, declared // 100)
            if info.kind == "file" and not self.settings.max_frames and stats.frames_read and short:
                log.warning(
                    "%s ended after %d of the %d frames its header declares (truncated?)",
                    *(info.name, stats.frames_read, declared),
                )

    def _report(self, outputs: list[dict[str, Path]]) -> None:
        detector = self.detector
        for lane, paths in zip(self.lanes, outputs, strict=False):
            if not lane.stats.frames_processed:
                continue
            report = build_report(
                lane.stats,
                lane.source.info,
                detector.model_path if detector else "",
                detector.backend if detector else "",
                part_reports(lane.stages, lane.sinks),
                [str(p) for k, p in paths.items() if k != "report"],
            )
            if len(self.lanes) > 1:
                report["name"] = lane.name
            self.reports.append(report)
            if "report" in paths:
                write_report(paths["report"], report)


def run(source_spec: str, settings: Settings, *, detector: Detector | None = None) -> RunStats:
    """Run one source through the pipeline (for tests and scripts)."""
    return Run(settings, [source_spec], detector=detector).execute()[0]
