"""A hostile store and hostile requests against a real ``detector serve`` (issue 30): ``/media`` serves
only regular files inside the store's folder, never through a symlink, an absolute or a ``..`` row;
every numeric query parameter of every API route answers 400 or 404 to NaN, infinities and huge
numbers, never 500; a Host that only starts like this machine's is refused; and ``detector serve``
never writes into a file that is not a store.

Runtime: about 10 s.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_clip
from detector_process import DetectorProcess
from store_data import add_clip, make_store
from test_clips_live import headless_env
from web_client import address, get

from detector.eventstore.rows import MEDIA_SQL

TOKEN = "h0stile-Token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"root:x:0:0 a file outside the store\n"


def served_url(proc: DetectorProcess) -> str:
    found: list[str] = []

    def logged() -> bool:
        found[:] = re.findall(r"web view on (http://127\.0\.0\.1:\d+/)", proc.stderr)
        return bool(found)

    proc.wait_until("the web view's address", logged, timeout=30)
    return found[0]


def add_row(db_path: Path, stored: str, kind: str = "snapshot") -> int:
    """A media row whose path is ``stored`` exactly as written (what a hostile store may hold)."""
    db = sqlite3.connect(db_path)
    try:
        row = (kind, "front", stored, None, None, None, None, 1, None, None, "[]", "{}")
        return int(db.execute(MEDIA_SQL + " RETURNING id", row).fetchone()[0])
    finally:
        db.commit()
        db.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("hostile")
    outside = out / "elsewhere"
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    (outside / "a.jpg").write_bytes(SECRET)
    folder = out / "clips"
    folder.mkdir()
    db = folder / "events.db"
    make_store(db, events=40)
    clip = write_clip(folder / "front-clip-real.mp4", frames=60)
    (folder / "snap.jpg").symlink_to(outside / "passwd")  # a snapshot replaced by a symlink
    (folder / "day").symlink_to(outside, target_is_directory=True)  # a symlinked folder
    os.mkfifo(folder / "fifo.jpg")  # would hang a plain open()
    rows = {
        "clip": add_clip(db, clip),
        "symlink": add_row(db, "snap.jpg"),
        "folder": add_row(db, "day/a.jpg"),
        "absolute": add_row(db, str(outside / "passwd")),
        "etc": add_row(db, "/etc/passwd"),
        "dotdot": add_row(db, "../elsewhere/passwd"),
        "dotdot-etc": add_row(db, "../../../../../../../../etc/hostname"),
        "fifo": add_row(db, "fifo.jpg"),
    }
    cmd = ["detector", "serve", "--events-db", str(db), "--serve", "127.0.0.1:0", "--serve-token", TOKEN]
    serve = DetectorProcess(cmd, out, headless_env())
    try:
        yield {"url": served_url(serve), "rows": rows, "clip": clip, "proc": serve}
        serve.proc.send_signal(signal.SIGINT)
        assert serve.finish(20) == 130, serve.stderr
    finally:
        serve.kill()


def media(served: dict[str, Any], row: str, name: str, headers: dict[str, str] | None = None) -> Any:
    return get(served["url"], f"/media/{served['rows'][row]}/{name}", {**AUTH, **(headers or {})})


@pytest.mark.parametrize(
    ("row", "name"),
    [
        ("symlink", "snap.jpg"),
        ("folder", "a.jpg"),
        ("absolute", "passwd"),
        ("etc", "passwd"),
        ("dotdot", "passwd"),
        ("dotdot-etc", "hostname"),
        ("fifo", "fifo.jpg"),
    ],
)
def test_media_refuses_rows_that_leave_the_store_folder(served: dict[str, Any], row: str, name: str) -> None:
    reply = media(served, row, name)
    assert reply.status == 404, (row, reply.status, reply.body[:100])
    assert b"root:" not in reply.body


def test_each_refused_row_is_one_warning_however_often_it_is_asked(served: dict[str, Any]) -> None:
    for _ in range(3):
        assert media(served, "symlink", "snap.jpg").status == 404
    proc: DetectorProcess = served["proc"]
    row = served["rows"]["symlink"]
    proc.wait_until("the warning", lambda: f"row {row} " in proc.stderr, timeout=5)
    assert proc.stderr.count(f"not serving row {row} ") == 1, proc.stderr


def test_the_store_clip_still_plays_with_range(served: dict[str, Any]) -> None:
    data = served["clip"].read_bytes()
    name = served["clip"].name
    whole = media(served, "clip", name)
    assert whole.status == 200 and whole.body == data and whole.headers["content-type"] == "video/mp4"
    part = media(served, "clip", name, {"Range": "bytes=100-1099"})
    assert part.status == 206 and part.body == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    two = media(served, "clip", name, {"Range": "bytes=0-9,-10"})
    assert two.status == 206 and data[:10] in two.body and data[-10:] in two.body
    same = media(served, "clip", name, {"If-None-Match": whole.headers["etag"]})
    assert same.status == 304


BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400", "-1e309s", "9" * 5000, "1e308d", "-9" * 30, "0x1p9999"]
NUMERIC = {
    "/api/reviews": ("after", "before", "limit"),
    "/api/events": ("after", "before", "limit"),
}


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=[v[:12] for v in BAD_NUMBERS])
def test_numeric_parameters_answer_400_to_nan_infinities_and_huge_numbers(
    served: dict[str, Any], value: str
) -> None:
    for route, names in NUMERIC.items():
        for name in names:
            reply = get(served["url"], f"{route}?{name}={value}", AUTH)
            assert reply.status == 400, (route, name, value, reply.status, reply.body[:200])
            assert len(reply.body.strip().splitlines()) == 1 and b"Traceback" not in reply.body
    reply = get(served["url"], f"/api/reviews?cursor={value}_0190d2e6-0000-7000-8000-000000000000", AUTH)
    assert reply.status == 400, ("cursor", value, reply.status, reply.body[:200])
    for path in (f"/media/{value}/x.mp4", "/media/99999999999999999999999/x", "/media/9223372036854775808/x"):
        reply = get(served["url"], path, AUTH)
        assert reply.status == 404, (path, reply.status)


def test_a_host_that_only_starts_like_this_machine_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    make_store(db, events=20)
    cmd = ["detector", "serve", "--events-db", str(db), "--serve", "127.0.0.1:0"]
    serve = DetectorProcess(cmd, tmp_path, headless_env())
    try:
        url = served_url(serve)
        port = url.rsplit(":", 1)[1].strip("/")
        hosts = ["127.0.0.1:80@evil.com", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:8o", "[::1]x:80"]
        hosts += ["127.0.0.1:80:80", "localhost.evil.com", "127.0.0.1 evil.com", "127.0.0.1:", "[::1"]
        for host in hosts:
            reply = get(url, "/api/facets", {"Host": host})
            assert reply.status in (400, 403, 421), (host, reply.status)
        for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
            assert get(url, "/api/facets", {"Host": host}).status == 200, host
    finally:
        serve.proc.send_signal(signal.SIGINT)
        assert serve.finish(20) == 130, serve.stderr


def test_serve_never_writes_into_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "notes.db"
    empty.write_bytes(b"")
    for cmd in (["serve", "--events-db", str(empty), "--serve", "127.0.0.1:0"], ["events", str(empty)]):
        done = subprocess.run(
            [sys.executable, "-m", "detector", *cmd], capture_output=True, text=True, timeout=60,
            env=headless_env(),
        )  # fmt: skip
        assert done.returncode == 2, (cmd, done.returncode, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "not an event store" in lines[0], done.stderr
        assert empty.read_bytes() == b"", "the empty file was written into"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"], list(tmp_path.iterdir())


def test_serving_media_leaves_no_file_open(served: dict[str, Any]) -> None:
    """Every descriptor /media opens is closed, whether the answer is 200, 206, 304, HEAD or 404."""
    pid = served["proc"].proc.pid
    name = served["clip"].name
    etag = media(served, "clip", name).headers["etag"]

    def open_files() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    before = open_files()
    for _ in range(40):
        assert media(served, "clip", name).status == 200
        assert media(served, "clip", name, {"Range": "bytes=5-50"}).status == 206
        assert media(served, "clip", name, {"If-None-Match": etag}).status == 304
        assert media(served, "symlink", "snap.jpg").status == 404
        assert media(served, "fifo", "fifo.jpg").status == 404
        conn = http.client.HTTPConnection(*address(served["url"]), timeout=10)
        conn.request("HEAD", f"/media/{served['rows']['clip']}/{name}", headers=AUTH)
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.close()
    assert open_files() <= before + 2, (before, open_files())
