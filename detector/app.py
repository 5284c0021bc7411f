"""Composition of one ``detector run``: validate outputs, open the source, load the model,
build the sinks, run the pipeline, and clean up partial outputs of a failed start."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from detector.analytics.stage import AnalyticsStage
from detector.config import Settings
from detector.detection import Detector, load_detector, load_tracker, resolve_classes
from detector.errors import SourceError, UserError
from detector.overlay import OverlayRenderer
from detector.pipeline import Pipeline
from detector.progress import Progress
from detector.report import build_report, check_report_path, format_table, write_report
from detector.sinks.audio import audio_codec
from detector.sinks.base import Sink
from detector.sinks.jsonl import JsonLinesSink, check_json_output_path, check_output_file
from detector.sinks.tables import CsvSink, MotSink
from detector.sinks.video import VideoWriterSink, check_video_output_path
from detector.sinks.window import WindowSink, display_available
from detector.sources import SourceInfo, check_url, open_source
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


def _check_outputs(settings: Settings, source_spec: str) -> dict[str, Path]:
    """Validate every output path before the first frame is read: writable, not clobbering an
    existing file (unless --overwrite), not the input, and no two outputs on one file."""
    paths: dict[str, Path] = {}
    if settings.output:
        paths["output"] = check_video_output_path(settings.output, settings.overwrite)
    json_path = check_json_output_path(settings.json_path, settings.overwrite) if settings.json_path else None
    if json_path is not None:
        paths["json"] = json_path
    for key, value, what in (("csv", settings.csv, "CSV output"), ("mot", settings.mot, "MOT output")):
        if value:
            paths[key] = check_output_file(value, settings.overwrite, what)
    if settings.report:
        paths["report"] = check_report_path(settings.report, settings.overwrite)
    source = Path(source_spec).expanduser()
    seen: dict[Path, str] = {}
    for key, path in paths.items():
        resolved = path.resolve()
        if source.is_file() and resolved == source.resolve():
            raise UserError(f"--{key} {path} is the input file; choose another output path")
        if resolved in seen:
            raise UserError(f"--{seen[resolved]} and --{key} both write {path}; give each its own file")
        seen[resolved] = key
    return paths


def video_sink(
    settings: Settings, path: Path, fps: Fraction, *, live: bool, audio_from: Path | None = None
) -> VideoWriterSink:
    """The annotated-video sink with the encoder settings."""
    enc = settings.encoder
    return VideoWriterSink(
        path,
        fps=fps,
        live=live,
        preset=enc.preset,
        crf=enc.crf,
        threads=enc.threads,
        fragment_seconds=enc.fragment_seconds,
        audio_from=audio_from,
    )


def _build_sinks(
    settings: Settings, paths: dict[str, Path], info: SourceInfo, source_spec: str, created: list[Path]
) -> list[Sink]:
    """Sinks in the order they write: JSON lines, tables, then the video."""
    sinks: list[Sink] = []
    if "json" in paths or settings.json_path == "-":
        sinks.append(JsonLinesSink(settings.json_path or "-", overwrite=settings.overwrite))
    if "csv" in paths:
        sinks.append(CsvSink(paths["csv"], overwrite=settings.overwrite))
    if "mot" in paths:
        sinks.append(MotSink(paths["mot"], overwrite=settings.overwrite))
    if "output" in paths:
        sinks.append(
            video_sink(
                settings,
                paths["output"],
                Fraction(info.fps) / settings.vid_stride,
                live=info.live,
                audio_from=_audio_source(source_spec, info.kind, settings.audio),
            )
        )
    created.extend(p for k, p in paths.items() if k != "report")
    return sinks


def _write_report(
    path: Path, pipeline: Pipeline, analytics: AnalyticsStage | None, created: list[Path]
) -> None:
    report = build_report(
        pipeline.stats,
        pipeline.source.info,
        pipeline.detector.model_path,
        pipeline.detector.backend,
        analytics.lines if analytics else (),
        analytics.zones if analytics else (),
        analytics.tracks.per_class() if analytics else {},
        [str(p) for p in created],
    )
    write_report(path, report)
    log.info("%s", format_table(report))


def run(
    source_spec: str,
    settings: Settings,
    *,
    started_at: float | None = None,
    stats_out: list[RunStats] | None = None,
    detector: Detector | None = None,
) -> RunStats:
    """Run the whole pipeline once. ``stats_out`` receives the stats even if the run is interrupted.

    ``detector``: an already-loaded model to use instead of loading one (``detector batch`` workers)."""
    paths = _check_outputs(settings, source_spec)
    read_timeout = settings.stall_timeout
    spec = source_spec.strip()
    if "://" in spec:
        check_url(spec)
    if detector is None and (spec.isdigit() or "://" in spec):
        # Live: load the model first, so no frames pile up (and get dropped) while it loads.
        detector = load_detector(settings)
    source = open_source(
        source_spec,
        image_fps=settings.image_fps,
        connect_timeout=settings.connect_timeout,
        read_timeout=read_timeout,
        camera_size=settings.camera_size,
        camera_fps=settings.camera_fps,
    )
    created: list[Path] = []
    pipeline: Pipeline | None = None
    analytics: AnalyticsStage | None = None
    try:
        info = source.info
        log.info(
            "source %s: %s %dx%d @ %.3g fps%s",
            info.kind,
            info.name,
            info.width,
            info.height,
            float(info.fps),
            f", ~{info.frame_count} frames" if info.frame_count else "",
        )
        if detector is None:
            detector = load_detector(settings, requests=1 if info.live else 2)
        log.info("model %s (%s backend)", detector.model_path, detector.backend)
        class_ids = resolve_classes(settings.classes, detector.names)
        tracker = load_tracker(settings.tracker) if settings.tracker else None
        show = decide_show(settings, info.kind == "camera")
        renderer = OverlayRenderer(
            panel=settings.overlay.panel,
            labels=settings.overlay.labels,
            confidence=settings.overlay.confidence,
            line_width=settings.overlay.line_width,
        )
        analytics = AnalyticsStage(
            (info.width, info.height),
            detector.names,
            lines=settings.lines,
            zones=settings.zones,
            trails=settings.trails,
            tracking=tracker is not None,
        )
        sinks = _build_sinks(settings, paths, info, source_spec, created)
        window = None
        if show:
            video_path = paths.get("output")
            snap_dir = video_path.parent if video_path is not None else Path.cwd()
            window = WindowSink(
                info.name,
                snapshot_dir=snap_dir,
                on_toggle_panel=lambda: setattr(renderer, "panel", not renderer.panel),
            )
        progress = None
        if not info.live and settings.json_path != "-":
            total = info.frame_count
            if total and settings.vid_stride > 1:
                total = -(-total // settings.vid_stride)
            if settings.max_frames:
                total = min(total or settings.max_frames, settings.max_frames)
            progress = Progress(Path(info.name).name, total, interval=settings.log_interval)
        pipeline = Pipeline(
            source,
            detector,
            renderer,
            sinks,
            window=window,
            tracker=tracker,
            analytics=analytics,
            class_ids=class_ids,
            max_frames=settings.max_frames,
            vid_stride=settings.vid_stride,
            queue_size=settings.queue_size,
            reconnect_max=settings.reconnect_max,
            progress=progress,
            started_at=started_at,
        )
        if stats_out is not None:
            stats_out.append(pipeline.stats)
        stats = pipeline.run()
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
        return stats
    except BaseException:
        if pipeline is None or pipeline.stats.frames_processed == 0:
            for p in created:  # a failed start leaves nothing half-made behind
                p.unlink(missing_ok=True)
        raise
    finally:
        source.close()
        if pipeline is not None and pipeline.stats.frames_processed and "report" in paths:
            _write_report(paths["report"], pipeline, analytics, created)
