"""The web view as a run sees it: ``web_view(settings)`` starts the server (or gives an inert view
without ``--serve``), then the run tells it the phase, the model and each source, and closes it.

    web = web_view(settings)                 # first: the page can say "loading the model"
    web.set_phase(Phase.LOADING)
    ...
    sinks += web.add_source(name, info, stats, stages)   # per source; [] without --serve
    web.set_model(detector.model_path, detector.backend)
    ...
    web.close()                              # in a finally: the server stops with the run

Nothing here imports the server library; ``start`` does, so start-up without ``--serve`` is as lean
as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from detector.events import EventRecord
from detector.settings import Settings
from detector.sources.base import SourceInfo
from detector.stages.base import Stage
from detector.stats import RunStats
from detector.types import FrameResult, Sink
from detector.web.config import ServeConfig, serve_config
from detector.web.feeds import Board, Feed, Phase

if TYPE_CHECKING:
    from detector.storage.setup import Storage

log = logging.getLogger(__name__)


class Server(Protocol):
    url: str

    def attach(self, feed: Feed) -> None: ...

    def close(self) -> None: ...


class WebSink:
    """The sink of one source: hands each frame and event to its ``Feed`` (no copies, no encoding)."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def write(self, result: FrameResult) -> None:
        self.feed.publish(result)

    def event(self, record: EventRecord) -> None:
        self.feed.add_event(record)

    def close(self) -> None:
        self.feed.finish()


class WebView:
    """The run's side of the web view; inert (every call a no-op) when ``config`` is None."""

    def __init__(self, config: ServeConfig | None) -> None:
        self.config = config
        self.board = Board(stall_timeout=config.stall_timeout if config else 5.0)
        self.server: Server | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def start(self) -> WebView:
        """Bind and start serving (``UserError`` if the address cannot be bound)."""
        if self.config is None or self.server is not None:
            return self
        from detector.web.server import WebServer  # the server library, only for --serve

        self.server = WebServer(self.board, self.config)
        auth = " (every request needs the token)" if self.config.token else ""
        log.info("web view on %s%s", self.server.url, auth)
        return self

    def set_phase(self, phase: str) -> None:
        self.board.phase = phase

    def set_storage(self, storage: Storage) -> None:
        """``/healthz`` and ``/metrics`` say what a full disk does, and what retention deleted."""
        self.board.storage = storage

    def set_model(self, path: str, backend: str) -> None:
        self.board.model, self.board.backend = str(path), backend

    def set_store(self, path: Path, media: Sequence[Path | None] = ()) -> None:
        """The event store ``/history`` and the API read (the first one, if the run writes several).
        ``/media`` serves the files in the store's folder, and those in ``media`` (the run's own clips
        and recording folders) that the store lists by absolute path."""
        for folder in media:
            if folder is not None and (root := folder.expanduser().absolute()) not in self.board.media_roots:
                self.board.media_roots.append(root)
        path = path.expanduser().absolute()
        if self.board.store is None:
            self.board.store = path
        elif self.board.store != path:
            log.info("the web view's history shows %s (not %s)", self.board.store, path)

    def add_source(
        self, name: str, info: SourceInfo, stats: RunStats, stages: Sequence[Stage] = ()
    ) -> list[Sink]:
        """Serve one source (keyed by ``name``); returns the sinks to add to its lane."""
        if self.config is None:
            return []
        feed = Feed(name, info, stats, stages)
        self.board.feeds[name] = feed
        self.board.phase = Phase.RUNNING
        if self.server is not None:
            self.server.attach(feed)
        return [WebSink(feed)]

    def close(self) -> None:
        """Stop serving (bounded: a stuck viewer never holds the run up)."""
        self.board.phase = Phase.FINISHED
        for feed in self.board.sources():
            feed.finished = True
        server, self.server = self.server, None
        if server is not None:
            server.close()


def web_view(settings: Settings) -> WebView:
    """The run's web view, already serving when ``--serve`` is given (checks first: ``UserError``)."""
    return WebView(serve_config(settings)).start()
