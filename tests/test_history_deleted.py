"""A deep link to a review item that is gone (a notification's ``/history?review=ID`` after retention
deleted the item) says so in the page, in a real browser, instead of leaving it blank (issue 29,
item 2): ``/api/reviews/ID`` answers 404, the page says "this item no longer exists (deleted)", or,
for an item that retention deleted (its ``deleted_reviews`` row), when it was deleted."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from detector_process import DetectorProcess
from store_data import make_store
from test_clips_live import headless_env
from test_history_live import served_url
from web_client import get, wait_for

TOKEN = "gone-T0ken"
GONE = "01a25200-0000-7000-8000-000000000000"
PRUNED = "01a25200-0000-7000-8000-000000000001"


def test_a_link_to_a_deleted_item_says_it_is_gone(tmp_path: Path, chromium: Any) -> None:
    store = tmp_path / "events.db"
    make_store(store, events=40)
    deleted_at = time.time() - 3600
    with sqlite3.connect(store) as db:  # as rows.delete_review leaves it when retention deletes an item
        db.execute(
            "INSERT INTO deleted_reviews (review_id, source, start_time, deleted_at, reason)"
            " VALUES (?, ?, ?, ?, ?)",
            (PRUNED, "door", deleted_at - 60, deleted_at, "retention"),
        )
    db.close()
    cmd = ["detector", "serve", "--events-db", str(store), "--serve", "127.0.0.1:0", "--serve-token", TOKEN]
    serve = DetectorProcess(cmd, tmp_path, headless_env())
    try:
        url = served_url(serve)
        assert get(url, f"/api/reviews/{GONE}?token={TOKEN}").status == 404
        chromium.get(f"{url}history?review={GONE}&token={TOKEN}")

        def title() -> str:
            return str(chromium.find_element("id", "title").text)

        wait_for("the page to say it is gone", lambda: title() == "this item no longer exists (deleted)")
        assert GONE in chromium.find_element("id", "details").text

        answer = get(url, f"/api/reviews/{PRUNED}?token={TOKEN}")
        assert answer.status == 404
        body = json.loads(answer.body)
        assert body["deleted_time"] == deleted_at and body["reason"] == "retention"
        assert "was deleted by retention on" in body["detail"]
        chromium.get(f"{url}history?review={PRUNED}&token={TOKEN}")
        wait_for("the page to say when", lambda: title().startswith("this item was deleted by retention on "))
    finally:
        serve.proc.send_signal(signal.SIGINT)
        serve.finish(20)
