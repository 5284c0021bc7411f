"""Composition of one ``detector run`` over one or several sources: check the outputs, load the model
once, open every source, build each source's stages and sinks, run the pipeline, and report. A failed
start leaves no half-made outputs; a source that fails during the run does not stop the others.

Exit codes: 0 every source ended normally; 2 a source cannot be opened (nothing runs); 3 some
source failed during the run (the others' outputs are complete); 4 the run ended, but some output is
incomplete: a write failed for want of storage (the output kept what it had, the others went on).

Recording (``--record``) and retention (``retain:``) are the run's ``storage.setup.Storage``; every
finished clip, snapshot and segment is told to the run's ``catalogs``, which retention, the
recordings' ``segments.jsonl`` and each clips folder's ``events.jsonl`` are part of.

A failed start removes only what this run made (``files.Preexisting``): an old output, replaced with
``--overwrite``, stays as it was, since no file is opened before the first frame; a device is never
touched. When a run fails, its first error is the one reported; a report that cannot be written then
is logged, not raised over it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from detector.backends import Detector, load_detector
from detector.catalog import Catalogs
from detector.compose.build import LaneInfo, Shared, Watchers, build_sinks, store_path
from detector.compose.outlets import Outlets
from detector.compose.plan import SourcePlan, plan_sources
from detector.errors import OutputsIncomplete, SourceError, SourcesFailed, UserError
from detector.files import Preexisting
from detector.media.audio import audio_codec
from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.pipeline.gate import gate_for
from detector.pipeline.lane import Lane
from detector.progress import Progress, ProgressBoard
from detector.report import build_report, write_report
from detector.settings import Settings
from detector.signals import interrupts
from detector.sinks.paths import check_outputs
from detector.sinks.window import Window, display_available
from detector.sources import Source, SourceInfo, check_url, is_live_spec, open_source
from detector.sources.open_together import open_together
from detector.stages.build import build_stages
from detector.stages.heatmap import HeatmapStage
from detector.stages.overlay import OverlayStage
from detector.stats import RunStats
from detector.storage.setup import Storage
from detector.types import FileOutput, part_reports
from detector.web.feeds import Phase
from detector.web.view import WebView, web_view

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # frames in the model at once, live or not: OpenVINO's throughput mode keeps 2 cores busy


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


def _files(outputs: list[dict[str, Path]], shared: dict[str, str]) -> list[Path]:
    """Every output path of the run: each source's own, then the shared ones (not stdout)."""
    own = [p for paths in outputs for p in paths.values()]
    return own + [Path(v).expanduser() for v in shared.values() if v != "-"]


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
        self.outlets = Outlets()  # MQTT and notifications (none until ``execute`` opens them)
        self.shared: Shared | None = None  # what the sources write together (made with the lanes)
        self.catalogs = Catalogs()  # told of every finished clip, snapshot and segment
        self.storage = Storage(settings, self.catalogs)

    @property
    def stats(self) -> RunStats | None:
        """The first source's stats (for one source: the run's)."""
        return self.lanes[0].stats if self.lanes else None

    def execute(self) -> list[RunStats]:
        self.web = web_view(self.settings)  # --serve: up first, so the page shows the model loading
        try:
            self.outlets = Outlets.open(self.settings)  # a broker that refuses us: exit 2 here
            self.web.board.counters.append(self.outlets.counters)
            return self._execute(self.web)
        finally:
            self.outlets.close()
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
        clips = [p["clips"] for p in outputs if "clips" in p]
        self.storage.check(clips + ([Path(shared["clips"])] if "clips" in shared else []))
        before = Preexisting(_files(outputs, shared))  # before anything can make a file
        if self.detector is None and any(is_live_spec(p.spec) for p in plans):
            # Live: load the model first, so no frames pile up (and get dropped) while it loads.
            web.set_phase(Phase.LOADING)
            self.detector = load_detector(settings, requests=IN_FLIGHT)
        web.set_phase(Phase.CONNECTING)
        sources: list[Source] = []
        failure: BaseException | None = None
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
            interrupts().raise_if_requested()
            failed = [lane for lane in self.lanes if lane.error is not None]
            if failed:
                why = "; ".join(f"{lane.name}: {lane.error}" for lane in failed)
                raise SourcesFailed(f"{len(failed)} of {len(self.lanes)} sources failed: {why}")
            self._check_complete()
            return [lane.stats for lane in self.lanes]
        except BaseException as exc:
            failure = exc
            for lane in self.lanes:  # built but never run (a later lane failed to build): close its sinks
                lane.close()
            if not any(lane.stats.frames_processed for lane in self.lanes):
                before.remove_made()  # a failed start leaves nothing half-made behind, and no more
            raise
        finally:
            for source in sources:
                if not any(lane.source is source for lane in self.lanes):
                    source.close()  # opened, but the run never got to it
            self.storage.close()  # recorders and retention first: their last files reach the stores
            if self.shared is not None:
                self.shared.close()  # the event stores, once every lane (and clip) is done
            self.outlets.close()  # what waits is sent, and counted in the reports
            self._list_outputs(outputs, shared)
            self._report(outputs, failing=failure is not None)

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
        # Every source's stages first: they check the class names, before any sink exists.
        built = []
        for plan, source in zip(plans, sources, strict=True):
            info = source.info
            stats = RunStats(source=info.name, backend=detector.backend)
            size = (info.width, info.height)
            stages = build_stages(
                plan.settings, size, detector.names, stats, live=info.live, fps=float(info.fps)
            )
            built.append((stats, stages))
            self.storage.check_source(plan.identity, info, source)
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
        storage = self.storage
        together = self.shared = Shared(
            settings, shared.get("json_path"), _files(outputs, shared), catalog=self.catalogs, storage=storage
        )
        web.set_storage(storage)
        watchers = Watchers(web, self.outlets, window)
        board = ProgressBoard(interval=settings.log_interval)
        for plan, source, paths, (stats, stages) in zip(plans, sources, outputs, built, strict=True):
            info = source.info
            clips = paths.get("clips") or (Path(shared["clips"]).expanduser() if "clips" in shared else None)
            heat = next((s for s in stages if isinstance(s, HeatmapStage)), None)
            store = store_path(plan.settings, paths, shared, clips)
            made = build_sinks(
                plan.settings,
                plan.identity,
                info,
                paths,
                together,
                clips=clips,
                store=store,
                audio_from=_audio_source(plan.spec, info.kind, plan.settings.audio),
                heatmap=heat.render if heat is not None else None,
                with_source=several,
                source=source,
                lane=LaneInfo(stats, stages, detector.names),
                watchers=watchers,
            )
            progress = _progress(board, plan.settings, plan.name if several else Path(info.name).name, info)
            reviewer = None
            if made.reviews:  # review items only for someone who listens: clips, the store, MQTT, notify
                from detector.reviews import reviewer_for

                reviewer = reviewer_for(plan.name, made.reviews, plan.settings.review, detector.names)
            if store is not None:
                web.set_store(store, media=(clips, storage.root))
            self.lanes.append(
                Lane(
                    source, stages, made.sinks, name=plan.name, stats=stats, progress=progress,
                    attachers=made.attachers, reviewer=reviewer,
                    gate=gate_for(plan.settings, info.live, stats), on_storage=storage.status.failed,
                )
            )  # fmt: skip
        storage.start(together.clip_writers())

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

    def _check_complete(self) -> None:
        """Exit 4 when some output was cut short by a full disk (its first error is the message)."""
        incomplete = [exc for lane in self.lanes for exc in lane.storage_errors]
        if incomplete:
            more = len({e.key for e in incomplete}) - 1
            tail = f"; {more} more output{'s' if more > 1 else ''} incomplete (see above)" if more > 0 else ""
            raise OutputsIncomplete(f"{incomplete[0]}{tail}")

    def _list_outputs(self, outputs: list[dict[str, Path]], shared: dict[str, str]) -> None:
        """Each source's output files for its summary and report (its own, then the shared ones), each
        marked when its sink failed part-way (``(incomplete: why)``)."""
        for lane, paths in zip(self.lanes, outputs, strict=False):
            broken = {
                str(sink.path): sink.failed
                for sink in lane.sinks
                if isinstance(sink, FileOutput) and sink.path is not None and sink.failed
            }
            files = [str(p) for p in paths.values()] + [v for v in shared.values() if v != "-"]
            lane.stats.outputs = [f"{f} (incomplete: {broken[f]})" if f in broken else f for f in files]

    def _report(self, outputs: list[dict[str, Path]], *, failing: bool = False) -> None:
        """Every source's report (``self.reports``), written where ``--report`` says. ``failing``: the
        run is ending with an error, which stays the one reported: a report that cannot be written is
        then only logged."""
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
            )
            if len(self.lanes) > 1:
                report["name"] = lane.name
            report.update(self.storage.report())
            self.reports.append(report)
            if "report" in paths:
                try:
                    write_report(paths["report"], report)
                except UserError as exc:
                    if not failing:
                        raise
                    log.error("%s", exc)


def run(source_spec: str, settings: Settings, *, detector: Detector | None = None) -> RunStats:
    """Run one source through the pipeline (for tests and scripts)."""
    return Run(settings, [source_spec], detector=detector).execute()[0]
