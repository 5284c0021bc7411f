"""The event store's API on the web view, against a generated store of 100,000 events (about 25,000
review items over 10 days, tests/store_data.py), over real loopback HTTP: every page of every filter
is what a brute-force reading of the generated items says, clips are served with Range, Content-Type
and ETag, no request reaches a file the store does not list, and the token and Host rules hold.

Runtime: ~30 s (generating the store takes most of it). Latencies are measured in tests/measure_store.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import write_clip
from store_data import DAYS, END, Item, add_clip, make_store
from web_client import get

from detector.web.config import ServeConfig
from detector.web.view import WebView

TOKEN = "s3cret-Token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("store")
    path = folder / "events.db"
    items = make_store(path)
    clip = write_clip(folder / "front-clip-real.mp4", frames=60)
    (folder / "secret.txt").write_text("root:x:0:0 not for the web\n")
    media = add_clip(path, clip)
    view = WebView(ServeConfig("127.0.0.1", 0, token=TOKEN))
    view.set_store(path)
    view.start()
    assert view.url is not None
    yield {"url": view.url, "items": items, "path": path, "clip": clip, "media": media}
    view.close()


def api(big: dict[str, Any], path: str, **params: Any) -> Any:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    reply = get(big["url"], f"{path}?{query}" if query else path, AUTH)
    assert reply.status == 200, (path, params, reply.status, reply.body[:300])
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


def walk(big: dict[str, Any], path: str, limit: int = 500, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following ``next``."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = api(big, path, limit=limit, cursor=cursor, **params)
        assert len(page["items"]) <= limit
        out += page["items"]
        cursor = page["next"]
        if cursor is None:
            return out
    raise AssertionError("no end to the pages")


def newest_first(items: list[Item]) -> list[str]:
    return [i.id for i in sorted(items, key=lambda i: (i.start, i.id), reverse=True)]


def test_the_generated_store_has_100000_events(big: dict[str, Any]) -> None:
    items: list[Item] = big["items"]
    assert sum(len(i.events) for i in items) == 100_000 and len(items) > 20_000


def test_paging_through_every_item_gives_each_once_newest_first(big: dict[str, Any]) -> None:
    got = walk(big, "/api/reviews")
    assert [i["id"] for i in got] == newest_first(big["items"])
    first = got[0]
    assert first["thumbnail_url"] == f"/api/reviews/{first['id']}/thumbnail.jpg"
    assert first["clip"]["url"].startswith("/media/") and not first["in_progress"]
    page = api(big, "/api/reviews")
    assert len(page["items"]) == 50, "50 by default"


@pytest.mark.parametrize(
    "params",
    [
        {"source": "yard"},
        {"severity": "detection"},
        {"class": "dog"},
        {"zone": "porch"},
        {"class": "bicycle", "zone": "street"},
        {"source": "front", "severity": "alert", "class": "person"},
        {"after": END - 5 * 86400, "before": END - 4 * 86400},
        {"after": END - 3 * 86400, "before": END - 2 * 86400, "source": "back", "class": "car"},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_each_filter_narrows_to_exactly_the_matching_items(
    big: dict[str, Any], params: dict[str, Any]
) -> None:
    def matches(i: Item) -> bool:
        return (
            params.get("source", i.source) == i.source
            and params.get("severity", i.severity) == i.severity
            and ("class" not in params or params["class"] in i.objects)
            and ("zone" not in params or params["zone"] in i.zones)
            and ("after" not in params or i.end >= params["after"])
            and ("before" not in params or i.start < params["before"])
        )

    expected = newest_first([i for i in big["items"] if matches(i)])
    assert 0 < len(expected) < len(big["items"]) / 2, "a filter that narrows"
    got = walk(big, "/api/reviews", limit=200, **params)
    assert [i["id"] for i in got] == expected


def test_events_page_by_cursor_and_filter(big: dict[str, Any]) -> None:
    everything = [e for i in big["items"] for e in i.events]
    dogs = sorted((e["id"] for e in everything if e["class"] == "dog"), reverse=True)
    got = walk(big, "/api/events", limit=500, **{"class": "dog"})
    assert [e["id"] for e in got] == dogs and all(e["class_name"] == "dog" for e in got)
    day = (END - 6 * 86400, END - 5 * 86400)
    in_day = sorted((e["id"] for e in everything if day[0] <= e["time"] < day[1]), reverse=True)
    got = walk(big, "/api/events", limit=500, after=day[0], before=day[1])
    assert [e["id"] for e in got] == in_day
    enters = walk(big, "/api/events", limit=500, kind="zone_enter", zone="porch", source="drive")
    assert enters and all(e["event"] == "zone_enter" and e["zone"] == "porch" for e in enters)
    one = api(big, f"/api/events/{dogs[0]}")
    assert one["id"] == dogs[0] and one["review_id"] and one["clip_url"].startswith("/media/")


def test_one_item_with_its_events(big: dict[str, Any]) -> None:
    item: Item = big["items"][1234]
    got = api(big, f"/api/reviews/{item.id}")
    assert got["id"] == item.id and got["objects"] == list(item.objects) and got["zones"] == list(item.zones)
    assert [r["id"] for r in got["records"]] == [e["id"] for e in item.events]
    assert got["media"][0]["kind"] == "clip"
    thumb = get(big["url"], got["thumbnail_url"], AUTH)
    assert (
        thumb.status == 200
        and thumb.headers["content-type"] == "image/jpeg"
        and thumb.body[:2] == b"\xff\xd8"
    )
    assert get(big["url"], "/api/reviews/nope", AUTH).status == 404
    assert get(big["url"], "/api/events/nope", AUTH).status == 404


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=ten", "cursor=garbage", "severity=urgent", "after=yesterday-ish"],
)
def test_a_bad_query_is_400_with_the_reason(big: dict[str, Any], query: str) -> None:
    reply = get(big["url"], f"/api/reviews?{query}", AUTH)
    assert reply.status == 400 and len(reply.body.splitlines()) == 1, (query, reply.status, reply.body)


def test_facets_list_what_the_filters_offer(big: dict[str, Any]) -> None:
    got = api(big, "/api/facets")
    assert got["sources"] == ["back", "drive", "front", "yard"]
    assert got["classes"] == ["bicycle", "car", "dog", "person"] and got["zones"] == [
        "driveway",
        "porch",
        "street",
    ]
    starts = [i.start for i in big["items"]]
    assert got["first"] == pytest.approx(min(starts)) and got["last"] == pytest.approx(max(starts))
    assert got["last"] - got["first"] == pytest.approx(DAYS * 86400, rel=0.01)


def media_url(big: dict[str, Any]) -> str:
    return f"/media/{big['media']}/{big['clip'].name}"


def test_a_clip_is_served_with_range_content_type_and_etag(big: dict[str, Any]) -> None:
    data = big["clip"].read_bytes()
    whole = get(big["url"], media_url(big), AUTH)
    assert whole.status == 200 and whole.body == data
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    part = get(big["url"], media_url(big), {**AUTH, "Range": "bytes=100-1099"})
    assert part.status == 206 and part.body == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}" and part.headers["etag"] == etag
    tail = get(big["url"], media_url(big), {**AUTH, "Range": "bytes=-500"})
    assert tail.status == 206 and tail.body == data[-500:]
    beyond = get(big["url"], media_url(big), {**AUTH, "Range": f"bytes={len(data) + 10}-"})
    assert beyond.status == 416
    same = get(big["url"], media_url(big), {**AUTH, "If-None-Match": etag})
    assert same.status == 304 and same.body == b""


def test_media_serves_only_what_the_store_lists(big: dict[str, Any]) -> None:
    n, name = big["media"], big["clip"].name
    attempts = [
        f"/media/{n}/events.db",
        f"/media/{n}/secret.txt",
        f"/media/{n}/..%2Fsecret.txt",
        f"/media/{n}/../secret.txt",
        f"/media/{n}/%2e%2e/%2e%2e/etc/passwd",
        f"/media/{n}/..%2f..%2fetc%2fpasswd",
        f"/media/{n}/{name}/../../secret.txt",
        f"/media/{n}/{name}%00.txt",
        "/media/../events.db",
        "/media/secret.txt",
        f"/media/{name}",
        "/media/0/x.mp4",
        "/media/-1/x.mp4",
        "/media/99999999/x.mp4",
        f"/media/{n}x/{name}",
        "/media/1/front-clip-000001.mp4",  # listed, but gone from the disk
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media//etc/passwd",
        "/media/1/%2Fetc%2Fpasswd",
    ]
    for path in attempts:
        reply = get(big["url"], path, AUTH)
        assert reply.status == 404, (path, reply.status)
        assert b"root:" not in reply.body and b"SQLite" not in reply.body, path


def test_every_route_needs_the_token(big: dict[str, Any]) -> None:
    item: Item = big["items"][0]
    paths = [
        "/history",
        "/history.js",
        "/api/reviews",
        f"/api/reviews/{item.id}",
        f"/api/reviews/{item.id}/thumbnail.jpg",
        "/api/events",
        "/api/facets",
        media_url(big),
    ]
    for path in paths:
        refused = get(big["url"], path)
        assert refused.status == 401 and "www-authenticate" in refused.headers, path
        assert get(big["url"], path, {"Authorization": "Bearer wrong"}).status == 401, path
        assert get(big["url"], path, AUTH).status == 200, path
        sep = "&" if "?" in path else "?"
        assert get(big["url"], f"{path}{sep}token={TOKEN}").status == 200, path
        assert get(big["url"], path, AUTH).headers["cache-control"] == "no-store"


def test_without_a_token_only_this_machine_may_ask(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    make_store(path, events=200)
    view = WebView(ServeConfig("127.0.0.1", 0, token=None))
    view.set_store(path)
    view.start()
    try:
        assert view.url is not None
        for route in ("/history", "/api/reviews", "/api/events", "/api/facets"):
            assert get(view.url, route, {"Host": "evil.example"}).status == 403, route
            assert get(view.url, route).status == 200, route
    finally:
        view.close()


def test_a_run_without_a_store_answers_404(tmp_path: Path) -> None:
    view = WebView(ServeConfig("127.0.0.1", 0, token=None)).start()
    try:
        assert view.url is not None
        reply = get(view.url, "/api/reviews")
        assert reply.status == 404 and b"no event store" in reply.body
        assert get(view.url, "/media/1/x.mp4").status == 404
    finally:
        view.close()
