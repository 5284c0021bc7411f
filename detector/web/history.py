"""The web view's look back: the history page and the event store's API (the same token and Host rules
as every other route: ``server.Guard`` wraps them all).

    /history                       the page (review items, filters, the clip player)
    /history.js, /history.css      its script and style
    /api/reviews                   review items, newest first: ?source=&severity=&class=&zone=&after=
                                   &before=&limit=&cursor= (after/before: Unix seconds, an ISO date or
                                   time, or how long ago: 90s, 15m, 2h, 3d)
    /api/reviews/{id}              one item, with its event records and media
    /api/reviews/{id}/thumbnail.jpg  its best shot
    /api/events, /api/events/{id}  event records: ?source=&kind=&class=&zone=&line=&review=&after=
                                   &before=&limit=&cursor=
    /api/facets                    what the filters offer: sources, classes, zones, first/last item
    /media/{n}/{name}              a clip, snapshot or segment the store lists (row n, named name)

``/media`` serves only files the store lists, found by their row, and only when ``name`` is the
file's own name: no path from a request ever reaches the file system. Nor is a row's path trusted: only
a regular file inside the store's folder (or the run's own media folders), reached through no symlink,
is served (``web.media``); any other row is 404 and one warning. It answers Range requests
(206: browsers seek clips with them), with the file's Content-Type and an ETag (a matching
If-None-Match gets 304). The store is read on a worker thread (``run_in_threadpool``), never on the
event loop that streams the live video. A run without a store answers 404 here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from detector.errors import UserError
from detector.eventstore.filters import BadQuery, EventQuery, ReviewQuery, read_time
from detector.eventstore.queries import StoreReader
from detector.web.feeds import Board
from detector.web.media import FdFileResponse, Gone, Refused, open_media
from detector.web.pages import CSS, JS, Page, json_response

HISTORY_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {"/history.js": JS, "/history.css": CSS}  # and the live page's /common.js (web.server)
MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".m4v": "video/mp4"}
SEVERITIES = ("alert", "detection")
log = logging.getLogger(__name__)


def _media_url(media: dict[str, Any] | None) -> str | None:
    return None if media is None else f"/media/{media['id']}/{quote(media['name'])}"


def with_urls(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the API gives it: the store's row references made into the URLs that serve them."""
    out = dict(item)
    thumbnail = out.pop("thumbnail", False)
    out["thumbnail_url"] = f"/api/reviews/{item['id']}/thumbnail.jpg" if thumbnail else None
    clip = item.get("clip")
    out["clip"] = None if clip is None else {**clip, "url": _media_url(clip)}
    if "media" in item:
        out["media"] = [{**m, "url": _media_url(m)} for m in item["media"]]
    return out


