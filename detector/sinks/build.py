"""The one place where a source's file sinks are made from ``Settings`` (as ``stages.build`` makes its
stages), and the shared ones of a run with several sources.

A source gets: the annotated video (``--output``, and the encoder the clip recorder cuts clips from),
JSON lines, CSV, MOT, the ``--heatmap`` picture and what an HTML ``--report`` draws; its clip recorder
is also its lane's attacher (clip and snapshot are added to a record before any sink sees it), so the
order of the sinks carries no meaning. ``Shared`` holds what several sources write together: one
``--json`` file, each clips folder with its ``events.jsonl`` (a media catalog too: retention drops
the lines of the clips it deletes), and the run's ``storage`` (``--record``: a source's annotated
recorder is another packet output of its video sink; a raw one taps the source and is a sink).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from detector.catalog import Catalogs
from detector.events import Attacher
from detector.settings import Settings
from detector.sinks.base import Sink
from detector.sinks.clipfolder import ClipFolder, EventsFile
from detector.sinks.clips import ClipRecorder
from detector.sinks.heatmap import HeatmapSink
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.shared import SharedSink
from detector.sinks.tables import CsvSink, MotSink
from detector.sinks.timeline import TimelineSink
from detector.sinks.video import PacketOutput, VideoWriterSink
from detector.sources.base import SourceInfo
from detector.sources.naming import SourceIdentity
from detector.storage.setup import Storage
from detector.types import Image


@dataclass
class SourceSinks:
    """What one source writes: its sinks, and the attachers its lane runs on each event record."""

    sinks: list[Sink] = field(default_factory=list)
    attachers: list[Attacher] = field(default_factory=list)


class Shared:
    """The outputs several sources of one run write together, made on first use."""

    def __init__(
        self,
        settings: Settings,
        json_path: str | None,
        outputs: Iterable[Path] = (),
        catalog: Catalogs | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog  # told of every finished clip, snapshot and segment
        self.storage = storage
        self.outputs = [p.expanduser().absolute() for p in outputs]  # every file output of the run
        self.json = (
            SharedSink(JsonLinesSink(json_path, overwrite=settings.overwrite, with_source=True))
            if json_path
            else None
        )
        self.folders: dict[Path, tuple[ClipFolder, SharedSink]] = {}

    def clip_folder(self, path: Path) -> tuple[ClipFolder, Sink]:
        """The clips folder at ``path`` (one per folder, whichever sources use it) and a handle on its
        ``events.jsonl``."""
        if path not in self.folders:
            folder = ClipFolder(path, reserved=[p for p in self.outputs if p.parent == path.absolute()])
            index = EventsFile(folder, on_resumed=self.storage.status.resumed if self.storage else None)
            if self.catalog is not None:
                self.catalog.add(index)
            self.folders[path] = (folder, SharedSink(index))
        folder, events = self.folders[path]
        return folder, events.handle()

    def clip_writers(self) -> list[tuple[Path, int]]:
        """Each clips folder, with how many sources write clips there."""
        return [(path, sink.users) for path, (_, sink) in self.folders.items()]


def build_sinks(
    settings: Settings,
    identity: SourceIdentity,
    info: SourceInfo,
    paths: dict[str, Path],
    shared: Shared,
    *,
    clips: Path | None = None,
    audio_from: Path | None = None,
    heatmap: Callable[[], Image] | None = None,
    with_source: bool = False,
    source: object = None,
) -> SourceSinks:
    """One source's sinks. ``paths``: its own checked outputs (``{name}`` filled in); ``clips``: its
    clips folder (its own or the run's shared one); ``heatmap``: the heatmap stage's ``render``;
    ``with_source``: frame lines name their source (a run with several); ``source``: the opened
    source (a raw recording taps it)."""
    out = SourceSinks()
    recorders: list[PacketOutput] = []
    recording, raw = (None, None)
    if shared.storage is not None:
        recording, raw = shared.storage.recorder(identity, info, source)
    if clips is not None:
        folder, events_file = shared.clip_folder(clips)
        recorder = ClipRecorder(
            folder,
            before=settings.clip_before,
            after=settings.clip_after,
            source=identity.slug,
            catalog=shared.catalog,
            on_resumed=shared.storage.status.resumed if shared.storage else None,
        )
        recorders.append(recorder)
        out.attachers.append(recorder)
        out.sinks.append(events_file)
    if recording is not None:
        recorders.append(recording)
    if raw is not None:
        out.sinks.append(raw)
    if "output" in paths or recorders:
        out.sinks.append(
            VideoWriterSink.from_settings(
                settings.encoder,
                paths.get("output"),
                Fraction(info.fps) / settings.vid_stride,
                live=info.live,
                source_times=info.kind == "file" and settings.vid_stride == 1,
                audio_from=audio_from if "output" in paths else None,
                outputs=recorders,
            )
        )
    if shared.json is not None:
        out.sinks.append(shared.json.handle())
    elif "json_path" in paths or settings.json_path == "-":
        json_path = paths.get("json_path", "-")
        out.sinks.append(JsonLinesSink(json_path, overwrite=settings.overwrite, with_source=with_source))
    if "csv" in paths:
        out.sinks.append(CsvSink(paths["csv"], overwrite=settings.overwrite))
    if "mot" in paths:
        out.sinks.append(MotSink(paths["mot"], overwrite=settings.overwrite))
    if "heatmap" in paths and heatmap is not None:
        out.sinks.append(HeatmapSink(paths["heatmap"], heatmap))
    if settings.html_report():
        out.sinks.append(TimelineSink(heatmap))
    return out
