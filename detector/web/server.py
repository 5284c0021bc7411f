"""The HTTP side of the web view: a Starlette app served by uvicorn on a thread of its own.

Routes (every other path is 404; only the packaged page and its assets are served, never a
file named by a request):

    /              the page           /stream.mjpg   MJPEG (?source=NAME)   /snapshot.jpg  newest frame
    /app.js        its script         /events        Server-Sent Events     /api/status    JSON
    /style.css     its style          /metrics       Prometheus text        /healthz       200 / 503
    /common.js     helpers it shares with the history page

and the history page with the event store's API and media (``web.history``).

The socket is bound here, on the caller's thread, so a taken port is a ``UserError`` before the
model loads. ``close`` ends every stream, stops uvicorn (a viewer that never reads is cut off after
``GRACE_SECONDS``) and gives up on the thread after ``JOIN_SECONDS``: the run never waits on a viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detector.errors import UserError
from detector.web.broadcast import BOUNDARY, JpegFeed, Relay, Slots, Subscriber, lower_priority
from detector.web.config import ServeConfig, is_loopback
from detector.web.connections import connection_cap, uvicorn_limits
from detector.web.feeds import Board, Feed
from detector.web.history import History
from detector.web.metrics import CONTENT_TYPE, Metrics
from detector.web.pages import CSS, JS, Page, json_response
from detector.web.status import build_health, build_status
from detector.web.streams import Held, queued_bytes

log = logging.getLogger(__name__)

GRACE_SECONDS = 0.5  # uvicorn's graceful shutdown: then streams still open are cancelled
JOIN_SECONDS = 1.2  # then the server thread is left behind (a daemon)
STUCK_SECONDS = 60.0  # a stream that could not send for this long is cut off, its slot given back
KEEPALIVE_SECONDS = 15.0
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {"/app.js": JS, "/style.css": CSS, "/common.js": JS}  # common.js: helpers the history page uses too
EVERY_RESPONSE = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),  # another site cannot embed the stream
]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a ``UserError`` that names the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UserError(f"--serve: cannot resolve {host}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UserError(f"--serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _loopback_host(scope: Scope) -> bool:
    """The request's Host names this machine (127.x, localhost, [::1]), with or without a port, and
    nothing else: ``127.0.0.1:80@evil.com`` or a port that is no port (``:99999``) is refused."""
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
    if host.startswith("["):
        end = host.find("]")
        name, port = (host[1:end], host[end + 1 :]) if end > 0 else ("", "")
    else:
        name, colon, rest = host.partition(":")
        port = colon + rest
    digits = port[1:]
    if port and not (port[0] == ":" and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()):
        return False
    if digits and int(digits) > 65535:
        return False
    return is_loopback(name)


class Guard:
    """Every response: ``nosniff`` and ``no-store``; with a token, 401 for a request without it
    (``Authorization: Bearer`` or ``?token=``), compared in constant time. Without a token (loopback
    only), a request whose Host is not this machine is refused: a web page cannot use DNS rebinding
    to read the stream through a visitor's browser."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    def authorized(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        given: list[bytes] = []
        for key, value in scope.get("headers", []):
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given += [t.encode("utf-8", "surrogateescape") for t in query.get("token", [])]
        ok = False
        for candidate in given:  # each compared in full, whatever the others gave
            ok |= hmac.compare_digest(candidate, self.token)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        extra = EVERY_RESPONSE

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        if self.token is None and not _loopback_host(scope):
            refusal = PlainTextResponse("403 forbidden: this web view answers to 127.0.0.1 only\n", 403)
            await refusal(scope, receive, send_guarded)
            return
        if not self.authorized(scope):
            refusal = PlainTextResponse(
                "401 unauthorized: give the token (Authorization: Bearer TOKEN, or ?token=TOKEN)\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="detector"'},
            )
            await refusal(scope, receive, send_guarded)
            return
        await self.app(scope, receive, send_guarded)


def _busy(what: str, limit: int) -> Response:
    text = f"503 busy: {limit} {what} are open already (--serve-max-viewers)\n"
    return PlainTextResponse(text, status_code=503, headers={"Retry-After": "5"})


