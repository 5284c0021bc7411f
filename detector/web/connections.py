"""Bounds on the web view's connections, so that idle or slow clients cannot use up the process's file
descriptors and stop the recording (issue 30.6: 1,100 connections that sent half a request line ended
a run with "Too many open files").

- **A cap on open connections** (``connection_cap``): beyond it a new connection is dropped as soon as
  it is accepted, before it holds anything. The cap leaves ``FD_RESERVE`` descriptors (and the listen
  backlog) of the process's limit to the recording, the clips and the store.
- **A deadline for a request's headers** (``HEADER_SECONDS``): a connection that has not sent a whole
  request line and headers that long after it opened, or after its last response, is closed.
  uvicorn times out only an idle keep-alive connection once a response went out (and any byte, a
  partial request included, stops that clock); a connection that never finishes its first request is
  never timed out, and its ``limit_concurrency`` answers 503 only to a complete request. So this is
  done here, on uvicorn's own h11 protocol.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_SECONDS = 10.0
MAX_CONNECTIONS = 256  # far above what the viewers (--serve-max-viewers video + events) and API need
FD_RESERVE = 256  # descriptors never taken by connections: segments, clips, the store, the model, logs
BACKLOG = 128  # accepted in one go by the event loop before a connection can be dropped
MAX_HEADER_BYTES = 16 * 1024  # h11's bound on an unfinished request line and headers (its default)


def connection_cap(soft_limit: int | None = None) -> int:
    """The most connections the web view keeps open under the process's descriptor limit."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft_limit - FD_RESERVE - BACKLOG))


class _Count:
    """Connections dropped at the cap, logged once per burst rather than once each."""

    def __init__(self) -> None:
        self.dropped = 0
        self.logged_at = -1e9


def bounded_protocol(cap: int, header_seconds: float | None = None) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the cap and the header deadline above (for ``Config(http=...)``)."""
    count = _Count()
    deadline = HEADER_SECONDS if header_seconds is None else header_seconds

    class Bounded(H11Protocol):
        refused = False
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= cap:
                self.refused = True
                transport.abort()  # its descriptor is closed at once
                count.dropped += 1
                now = self.loop.time()
                if now - count.logged_at > 60.0:
                    count.logged_at = now
                    log.warning("web view: %d connections open already: dropping new ones (%d so far)",
                                cap, count.dropped)  # fmt: skip
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers are due as the first one's were

        def _arm(self) -> None:
            self._disarm()
            self.header_timer = self.loop.call_later(deadline, self._headers_due)

        def _disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _headers_due(self) -> None:
            self.header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.abort()  # no whole request came: not even a 408 is owed

    return Bounded


def uvicorn_limits(cap: int) -> dict[str, Any]:
    """The matching ``uvicorn.Config`` arguments."""
    return {
        "http": bounded_protocol(cap),
        "limit_concurrency": cap + 1,  # requests being answered (the connection cap comes first)
        "backlog": BACKLOG,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
