"""The outputs of issue "events you can look at", made from ``Settings`` for one source: the clip
recorder (fed by the video sink's packets), the ``--heatmap`` picture and the data of an HTML report.

``run.build_sinks`` calls ``packet_outputs`` (given to the video sink) and ``event_sinks`` (appended
after every other sink, so they see event records with their clip and snapshot already added).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detector.settings import Settings
from detector.sinks.base import Sink
from detector.sinks.clips import ClipRecorder, EventLog
from detector.sinks.heatmap import HeatmapSink
from detector.sinks.timeline import TimelineSink
from detector.sinks.video import PacketOutput
from detector.sources.base import SourceInfo
from detector.stages.base import Stage
from detector.stages.heatmap import HeatmapStage


def packet_outputs(
    settings: Settings, paths: dict[str, Path], info: SourceInfo, log: EventLog | None = None
) -> list[PacketOutput]:
    """The clip recorder of one source (``--clips``), or nothing. With several sources writing to one
    folder, pass the same ``log`` to each (one ``events.jsonl``; file names carry the source)."""
    if "clips" not in paths:
        return []
    log = log or EventLog(paths["clips"], settings.overwrite)
    return [ClipRecorder(log, before=settings.clip_before, after=settings.clip_after, source=info.name)]


def event_sinks(settings: Settings, paths: dict[str, Path], stages: Sequence[Stage]) -> list[Sink]:
    """The heatmap picture (``--heatmap``) and the timeline an HTML ``--report`` draws."""
    heat = next((s for s in stages if isinstance(s, HeatmapStage)), None)
    sinks: list[Sink] = []
    if "heatmap" in paths and heat is not None:
        sinks.append(HeatmapSink(paths["heatmap"], heat.render))
    if settings.html_report():
        sinks.append(TimelineSink(heat.render if heat is not None else None))
    return sinks