class WebServer:
    def __init__(self, board: Board, config: ServeConfig) -> None:
        self.board = board
        self.config = config
        self.sock = _bind(config.host, config.port)
        self.url = f"http://{config.url_host}:{self.sock.getsockname()[1]}/"
        self.video = Slots(config.max_viewers)
        self.streams = Slots(config.max_viewers)
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="web-jpeg", initializer=lower_priority)
        self.metrics = Metrics(board, self.viewer_counts, self.encodes)
        self.page = Page("/", "index.html", PAGE_CSP, ASSETS, config.token)
        self.history = History(board, config.token)
        app = Starlette(routes=self._routes())
        uv_config = uvicorn.Config(
            Guard(app, config.token),
            **uvicorn_limits(connection_cap()),  # idle clients cannot take the recording's descriptors
            loop="asyncio",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACE_SECONDS,  # type: ignore[arg-type]  # a float works
        )
        self.server = uvicorn.Server(uv_config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = asyncio.Event()
        self.relay: Relay | None = None
        self.held: set[Held] = set()  # the open streams
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="web", daemon=True)
        self.thread.start()
        if not self._ready.wait(10.0) or self.relay is None:
            self.close()
            raise RuntimeError(f"the web server did not start: {self._error}")
        for feed in board.sources():
            self.attach(feed)

    # -- the thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # logged: the run goes on without its web view
            self._error = exc
            log.error("web view stopped: %s", exc)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.relay = Relay(self.loop, lambda: len(self.board.feeds) > 1)
        self._ready.set()
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            watchdog.cancel()
            self._abort()

    def _abort(self, client: tuple[str, int] | None = None) -> None:
        """Drop the connection of ``client`` (all when None) at once, unsent bytes and all; its
        stream then ends as if the viewer had gone (uvicorn's connections, found by address)."""
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and (client is None or getattr(connection, "client", None) == client):
                transport.abort()

    def _transports(self) -> dict[Any, Any]:
        """uvicorn's open connections: client address -> transport."""
        found = {}
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                found[getattr(connection, "client", None)] = transport
        return found

    async def _watchdog(self) -> None:
        """Cut off streams whose viewer took nothing for ``STUCK_SECONDS``: a slot is not held forever."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, STUCK_SECONDS / 4))
            transports = self._transports()
            for held in list(self.held):
                transport = transports.get(held.client)
                queued = queued_bytes(transport) if transport is not None else None
                if held.client is not None and held.stuck_for(loop.time(), queued) > STUCK_SECONDS:
                    log.info("web view: cutting off %s:%d, stuck for %.0f s", *held.client, STUCK_SECONDS)
                    self._abort(held.client)

    async def _wind_down(self) -> None:
        """End every stream: those that can finish do, the rest (stuck viewers) are cut off."""
        self.closing.set()
        if self.relay is not None:
            for sub in self.relay.subscribers:
                sub.wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.3
        while self.held and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._abort()

    def attach(self, feed: Feed) -> None:
        """Serve a source (from the run's thread)."""
        assert self.relay is not None
        self.relay.jpeg[feed.name] = JpegFeed(
            feed, self.executor, self.config.width, self.config.jpeg_quality, self.closing
        )
        self.metrics.attach(feed)
        feed.listener = self.relay

    def close(self) -> None:
        """End every stream and stop serving, without waiting on any viewer for long."""
        self.metrics.detach()
        for feed in self.board.sources():
            feed.listener = None
        if self.loop is not None and self.thread.is_alive():
            with contextlib.suppress(Exception):  # the loop has ended, or winding down took too long
                asyncio.run_coroutine_threadsafe(self._wind_down(), self.loop).result(timeout=1.0)
        self.server.should_exit = True
        self.thread.join(JOIN_SECONDS)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(0.3)
        self.executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- figures ----------------------------------------------------------------------------------------
    def viewer_counts(self) -> dict[str, int]:
        return {"video": self.video.taken, "events": self.streams.taken, "max": self.config.max_viewers}

    def encodes(self) -> int:
        return sum(j.encodes for j in self.relay.jpeg.values()) if self.relay else 0

    # -- routes -----------------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        return [
            *self.page.routes(),
            Route("/stream.mjpg", self.stream),
            Route("/snapshot.jpg", self.snapshot),
            Route("/events", self.events),
            Route("/api/status", self.status),
            Route("/metrics", self.prometheus),
            Route("/healthz", self.health),
            *self.history.routes(),
        ]

    def _feed(self, request: Request) -> JpegFeed | None:
        """The source a request names (``?source=``, 404 if unknown), else the first (None: none yet)."""
        assert self.relay is not None
        name = request.query_params.get("source")
        feeds = self.relay.jpeg
        if name is not None:
            if name not in feeds:
                known = ", ".join(feeds) or "none yet"
                raise HTTPException(404, f"no source named {name!r}; there are: {known}")
            return feeds[name]
        return next(iter(feeds.values()), None)

    async def _first_source(self) -> JpegFeed | None:
        """Wait while the run starts (the model loads, the source connects); None if it ends first."""
        assert self.relay is not None
        while not self.relay.jpeg and not self.closing.is_set():
            await asyncio.sleep(0.1)
        return next(iter(self.relay.jpeg.values()), None)

    async def stream(self, request: Request) -> Response:
        chosen = self._feed(request)
        if not self.video.acquire():
            return _busy("video streams", self.config.max_viewers)

        async def parts() -> AsyncIterator[bytes]:
            jpeg = chosen or await self._first_source()  # a viewer may come before the source does
            seq = 0
            while jpeg is not None and (got := await jpeg.next(seq)) is not None:
                seq = got.seq
                yield got.part()

        media = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        return Held(parts(), self.video.release, self.held, media_type=media)

    async def snapshot(self, request: Request) -> Response:
        jpeg = self._feed(request)
        got = await jpeg.newest() if jpeg is not None else None
        if got is None:
            return PlainTextResponse("503 no frame yet\n", status_code=503, headers={"Retry-After": "1"})
        return Response(got.data, media_type="image/jpeg", headers={"X-Frame": str(got.frame)})

    async def events(self, request: Request) -> Response:
        assert self.relay is not None
        relay = self.relay
        name = request.query_params.get("source")
        if name is not None and name not in self.board.feeds:
            raise HTTPException(404, f"no source named {name!r}")
        if not self.streams.acquire():
            return _busy("event streams", self.config.max_viewers)
        sub = Subscriber(name)
        relay.subscribe(sub)

        def release() -> None:
            relay.unsubscribe(sub)
            self.streams.release()

        async def lines() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"
            while not self.closing.is_set():
                data = await sub.take(KEEPALIVE_SECONDS)
                yield data or b": keep-alive\n\n"

        headers = {"X-Accel-Buffering": "no"}
        return Held(lines(), release, self.held, media_type="text/event-stream", headers=headers)

    async def status(self, request: Request) -> Response:
        return json_response(build_status(self.board, self.viewer_counts()))

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def health(self, request: Request) -> Response:
        ok, body = build_health(self.board)
        return json_response(body, 200 if ok else 503)
