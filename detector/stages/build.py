"""The one place where a source's stages are made from ``Settings``, in the order they run.

Adding a per-frame feature means a stage module and one line here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from detector.settings import Settings
from detector.stages.base import Stage
from detector.stages.classes import ClassFilter, resolve_classes
from detector.stages.gate_marks import GateStage, MotionOverlay
from detector.stages.heatmap import HeatmapStage
from detector.stages.ignore import IgnoreStage
from detector.stages.lines import LinesStage
from detector.stages.overlay import OverlayStage, PanelInfo
from detector.stages.privacy import PrivacyStage
from detector.stages.stationary import StationaryBook
from detector.stages.track import TrackStage, TrackTally, load_tracker
from detector.stages.trails import TrailsStage
from detector.stages.zones import ZonesStage
from detector.stats import RunStats

log = logging.getLogger(__name__)


def panel_status(stats: RunStats, live: bool, source_fps: float | None = None) -> Callable[[], PanelInfo]:
    """What the overlay's corner panel shows for a source: its processing rate (its own rate,
    ``source_fps``, until that is measured), latency (live) and drops."""

    def status() -> PanelInfo:
        latency = stats.latency.mean if live and stats.latency.count else None
        extra = [f"dropped {stats.frames_dropped}"] if stats.frames_dropped else []
        return PanelInfo(stats.fps_meter.value, latency, extra, source_fps)

    return status


def wants_heatmap(settings: Settings) -> bool:
    """A heatmap is kept for --heatmap, for overlay.heatmap and for an HTML report (which shows it)."""
    return bool(settings.heatmap or settings.overlay.heatmap or settings.html_report())


def build_stages(
    settings: Settings,
    frame_size: tuple[int, int],
    names: Mapping[int, str],
    stats: RunStats,
    *,
    live: bool,
    fps: float = 30.0,
) -> list[Stage]:
    """A fresh set of stages for one source (``frame_size`` is its (width, height), ``fps`` its
    frame rate before ``vid_stride``)."""
    stages: list[Stage] = []
    motion = settings.motion.on(live)
    if motion or settings.detect_fps:  # a gated source: each frame says whether the model ran
        stages.append((MotionOverlay if motion and settings.overlay.motion else GateStage)(motion))
    if settings.blur or settings.pixelate or settings.privacy_masks:  # first: it sees every detection
        blur, pixelate = (
            resolve_classes(getattr(settings, k), names, f"--{k}: ") for k in ("blur", "pixelate")
        )
        stages.append(PrivacyStage(blur, pixelate, settings.privacy_masks, frame_size))
    if settings.ignore:
        stages.append(IgnoreStage(settings.ignore, frame_size, names))
    class_ids = resolve_classes(settings.classes, names)
    if class_ids is not None:
        stages.append(ClassFilter(class_ids))
    book = None
    if settings.tracker:
        announce = resolve_classes(settings.clip_on, names, "--clip-on: ")
        still = settings.stationary.for_source(live)
        track = TrackStage(
            load_tracker(settings.tracker, fps / settings.vid_stride),
            StationaryBook(still) if still else None,
        )
        book = track.book
        stages += [track, TrackTally(book, announce=announce)]
    if settings.lines:
        stages.append(LinesStage(settings.lines, frame_size, names, book))
    if settings.zones:
        stages.append(ZonesStage(settings.zones, frame_size, names, book))
    if settings.trails is not None:
        stages.append(TrailsStage(settings.trails.length, book))
    heat_ids = resolve_classes(
        settings.heatmap_classes, names, "--heatmap-classes: "
    )  # checked even if unused
    if wants_heatmap(settings):
        stages.append(HeatmapStage(frame_size, heat_ids, names, live=settings.overlay.heatmap))
    overlay = settings.overlay
    stages.append(
        OverlayStage(
            panel=overlay.panel,
            labels=overlay.labels,
            confidence=overlay.confidence,
            line_width=overlay.line_width,
            label_min_size=overlay.label_min_size,
            status=panel_status(stats, live, fps / settings.vid_stride),
        )
    )
    return stages
