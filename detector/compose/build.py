"""The one place where every consumer of a source's lane is made (as ``stages.build`` makes its
stages): its own outputs from ``Settings``, the shared ones of a run with several sources, and the
sinks the run's ``Watchers`` add (the web view's feed, MQTT and notifications, the window's tile).

A source gets: the annotated video (``--output``, and the encoder the clip recorder cuts clips from),
JSON lines, CSV, MOT, the ``--heatmap`` picture and what an HTML ``--report`` draws; its clip recorder
is also its lane's attacher (clip and snapshot are added to a record before any sink sees it), so the
order of the sinks carries no meaning. The clip recorder and the event store listen to the lane's
review items (``SourceSinks.reviews``). ``Shared`` holds what several sources write together: one
``--json`` file, each clips folder with its ``events.jsonl`` (a media catalog too: retention drops
the lines of the clips it deletes), each event store, the media catalogs every finished file is
told to, and the run's ``storage`` (``--record``: a source's annotated recorder is another packet
output of its video sink; a raw one taps the source and is a sink). MQTT and notifications are
sinks and listen to the review items too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from detector.catalog import Catalogs
from detector.events import Attacher
from detector.eventstore.names import DEFAULT_NAME
from detector.media.mp4writer import PacketOutput
from detector.review_items import ReviewConsumer
from detector.settings import Settings
from detector.sinks.heatmap_file import HeatmapSink
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.shared import SharedSink
from detector.sinks.tables import CsvSink, MotSink
from detector.sinks.timeline import TimelineSink
from detector.sinks.video import VideoWriterSink
from detector.sinks.window import Window
from detector.sources.base import SourceInfo
from detector.sources.naming import SourceIdentity
from detector.stages.base import Stage
from detector.stats import RunStats
from detector.types import Image, Sink

if TYPE_CHECKING:  # imported where used: a run without clips, a store or --record loads none of them
    from detector.compose.outlets import Outlets
    from detector.eventstore.writer import EventStore
    from detector.storage.clipfolder import ClipFolder
    from detector.storage.setup import Storage
    from detector.web.view import WebView


@dataclass(frozen=True)
class Watchers:
    """What watches every lane of a run besides the lane's own outputs, each giving the lane sinks of
    its own: the web view (its feeds), the outlets (MQTT and notifications, which also listen to the
    review items) and the window (a tile)."""

    web: WebView | None = None
    outlets: Outlets | None = None
    window: Window | None = None


@dataclass(frozen=True)
class LaneInfo:
    """The lane whose consumers are built: its stats and stages (the web view shows them) and the
    model's class names (the outlets announce them)."""

    stats: RunStats
    stages: Sequence[Stage] = ()
    names: Mapping[int, str] = field(default_factory=dict)


@dataclass
class SourceSinks:
    """What one source writes: its sinks, the attachers its lane runs on each event record, and who
    listens to its review items."""

    sinks: list[Sink] = field(default_factory=list)
    attachers: list[Attacher] = field(default_factory=list)
    reviews: list[ReviewConsumer] = field(default_factory=list)


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
        self.catalog = catalog if catalog is not None else Catalogs()  # told of every finished file
        self.storage = storage
        self.outputs = [p.expanduser().absolute() for p in outputs]  # every file output of the run
        self.json = (
            SharedSink(JsonLinesSink(json_path, overwrite=settings.overwrite, with_source=True))
            if json_path
            else None
        )
        self.folders: dict[Path, tuple[ClipFolder, SharedSink]] = {}
        self.stores: dict[Path, EventStore] = {}

    def clip_folder(self, path: Path) -> tuple[ClipFolder, Sink]:
        """The clips folder at ``path`` (one per folder, whichever sources use it) and a handle on its
        ``events.jsonl``."""
        if path not in self.folders:
            from detector.storage.clipfolder import ClipFolder, EventsFile

            folder = ClipFolder(path, reserved=[p for p in self.outputs if p.parent == path.absolute()])
            index = EventsFile(folder, on_resumed=self.storage.status.resumed if self.storage else None)
            self.catalog.add(index)
            self.folders[path] = (folder, SharedSink(index))
        folder, events = self.folders[path]
        return folder, events.handle()

    def store(self, path: Path) -> EventStore:
        """The event store at ``path`` (one per file, whichever sources write it), a catalog too."""
        key = path.expanduser().absolute()
        if key not in self.stores:
            from detector.eventstore.writer import EventStore  # sqlite3 too

            self.stores[key] = EventStore(key)
            self.catalog.add(self.stores[key])
        return self.stores[key]

    def clip_writers(self) -> list[tuple[Path, int]]:
        """Each clips folder, with how many sources write clips there."""
        return [(path, sink.users) for path, (_, sink) in self.folders.items()]

    def close(self) -> None:
        """After every lane has closed (a clip is listed as its recorder closes): close the stores."""
        for store in self.stores.values():
            store.close()