def event_with_urls(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out["snapshot_url"] = _media_url(out.pop("snapshot_media", None))
    out["clip_url"] = _media_url(out.pop("clip_media", None))
    return out


class History:
    """The routes above, over whichever store the run writes (``board.store``, set once it has one)."""

    def __init__(self, board: Board, token: str | None) -> None:
        self.board = board
        self.page = Page("/history", "history.html", HISTORY_CSP, ASSETS, token)
        self._reader: StoreReader | None = None
        self._warned: set[int] = set()  # media rows refused (and logged) once already

    def routes(self) -> list[Route]:
        return [
            *self.page.routes(),
            Route("/api/reviews", self.reviews),
            Route("/api/reviews/{review_id}", self.review),
            Route("/api/reviews/{review_id}/thumbnail.jpg", self.thumbnail),
            Route("/api/events", self.events),
            Route("/api/events/{event_id}", self.event),
            Route("/api/facets", self.facets),
            Route("/media/{media_id}/{name}", self.media, methods=["GET", "HEAD"]),
        ]

    def reader(self) -> StoreReader:
        path = self.board.store
        if path is None:
            raise HTTPException(404, "this run keeps no event store (give --clips DIR or --events-db FILE)")
        if self._reader is None or self._reader.path != path:
            self._reader = StoreReader(path)
        return self._reader

    async def _read(self, query: Callable[[StoreReader], Any]) -> Any:
        reader = self.reader()
        try:
            return await run_in_threadpool(query, reader)
        except BadQuery as exc:
            raise HTTPException(400, str(exc)) from exc
        except UserError as exc:  # an older store, until the run's first write migrates it
            raise HTTPException(503, str(exc)) from exc

    # -- the API ------------------------------------------------------------------------------------------
    async def reviews(self, request: Request) -> Response:
        p = request.query_params
        try:
            severity = p.get("severity") or None
            if severity is not None and severity not in SEVERITIES:
                raise BadQuery(f"severity is alert or detection, not {severity!r}")
            names = {"source": "source", "severity": "severity", "class_name": "class", "zone": "zone"}
            q = ReviewQuery(**_listing(p, **names))
        except BadQuery as exc:
            raise HTTPException(400, str(exc)) from exc
        items, cursor = await self._read(lambda r: r.reviews(q))
        return json_response({"items": [with_urls(i) for i in items], "next": cursor})

    async def review(self, request: Request) -> Response:
        review_id = request.path_params["review_id"]
        item = await self._read(lambda r: r.review(review_id))
        if item is None:
            gone = await self._read(lambda r: r.deleted(review_id))
            if gone is None:
                raise HTTPException(404, f"no review item {review_id!r}")
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(gone["deleted_at"]))
            detail = f"review item {review_id!r} was deleted by {gone['reason']} on {when}"
            return json_response({"detail": detail, "deleted_time": gone["deleted_at"], **gone}, status=404)
        item["records"] = [event_with_urls(e) for e in item["records"]]
        return json_response(with_urls(item))

    async def thumbnail(self, request: Request) -> Response:
        review_id = request.path_params["review_id"]
        jpeg = await self._read(lambda r: r.thumbnail(review_id))
        if jpeg is None:
            raise HTTPException(404, f"no thumbnail for {review_id!r}")
        return Response(jpeg, media_type="image/jpeg")

    async def events(self, request: Request) -> Response:
        p = request.query_params
        names = {"source": "source", "kind": "kind", "class_name": "class", "zone": "zone", "line": "line"}
        try:
            q = EventQuery(**_listing(p, review="review", **names))
        except BadQuery as exc:
            raise HTTPException(400, str(exc)) from exc
        records, cursor = await self._read(lambda r: r.events(q))
        return json_response({"items": [event_with_urls(e) for e in records], "next": cursor})

    async def event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        record = await self._read(lambda r: r.event(event_id))
        if record is None:
            raise HTTPException(404, f"no event {event_id!r}")
        return json_response(event_with_urls(record))

    async def facets(self, request: Request) -> Response:
        return json_response(await self._read(lambda r: r.facets()))

    async def media(self, request: Request) -> Response:
        number, name = request.path_params["media_id"], request.path_params["name"]
        if not (number.isascii() and number.isdigit() and len(number) < 20):  # a row id: 1 to 2^63 - 1
            return PlainTextResponse("404 not found: the store lists no such file\n", status_code=404)
        media_id = int(number)
        found = await self._read(lambda r: r.media(media_id))
        if found is None or PurePosixPath(found[0]).name != name:
            return PlainTextResponse("404 not found: the store lists no such file\n", status_code=404)
        store = self.reader().root
        try:
            fd, st = await run_in_threadpool(open_media, found[0], store, list(self.board.media_roots))
        except Refused as exc:
            if media_id not in self._warned:  # once per row: a hostile store is not a flood of lines
                self._warned.add(media_id)
                log.warning("/media: not serving row %d of %s: %s", media_id, self.board.store, exc)
            return PlainTextResponse("404 not found: the store lists no such file\n", status_code=404)
        except Gone:
            return PlainTextResponse("404 not found: the file is gone\n", status_code=404)
        media_type = MEDIA_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")
        response = FdFileResponse(fd, st, media_type=media_type)
        etag = response.headers.get("etag")
        wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        if etag and (etag in wanted or "*" in wanted):
            response.close()
            return Response(status_code=304, headers={"ETag": etag})
        return response


def _listing(p: QueryParams, **filters: str) -> dict[str, Any]:
    """A list's query (``filters``: the query's field -> its parameter), its times and its page."""
    out: dict[str, Any] = {field: p.get(name) or None for field, name in filters.items()}
    out.update(after=_time(p.get("after")), before=_time(p.get("before")), limit=_int(p.get("limit"), 50))
    out["cursor"] = p.get("cursor") or None
    return out


def _int(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BadQuery(f"expected a whole number, got {text!r}") from None


def _time(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return read_time(text, time.time())
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
