"""The web view's pages: a packaged HTML page and the scripts and styles it loads, each read once from
``detector/web/static/`` and served at its own path (never a file named by a request), and the JSON
answer every API route gives.

    page = Page("/history", "history.html", HISTORY_CSP, {"/history.js": JS}, token)
    routes = [*page.routes(), ...]

The page's ``{{query}}`` markers become ``?token=...`` when the server has a token, so the assets it
loads pass the same check as the page; the page goes out with its Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from detector.sinks.jsonl import dumps_line

JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"


def static(name: str) -> bytes:
    return (resources.files("detector.web") / "static" / name).read_bytes()


def json_response(data: Any, status: int = 200) -> Response:
    return Response(dumps_line(data), status_code=status, media_type="application/json")


class Page:
    def __init__(self, path: str, html: str, csp: str, assets: Mapping[str, str], token: str | None) -> None:
        self.path = path
        self.html = static(html)
        self.csp = csp
        self.types = dict(assets)  # path -> Content-Type
        self.assets = {p: static(p.lstrip("/")) for p in assets}
        self.token = token

    def routes(self) -> list[Route]:
        return [Route(self.path, self.page), *(Route(p, self.asset) for p in self.assets)]

    async def page(self, request: Request) -> Response:
        token = request.query_params.get("token") if self.token else None
        query = f"?token={quote(token, safe='')}" if token else ""
        body = self.html.replace(b"{{query}}", query.encode("ascii"))
        headers = {"Content-Security-Policy": self.csp}
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def asset(self, request: Request) -> Response:
        path = request.url.path
        return Response(self.assets[path], media_type=self.types[path])
