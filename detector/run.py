"""Composition of one ``detector run``: check the outputs, open the source, load the model, build the
stages and sinks, run the pipeline, and report. A failed start leaves no half-made outputs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.backends import Detector, load_detector
from detector.errors import SourceError, UserError
from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.pipeline.lane import Lane
from detector.progress import Progress
from detector.report import build_report, part_reports, write_report
from detector.settings import Settings
from detector.signals import interrupts
from detector.sinks.audio import audio_codec
from detector.sinks.base import Sink
from detector.sinks.events import event_sinks, packet_outputs
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.paths import check_outputs
from detector.sinks.tables import CsvSink, MotSink
from detector.sinks.video import VideoWriterSink
from detector.sinks.window import WindowSink, display_available
from detector.sources import SourceInfo, check_url, is_live_spec, open_source
from detector.stages.base import Stage
from detector.stages.build import build_stages, check_classes
from detector.stages.overlay import OverlayStage
from detector.stats import RunStats

log = logging.getLogger(__name__)


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
    if not wanted or kind != "file":
        return None
    codec = audio_codec(spec)
    if codec:
        log.info("keeping the %s audio of %s", codec, spec)
    return Path(spec) if codec else None


def build_sinks(
    settings: Settings, paths: dict[str, Path], info: SourceInfo, spec: str, stages: Sequence[Stage] = ()
) -> list[Sink]:
    """File sinks in the order they write: the video first (its clip recorder adds ``clip`` and
    ``snapshot`` to event records before the others see them), JSON lines, tables, then the heatmap
    and report pages."""
    sinks: list[Sink] = []
    clips = packet_outputs(settings, paths, info)
    if "output" in paths or clips:
        fps = Fraction(info.fps) / settings.vid_stride
        sinks.append(
            VideoWriterSink.from_settings(
                settings.encoder,
                paths.get("output"),
                fps,
                live=info.live,
                source_times=info.kind == "file" and settings.vid_stride == 1,
                audio_from=_audio_source(spec, info.kind, settings.audio) if "output" in paths else None,
                outputs=clips,
            )
        )
    if settings.json_path:
        sinks.append(JsonLinesSink(settings.json_path, overwrite=settings.overwrite))
    if "csv" in paths:
        sinks.append(CsvSink(paths["csv"], overwrite=settings.overwrite))
    if "mot" in paths:
        sinks.append(MotSink(paths["mot"], overwrite=settings.overwrite))
    return sinks + event_sinks(settings, paths, stages)


def _progress(settings: Settings, info: SourceInfo) -> Progress | None:
    if info.live or settings.json_path == "-":
        return None
    total = info.frame_count
    if total and settings.vid_stride > 1:
        total = -(-total // settings.vid_stride)
    if settings.max_frames:
        total = min(total or settings.max_frames, settings.max_frames)
    return Progress(Path(info.name).name, total, interval=settings.log_interval)


class Run:
    """One ``detector run``. ``report`` holds the run report once frames were processed, also when
    the run ends with an error or a signal (the CLI prints its summary)."""

    def __init__(
        self,
        source_spec: str,
        settings: Settings,
        *,
        started_at: float | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.spec = source_spec.strip()
        self.settings = settings
        self.started_at = time.monotonic() if started_at is None else started_at
        self.detector = detector  # an already-loaded model (``detector batch`` workers)
        self.report: dict[str, Any] | None = None
        self.stats: RunStats | None = None

    def execute(self) -> RunStats:
        settings = self.settings
        paths = check_outputs(settings.output_paths(), settings.overwrite, self.spec)
        if "://" in self.spec:
            check_url(self.spec)
        if self.detector is None and is_live_spec(self.spec):
            # Live: load the model first, so no frames pile up (and get dropped) while it loads.
            self.detector = load_detector(settings)
        source = open_source(
            self.spec,
            image_fps=settings.image_fps,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.stall_timeout,
            camera_size=settings.camera_size,
            camera_fps=settings.camera_fps,
        )
        created: list[Path] = []
        lane: Lane | None = None
        try:
            info = source.info
            log.info(
                "source %s: %s %dx%d @ %.3g fps%s",
                *(info.kind, info.name, info.width, info.height, float(info.fps)),
                f", ~{info.frame_count} frames" if info.frame_count else "",
            )
            if self.detector is None:
                self.detector = load_detector(settings, requests=1 if info.live else 2)
            detector = self.detector
            log.info("model %s (%s backend)", detector.model_path, detector.backend)
            check_classes(settings, detector.names)
            self.stats = stats = RunStats(source=info.name, backend=detector.backend)
            stages = build_stages(settings, (info.width, info.height), detector.names, stats, live=info.live)
            show = decide_show(settings, info.kind == "camera")
            sinks = build_sinks(settings, paths, info, self.spec, stages)
            created.extend(p for k, p in paths.items() if k != "report")
            quit_event = threading.Event()
            if show:
                overlay = next(s for s in stages if isinstance(s, OverlayStage))
                video_path = paths.get("output")
                sinks.append(
                    WindowSink(
                        info.name,
                        snapshot_dir=video_path.parent if video_path is not None else Path.cwd(),
                        on_toggle_panel=overlay.toggle_panel,
                        on_pause=lambda paused: None if paused else stats.fps_meter.reset(),
                        on_quit=quit_event.set,
                    )
                )
            lane = Lane(source, stages, sinks, stats=stats, progress=_progress(settings, info))
            options = PipelineOptions(
                max_frames=settings.max_frames,
                vid_stride=settings.vid_stride,
                queue_size=settings.queue_size,
                reconnect_max=settings.reconnect_max,
                started_at=self.started_at,
                stop=(quit_event, interrupts().stop),
            )
            with interrupts().deferred():
                Pipeline(lane, detector, options).run()
            if stats.frames_read == 0:  # e.g. a header without data: say so, leave no empty outputs
                raise SourceError(f"input {info.name} gave no frames that decode (truncated or corrupt?)")
            declared = info.frame_count or 0
            if (
                info.kind == "file"
                and not settings.max_frames
                and stats.frames_read < declared - max(2, declared // 100)
            ):
                log.warning(
                    "%s ended after %d of the %d frames its header declares (truncated?)",
                    *(info.name, stats.frames_read, declared),
                )
            stats.outputs = [str(p) for p in created]
            interrupts().raise_if_requested()
            return stats
        except BaseException:
            if self.stats is None or self.stats.frames_processed == 0:
                for p in created:  # a failed start leaves nothing half-made behind
                    if not p.is_dir():  # --clips names a folder (made only at the first event)
                        p.unlink(missing_ok=True)
            raise
        finally:
            source.close()
            if lane is not None and lane.stats.frames_processed:
                self.report = build_report(
                    lane.stats,
                    source.info,
                    self.detector.model_path if self.detector else "",
                    self.detector.backend if self.detector else "",
                    part_reports(lane.stages, lane.sinks),
                    [str(p) for p in created],
                )
                if "report" in paths:
                    write_report(paths["report"], self.report)


def run(source_spec: str, settings: Settings, *, detector: Detector | None = None) -> RunStats:
    """Run ``source_spec`` through the pipeline once (for tests and scripts)."""
    return Run(source_spec, settings, detector=detector).execute()
