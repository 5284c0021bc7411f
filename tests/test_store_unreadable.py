"""A store SQLite cannot read: a damaged file is one line for ``detector events`` and
``detector serve`` (exit 2) and a 503 with its reason in the web view's API (it was a 500, "database
disk image is malformed"); a store another process keeps locked is said to be locked, within the
readers' 2 s busy timeout (it took 10 s, then called it "not an SQLite database").

Runtime: about 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_data import make_store
from test_store_locked import Locker
from user_errors import Capture
from web_client import get

from detector.web.config import ServeConfig
from detector.web.view import WebView


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A real store whose first page (the header and the schema) is whole and every other is garbage,
    as after a disk error or a copy cut short."""
    path = tmp_path / "events.db"
    make_store(path, events=400)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = bytes([0xA5]) * (len(data) - page)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def api(damaged: Path) -> Iterator[str]:
    view = WebView(ServeConfig("127.0.0.1", 0, token=None))
    view.set_store(damaged)
    view.start()
    assert view.url is not None
    try:
        yield view.url
    finally:
        view.close()


def test_a_damaged_store_is_one_line_for_detector_events_and_serve(
    damaged: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cli = Capture(capfd)
    message = cli.error("events", damaged)
    assert message.startswith(f"event store {damaged} is damaged (database disk image is malformed)"), message
    message = cli.error("serve", "--events-db", damaged, "--serve", "127.0.0.1:0")
    assert message.startswith(f"event store {damaged} is damaged"), message


def test_a_damaged_store_answers_503_with_the_reason(api: str, damaged: Path) -> None:
    for path in ("/api/reviews", "/api/events", "/api/facets", "/api/reviews?class=dog"):
        reply = get(api, path)
        assert reply.status == 503, (path, reply.status, reply.body[:200])
        text = reply.body.decode()
        assert f"event store {damaged} is damaged (database disk image is malformed)" in text, text
        assert "Traceback" not in text and text.strip().count("\n") == 0, text


def test_a_store_locked_by_another_process_is_said_to_be_locked(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.db"
    make_store(path, events=40)
    locker = Locker(path, exclusive=True)  # no reader gets in either
    try:
        cli = Capture(capfd)
        started = time.monotonic()
        message = cli.error("events", path)
        took = time.monotonic() - started
    finally:
        locker.release()
    assert message.startswith(f"event store {path} is locked by another process for more than 2 s"), message
    assert "not an SQLite database" not in message
    print(f"said after {took:.1f} s")  # the readers' busy timeout (2 s), not the writer's 10 s