def store_path(
    settings: Settings, paths: dict[str, Path], shared: dict[str, str], clips: Path | None
) -> Path | None:
    """A source's event store: ``--events-db`` (its own, or the one all sources share), else
    ``DIR/events.db`` beside its clips; none with ``--events-db off``."""
    if settings.store_off():
        return None
    if "events_db" in paths:
        return paths["events_db"]
    if "events_db" in shared:
        return Path(shared["events_db"]).expanduser()
    return clips / DEFAULT_NAME if clips is not None else None


def build_sinks(
    settings: Settings,
    identity: SourceIdentity,
    info: SourceInfo,
    paths: dict[str, Path],
    shared: Shared,
    *,
    clips: Path | None = None,
    store: Path | None = None,
    audio_from: Path | None = None,
    heatmap: Callable[[], Image] | None = None,
    with_source: bool = False,
    source: object = None,
    lane: LaneInfo | None = None,
    watchers: Watchers | None = None,
) -> SourceSinks:
    """Every consumer of one source's lane, from this one place: its sinks, attachers and review
    listeners. ``paths``: its own checked outputs (``{name}`` filled in); ``clips``: its clips folder
    (its own or the run's shared one); ``store``: its event store; ``heatmap``: the heatmap stage's
    ``render``; ``with_source``: frame lines name their source (a run with several); ``source``: the
    opened source (a raw recording taps it); ``watchers``: the run's web view, outlets and window,
    which add sinks of their own for the ``lane``."""
    out = _outputs(
        settings, identity, info, paths, shared, clips, store, audio_from, heatmap, with_source, source
    )
    if watchers is not None and lane is not None:
        name = identity.name
        if watchers.web is not None:
            out.sinks += watchers.web.add_source(name, info, lane.stats, lane.stages)
        if watchers.outlets is not None:
            told = watchers.outlets.add_source(name, info, lane.stats, settings, lane.names)
            out.sinks += told  # MQTT and notifications: sinks, and listeners of the review items
            out.reviews += told
        if watchers.window is not None:
            out.sinks.append(watchers.window.tile(name))
    return out


def _outputs(
    settings: Settings,
    identity: SourceIdentity,
    info: SourceInfo,
    paths: dict[str, Path],
    shared: Shared,
    clips: Path | None,
    store: Path | None,
    audio_from: Path | None,
    heatmap: Callable[[], Image] | None,
    with_source: bool,
    source: object,
) -> SourceSinks:
    """The outputs the source's own settings ask for (files, clips, the store, recording)."""
    out = SourceSinks()
    recorders: list[PacketOutput] = []
    recording, raw = (None, None)
    if shared.storage is not None:
        recording, raw = shared.storage.recorder(identity, info, source)
    if store is not None:
        handle = shared.store(store).handle(identity.name)
        out.sinks.append(handle)
        out.reviews.append(handle)
    if clips is not None:
        from detector.storage.clips import ClipRecorder

        folder, events_file = shared.clip_folder(clips)
        recorder = ClipRecorder(
            folder,
            before=settings.clip_before,
            after=settings.clip_after,
            source=identity.slug,
            catalog=shared.catalog,
            gap=settings.review.gap,
            on_resumed=shared.storage.status.resumed if shared.storage else None,
            max_seconds=settings.review.max_seconds,
            max_bytes=settings.review.max_size,
            snapshots=settings.snapshots,
        )
        recorders.append(recorder)
        out.attachers.append(recorder)
        out.reviews.append(recorder)
        out.sinks.append(events_file)
    if recording is not None:
        recorders.append(recording)
    if raw is not None:
        out.sinks.append(raw)
    if "output" in paths or recorders:
        out.sinks.append(
            VideoWriterSink(
                paths.get("output"),
                fps=Fraction(info.fps) / settings.vid_stride,
                live=info.live,
                source_times=info.kind == "file" and settings.vid_stride == 1,
                encoder=settings.encoder,
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
