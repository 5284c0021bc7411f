"""A clean exit leaves only the store's file: no ``events.db-wal``, no ``events.db-shm`` after a real run
whose web view read the store while it ran, nor after ``detector events`` (the readers' read-only
connections left both behind), and every row is there.

Runtime: about 25 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from detector_process import DetectorProcess
from store_data import make_store, rows
from test_clips_live import headless_env
from test_history_live import served_url
from web_client import get


def store_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("events.db*"))


def test_detector_events_leaves_only_the_store(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    made = make_store(path, events=200)
    assert store_files(tmp_path) == ["events.db"]
    listed = subprocess.run(
        ["detector", "events", str(path), "--json"], capture_output=True, text=True, timeout=60,
        env=headless_env(),
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == len(made)
    assert store_files(tmp_path) == ["events.db"], "no -wal, no -shm"


@pytest.mark.model
def test_a_run_read_by_its_web_view_leaves_only_the_store(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "events.db"
    cmd = ["detector", "run", str(videos_dir / "one-by-one-person-detection.mp4"), "--model", str(model_path),
           "--config", str(ROOT / "configs" / "count-people-doorway.yaml"), "--clip-on", "person",
           "--max-frames", "200", "--no-show", "--events-db", str(db), "--json", str(tmp_path / "out.jsonl"),
           "--serve", "127.0.0.1:0"]  # fmt: skip
    run = DetectorProcess(cmd, tmp_path, headless_env())
    try:
        url = served_url(run)
        read: list[int] = []

        def listed() -> bool:  # the history's API reads the store while the run writes it
            reply = get(url, "/api/reviews")
            read.append(reply.status)
            return reply.status == 200 and bool(reply.json()["items"])

        run.wait_until("an item listed by the API", listed, timeout=90)
        assert run.finish(120) == 0, run.stderr
    finally:
        run.kill()
    assert store_files(tmp_path) == ["events.db"], "no -wal, no -shm"
    events = {r["id"]: r for r in run.records() if "event" in r}
    stored = {json.loads(d)["id"]: json.loads(d) for (d,) in rows(db, "SELECT data FROM events")}
    assert events and stored == events, "every event, whole"
    assert rows(db, "SELECT count(*) FROM runs WHERE ended IS NULL") == [(0,)]
