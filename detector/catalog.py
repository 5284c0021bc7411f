"""What a run keeps on disk, as the parts that list it see it: recording segments, event clips and
snapshots (``MediaFile``), told to every ``MediaCatalog`` as each file is finished or deleted.

Writers (the clip recorder, the segment recorder) call ``added`` once a file is complete and will not
change again; retention calls ``removed`` after it deleted files. Catalogs keep the lists: the
recordings' ``segments.jsonl``, the clips' ``events.jsonl``, the event store. A catalog is called from
whichever thread wrote or deleted the file and must not block it for long (queue, do the work
elsewhere).

A catalog that can also say what it holds under a folder from earlier runs (``MediaLister.listed``)
tells retention, at start, which files go together (a clip and its snapshots) and their times. One
that has ``found`` (``MediaFinder``) is told, at start, of every finished file of earlier runs that
retention found on disk: a run killed with ``kill -9`` never listed its last files; it lists each
one it lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)

MediaKind = Literal["segment", "clip", "snapshot"]


@dataclass(frozen=True)
class MediaFile:
    """One finished file. Times: ``start``/``end`` are Unix time (wall clock) of its first and last
    frame; ``media_start``/``media_end`` the same frames' ``pts`` in the source."""

    kind: MediaKind
    source: str  # the source's unique name (``SourceIdentity.name``)
    path: Path  # absolute
    start: float | None = None
    end: float | None = None
    media_start: float | None = None
    media_end: float | None = None
    bytes: int = 0
    events: tuple[str, ...] = ()  # ids of the event records it belongs to (clips, snapshots)
    extra: dict[str, object] = field(default_factory=dict)  # what a kind adds (a segment's mode...)


class MediaCatalog(Protocol):
    def added(self, media: MediaFile) -> None: ...

    def removed(self, paths: Sequence[Path]) -> None: ...


class MediaLister(Protocol):
    """Optional, besides ``MediaCatalog``: the files it lists under ``folder`` (absolute paths)."""

    def listed(self, folder: Path) -> list[MediaFile]: ...


class MediaFinder(Protocol):
    """Optional, besides ``MediaCatalog``: an earlier run's finished file, found on disk at start;
    listed if it is not yet (cheaply: it is told of every file found)."""

    def found(self, media: MediaFile) -> None: ...


class Catalogs:
    """Several catalogs as one; a catalog that fails is logged, the others still hear of the file."""

    def __init__(self, catalogs: Sequence[MediaCatalog] = ()) -> None:
        self.catalogs = list(catalogs)

    def add(self, catalog: MediaCatalog) -> None:
        self.catalogs.append(catalog)

    def added(self, media: MediaFile) -> None:
        for catalog in self.catalogs:
            try:
                catalog.added(media)
            except Exception as exc:  # one broken list must not lose the file for the others
                log.error("%s: could not list %s: %s", type(catalog).__name__, media.path, exc)

    def removed(self, paths: Sequence[Path]) -> None:
        for catalog in self.catalogs:
            try:
                catalog.removed(paths)
            except Exception as exc:
                log.error("%s: could not forget %d files: %s", type(catalog).__name__, len(paths), exc)

    def found(self, media: MediaFile) -> None:
        """Tell the catalogs that can (``MediaFinder``) of an earlier run's file found on disk."""
        for catalog in self.catalogs:
            finder = getattr(catalog, "found", None)
            if callable(finder):
                try:
                    finder(media)
                except Exception as exc:
                    log.error("%s: could not list %s: %s", type(catalog).__name__, media.path, exc)

    def listed(self, folder: Path) -> list[MediaFile]:
        """What the catalogs that can list (``MediaLister``) hold under ``folder``."""
        found: list[MediaFile] = []
        for catalog in self.catalogs:
            lister = getattr(catalog, "listed", None)
            if callable(lister):
                try:
                    found.extend(lister(folder))
                except Exception as exc:
                    log.warning("%s: could not list %s: %s", type(catalog).__name__, folder, exc)
        return found
