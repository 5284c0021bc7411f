"""The history page in a real browser (Debian's chromium through Selenium, as in test_web_live.py), on
the store of a real run: the real model on two real clips (people at a door: alerts; bottles on a
line: detections), browsed with ``detector serve`` behind a token; and the live page of a running
stream, whose link opens the history while the items come in.

Runtime: about 2 minutes on 2 cores.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from detector_process import DetectorProcess
from store_data import make_store
from streaming import StreamServer
from test_clips_live import headless_env
from web_client import get, wait_for

from detector.cli import main

pytestmark = pytest.mark.model

TOKEN = "history-T0ken"
DOOR, BOTTLES = "one-by-one-person-detection.mp4", "bottle-detection.mp4"


def served_url(proc: DetectorProcess) -> str:
    found: list[str] = []

    def logged() -> bool:
        found[:] = re.findall(r"web view on (http://127\.0\.0\.1:\d+/)", proc.stderr)
        return bool(found)

    proc.wait_until("the web view's address", logged, timeout=60)
    return found[0]


@pytest.fixture(scope="module")
def history(
    model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("history")
    clips = out / "clips"
    config = out / "gap.yaml"
    config.write_text("review: {gap: 2}\n")  # each person at the door their own item
    common = ["--model", str(model_path), "--track", "--clips", str(clips), "-c", str(config), "-q"]
    # two runs into one store: people (alerts), then bottles alone (detections)
    assert main(["run", str(videos_dir / DOOR), "--clip-on", "person", "--max-frames", "400", *common]) == 0
    assert main(["run", str(videos_dir / BOTTLES), "--classes", "bottle", "--clip-on", "bottle",
                 "--max-frames", "200", *common]) == 0  # fmt: skip
    cmd = ["detector", "serve", "--events-db", str(clips / "events.db"), "--serve", "127.0.0.1:0",
           "--serve-token", TOKEN]  # fmt: skip
    serve = DetectorProcess(cmd, out, headless_env())
    try:
        url = served_url(serve)
        yield {"url": url, "clips": clips, "proc": serve}
    finally:
        serve.proc.send_signal(signal.SIGINT)
        code = serve.finish(20)
        assert code == 130, serve.stderr


def api(history: dict[str, Any], query: str = "") -> list[dict[str, Any]]:
    reply = get(history["url"], f"/api/reviews?limit=500&token={TOKEN}{query}")
    assert reply.status == 200, reply.body
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def shown(driver: Any) -> list[str]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('[data-review-id]')].map(e => e.dataset.reviewId)"
        )
    )


def open_history(driver: Any, history: dict[str, Any]) -> list[dict[str, Any]]:
    items = api(history)
    driver.get(f"{history['url']}history?token={TOKEN}")
    wait_for("every item listed", lambda: shown(driver) == [i["id"] for i in items], timeout=20)
    return items


def test_the_history_lists_the_items_of_the_run_with_thumbnails(
    history: dict[str, Any], chromium: Any
) -> None:
    items = open_history(chromium, history)
    sources = {i["source"] for i in items}
    assert sources == {"one-by-one-person-detection", "bottle-detection"}, "both sources' items"
    assert {i["severity"] for i in items} == {"alert", "detection"}
    loaded = (
        "return [...document.querySelectorAll('[data-review-id] img')].map(i => i.complete && i.naturalWidth)"
    )
    wait_for(
        "the thumbnails to load", lambda: all(w == 320 for w in chromium.execute_script(loaded)), timeout=20
    )
    text = chromium.find_element("css selector", f"[data-review-id='{items[0]['id']}']").text
    assert items[0]["source"] in text and items[0]["severity"] in text
    logs = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs


def test_a_filter_narrows_the_list(history: dict[str, Any], chromium: Any) -> None:
    from selenium.webdriver.support.ui import Select

    everything = open_history(chromium, history)
    alerts = api(history, "&severity=alert")
    assert 0 < len(alerts) < len(everything)
    Select(chromium.find_element("id", "f-severity")).select_by_value("alert")
    wait_for("only the alerts", lambda: shown(chromium) == [i["id"] for i in alerts], timeout=10)
    classes = chromium.execute_script(
        "return [...document.querySelectorAll('[data-review-id]')].map(e => e.className)"
    )
    assert all("alert" in c for c in classes)
    Select(chromium.find_element("id", "f-severity")).select_by_value("")
    wait_for("options of the class filter", lambda: "bottle" in chromium.find_element("id", "f-class").text)
    Select(chromium.find_element("id", "f-class")).select_by_value("bottle")
    bottles = api(history, "&class=bottle")
    assert 0 < len(bottles) < len(everything) and all(i["source"] == "bottle-detection" for i in bottles)
    wait_for("only the bottles", lambda: shown(chromium) == [i["id"] for i in bottles], timeout=10)


def clip_duration(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert c.duration is not None
        return float(c.duration / av.time_base) if c.duration else float(stream.duration * stream.time_base)


def test_a_click_plays_the_clip_with_its_events_marked(history: dict[str, Any], chromium: Any) -> None:
    items = open_history(chromium, history)
    item = next(i for i in items if i["severity"] == "alert")
    chromium.find_element("css selector", f"[data-review-id='{item['id']}']").click()
    player = chromium.find_element("id", "player")
    state = "const v = arguments[0]; return [v.currentTime, v.duration, v.paused, v.readyState, v.currentSrc]"
    wait_for("the clip to start", lambda: chromium.execute_script(state, player)[0] > 0.2, timeout=20)
    first = chromium.execute_script(state, player)
    time.sleep(1.5)
    later = chromium.execute_script(state, player)
    assert later[0] >= first[0] + 1.0, f"currentTime advances: {first[0]} -> {later[0]}"
    assert item["clip"]["url"] in later[4] and f"token={TOKEN}" in later[4]
    expected = clip_duration(history["clips"] / item["clip"]["name"])
    assert later[1] == pytest.approx(expected, abs=0.15), "the clip's whole length"
    detail = get(history["url"], f"/api/reviews/{item['id']}?token={TOKEN}").json()
    ticks = chromium.find_elements("css selector", "#timeline button")
    assert len(ticks) == len(detail["records"]) >= 1, "each event marked on the timeline"
    offsets = sorted(float(t.get_attribute("data-offset")) for t in ticks)
    start = item["clip"]["media_start"]
    assert offsets == pytest.approx(sorted(r["pts"] - start for r in detail["records"]), abs=0.002)
    ticks[-1].click()
    wait_for(
        "a tick to seek there", lambda: abs(chromium.execute_script(state, player)[0] - offsets[-1]) < 1.0
    )


def test_the_keyboard_moves_through_the_items_and_plays_one(history: dict[str, Any], chromium: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    items = open_history(chromium, history)
    assert len(items) >= 2
    body = chromium.find_element("tag name", "body")
    selected = (
        "return [...document.querySelectorAll('[data-review-id]')].map(e => e.getAttribute('aria-selected'))"
    )
    body.send_keys("j")
    wait_for("the first item selected", lambda: chromium.execute_script(selected)[0] == "true", timeout=5)
    chromium.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    wait_for("the second item selected", lambda: chromium.execute_script(selected)[1] == "true", timeout=5)
    chromium.switch_to.active_element.send_keys(Keys.ENTER)
    src = "return document.getElementById('player').currentSrc"
    wait_for(
        "the second item's clip", lambda: items[1]["clip"]["url"] in chromium.execute_script(src), timeout=10
    )
    chromium.switch_to.active_element.send_keys(Keys.ARROW_UP)
    wait_for("back up", lambda: chromium.execute_script(selected)[0] == "true", timeout=5)


def test_usable_on_a_phone_width_screen(history: dict[str, Any], chromium: Any) -> None:
    chromium.set_window_size(390, 844)
    try:
        open_history(chromium, history)
        widths = chromium.execute_script(
            "const r = (s) => document.querySelector(s).getBoundingClientRect();"
            "return [document.documentElement.scrollWidth, window.innerWidth, r('#player').right,"
            " r('[data-review-id]').right, r('[data-review-id] img').width, r('#f-severity').right]"
        )
        page, view, player, item, thumb, select = widths
        assert page <= view, f"no sideways scrolling: {widths}"
        assert player <= view and item <= view and select <= view and thumb >= 80, widths
    finally:
        chromium.set_window_size(1280, 900)


def test_serve_sends_the_live_page_to_the_history(history: dict[str, Any], chromium: Any) -> None:
    chromium.get(f"{history['url']}?token={TOKEN}")
    wait_for("the history page", lambda: "/history" in chromium.current_url, timeout=10)
    assert f"token={TOKEN}" in chromium.current_url


def test_the_live_page_links_to_the_history_of_the_run(
    model_path: Path,
    footage: Callable[[str], Path],
    tmp_path: Path,
    chromium: Any,
) -> None:
    # The doorway, or the sample clip (people in every frame) looped, without the shared footage.
    with StreamServer(footage(DOOR), duration=20.0, lifetime=60.0, loop=True) as server:
        cmd = ["detector", "run", server.url, "--model", str(model_path), "--track", "--clip-on", "person",
               "--clips", str(tmp_path / "clips"), "--serve", "127.0.0.1:0"]  # fmt: skip
        run = DetectorProcess(cmd, tmp_path, headless_env())
        try:
            url = served_url(run)
            chromium.get(url)
            link = chromium.find_element("id", "history")
            wait_for("the history link", link.is_displayed, timeout=20)
            link.click()
            wait_for("the history page", lambda: "/history" in chromium.current_url, timeout=10)
            items = chromium.find_element("id", "items")
            wait_for("an item in progress", lambda: "in progress" in items.text, timeout=40)
            run.proc.send_signal(signal.SIGINT)
            assert run.finish(30) == 130, run.stderr
        finally:
            run.kill()


def test_a_notifications_link_opens_its_item(history: dict[str, Any], chromium: Any) -> None:
    """``notify.url_base``: each notification links to ``/history?review=ID``."""
    items = api(history)
    item = [i for i in items if i["severity"] == "alert" and i["clip"]][-1]  # not the first listed
    chromium.get(f"{history['url']}history?review={item['id']}&token={TOKEN}")
    selected = "return [...document.querySelectorAll('[aria-selected=true]')].map(e => e.dataset.reviewId)"
    wait_for("the linked item chosen", lambda: chromium.execute_script(selected) == [item["id"]], timeout=20)
    player = chromium.find_element("id", "player")
    wait_for("its clip to play", lambda: item["clip"]["url"] in chromium.execute_script(
        "return arguments[0].currentSrc", player), timeout=20)  # fmt: skip


def test_more_lists_each_item_once_however_fast_it_is_clicked(tmp_path: Path, chromium: Any) -> None:
    """A store of more items than a page (generated): two quick clicks on "more" list the second page
    once, not twice."""
    db = tmp_path / "events.db"
    make_store(db, events=1200)  # about 300 items: six pages
    cmd = ["detector", "serve", "--events-db", str(db), "--serve", "127.0.0.1:0", "--serve-token", TOKEN]
    serve = DetectorProcess(cmd, tmp_path, headless_env())
    try:
        url = served_url(serve)
        chromium.get(f"{url}history?token={TOKEN}")
        wait_for("the first page", lambda: len(shown(chromium)) == 50, timeout=20)
        chromium.execute_script("const b = document.getElementById('more'); b.click(); b.click();")
        wait_for("the second page", lambda: len(shown(chromium)) >= 100, timeout=20)
        time.sleep(1.0)  # a second request for the same page would have come back by now
        ids = shown(chromium)
        assert len(ids) == 100 and len(set(ids)) == 100, f"{len(ids)} cards, {len(set(ids))} items"
    finally:
        serve.proc.send_signal(signal.SIGINT)
        assert serve.finish(20) == 130, serve.stderr
