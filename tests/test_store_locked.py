"""An event store locked by a second process (a real one, holding SQLite's write lock): a real
``detector run`` whose writes wait past the 10 s busy timeout keeps them and writes them once the
lock is gone, so every event of its JSONL is in the store; when they cannot be written within the
bound, what the store counts as lost is what is missing. A clean exit leaves only the store's file.

Runtime: about 30 s on 2 cores (the run waits out one busy timeout of 10 s).
"""

from __future__ import annotations

import json
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from detector_process import DetectorProcess
from store_data import rows
from test_clips_live import headless_env
from test_reviews import WALL0, new_track
from test_store import updates

from detector.events import stamp
from detector.eventstore import writer as writer_mod
from detector.eventstore.schema import connect, migrate
from detector.eventstore.writer import EventStore

LOCKER = """
import select, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2:] == ["exclusive"]:  # the whole file, reading included (WAL: writing alone otherwise)
    db.execute("PRAGMA locking_mode = EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], 120)  # until the test says so (or closes the pipe)
db.execute("ROLLBACK")
db.close()
"""


class Locker:
    """A second process holding the store's write lock until ``release``."""

    def __init__(self, path: Path, *, exclusive: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), *(["exclusive"] if exclusive else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        assert ready and self.proc.stdout.readline() == b"locked\n", "the second process holds the lock"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "events.db"
    db = connect(path)
    migrate(db, path)  # a store that exists (in WAL mode), as after an earlier run
    db.close()
    yield path


@pytest.mark.model
def test_a_run_whose_store_is_locked_past_the_busy_timeout_loses_no_event(
    store_path: Path, model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    """The run's first writes wait 10 s for the lock and fail; once the other process lets go, they
    are written with the next batch: the store holds every event of the JSONL (it lost that batch)."""
    locker = Locker(store_path)
    try:
        cmd = ["detector", "run", str(videos_dir / "one-by-one-person-detection.mp4"), "--model",
               str(model_path), "--config", str(ROOT / "configs" / "count-people-doorway.yaml"),
               "--clip-on", "person", "--max-frames", "300", "--no-show", "--events-db", str(store_path),
               "--json", str(tmp_path / "out.jsonl")]  # fmt: skip
        run = DetectorProcess(cmd, tmp_path, headless_env())
        try:
            run.wait_until(
                "a write that failed on the lock",
                lambda: "cannot write now" in run.stderr or "writes lost" in run.stderr,
                timeout=120,
            )
            locker.release()
            assert run.finish(120) == 0, run.stderr
        finally:
            run.kill()
    finally:
        locker.release()
    assert sorted(p.name for p in tmp_path.glob("events.db*")) == ["events.db"], "no -wal, no -shm"
    events = {r["id"]: r for r in run.records() if "event" in r}
    stored = {json.loads(d)["id"]: json.loads(d) for (d,) in rows(store_path, "SELECT data FROM events")}
    assert len(events) >= 2 and stored == events, "every event of the JSONL, whole"
    assert "locked by another process for more than 10 s" in run.stderr
    summary = [line for line in run.stderr.splitlines() if line.startswith("store ")]
    assert summary and "lost" not in summary[0], summary
    assert rows(store_path, "SELECT count(*) FROM runs WHERE ended IS NULL") == [(0,)], "the run ended"


def quick_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer waits 0.2 s for a lock, not 10 s: a quick test."""
    real_connect = writer_mod.connect

    def quick(path: Path) -> sqlite3.Connection:
        db = real_connect(path)
        db.execute("PRAGMA busy_timeout = 200")
        return db

    monkeypatch.setattr(writer_mod, "connect", quick)


def test_kept_writes_are_written_once_the_lock_is_gone_with_nothing_new(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source that goes quiet while the store is locked: what waits is written within a few seconds
    of the lock going, not at the next event or the end of the run."""
    quick_busy_timeout(monkeypatch)
    locker = Locker(store_path)
    store = EventStore(store_path, flush_seconds=0.05)
    try:
        handle = store.handle("cam")
        for k in range(1, 4):
            handle.event(stamp(new_track(k, k), "cam", WALL0 + k))
        assert store.flush(10) and rows(store_path, "SELECT count(*) FROM events") == [(0,)]
        locker.release()
        deadline = time.monotonic() + 10
        while rows(store_path, "SELECT count(*) FROM events") != [(3,)]:
            assert time.monotonic() < deadline, "the kept events are not written within 10 s"
            time.sleep(0.05)
    finally:
        locker.release()
        store.close()
    assert store.report()["events_db"]["lost"] == 0


def test_what_cannot_be_written_within_the_bound_is_counted_as_what_is_missing(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MAX_KEPT`` operations waiting for the lock, the oldest are lost; what the store counts as
    lost (events, items) is exactly what is missing from it once the lock is gone."""
    quick_busy_timeout(monkeypatch)
    monkeypatch.setattr(writer_mod, "MAX_KEPT", 6)
    locker = Locker(store_path)
    try:
        store = EventStore(store_path, flush_seconds=0.05)
        handle = store.handle("cam")
        sent = [stamp(new_track(k, k), "cam", WALL0 + k) for k in range(1, 9)]
        for record in sent[:4]:
            handle.event(record)
        assert store.flush(10)
        for op in updates(2):  # one item: 3 updates
            store.put(op)
        for record in sent[4:]:
            handle.event(record)
        assert store.flush(10)
        assert store.counts["lost"] > 0, store.counts
    finally:
        locker.release()
    store.close()
    assert sorted(p.name for p in store_path.parent.glob("events.db*")) == ["events.db"], "no -wal, no -shm"
    stored = {i for (i,) in rows(store_path, "SELECT id FROM events")}
    missing = [r.id for r in sent if r.id not in stored]
    report = store.report()["events_db"]
    assert report["lost"] == len(missing) > 0 and report["items_lost"] == 0, report
    assert rows(store_path, "SELECT count(*) FROM reviews") == [(1,)], "the item's last update was kept"
