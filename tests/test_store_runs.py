"""The event store of real runs: the real model on the doorway footage, read back like a user would
(``detector events``, the store's rows, the clips decoded), a store without clips, ``--events-db
off``, and a run killed with kill -9 that leaves a consistent store.

Runtime: about 1.5 minutes on 2 cores.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT
from detector_process import DetectorProcess
from test_clips_live import headless_env

from detector.cli import main
from detector.events import from_dict
from detector.eventstore.filters import ReviewQuery
from detector.eventstore.queries import StoreReader
from detector.eventstore.writer import EventStore

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"
DOOR = ["--config", str(ROOT / "configs" / "count-people-doorway.yaml"), "--clip-on", "person"]


@pytest.fixture(scope="module")
def door(model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("door")
    argv = ["run", str(videos_dir / CLIP), "--model", str(model_path), *DOOR, "--max-frames", "700",
            "--clips", str(out / "clips"), "--json", str(out / "door.jsonl"), "-q"]  # fmt: skip
    assert main(argv) == 0
    return {"clips": out / "clips", "db": out / "clips" / "events.db", "json": out / "door.jsonl"}


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rows(db_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def test_the_store_holds_every_event_item_clip_and_snapshot_of_the_run(door: dict[str, Path]) -> None:
    events = [r for r in jsonl(door["json"]) if "event" in r]
    stored = {json.loads(d)["id"]: json.loads(d) for (d,) in rows(door["db"], "SELECT data FROM events")}
    assert len(events) >= 4 and {e["id"]: e for e in events} == stored, "every record, as --json has it"
    reader = StoreReader(door["db"])
    items, _ = reader.reviews(ReviewQuery(limit=500))
    assert len(items) >= 2, "people come one at a time: several items"
    clips = sorted(p.name for p in door["clips"].glob("*-clip-*.mp4"))
    assert sorted(i["clip"]["name"] for i in items) == clips, "one item is one clip"
    for item in items:
        assert item["severity"] == "alert" and item["objects"] == ["person"] and not item["in_progress"]
        detail = reader.review(item["id"])
        assert detail is not None
        for record in detail["records"]:
            if record.get("clip"):
                assert record["clip"] == item["clip"]["name"], "an event's clip is its item's"
        with av.open(str(door["clips"] / item["clip"]["name"])) as c:
            times = [float(f.time) for f in c.decode(c.streams.video[0])]
        assert times[-1] == pytest.approx(item["clip"]["duration"], abs=0.11)
        # The clip covers the item: from `before` (3 s, from a keyframe) ahead to `after` (3 s) past it.
        assert item["media_start"] - item["clip"]["media_start"] >= min(3.0, item["media_start"]) - 0.05
        thumb = cv2.imdecode(np.frombuffer(reader.thumbnail(item["id"]) or b"", np.uint8), cv2.IMREAD_COLOR)
        assert thumb is not None and thumb.shape == (180, 320, 3), "the best shot, 320 px wide"
        best = item["best"]
        assert best["class_name"] == "person" and best["track_id"] in item["tracks"] and best["frame"] >= 0
    snaps = sorted(p.name for p in door["clips"].glob("*-event-*.jpg"))
    assert (
        sorted(Path(p).name for (p,) in rows(door["db"], "SELECT path FROM media WHERE kind = 'snapshot'"))
        == snaps
    )
    assert all(
        e["snapshot_media"] for e in (reader.event(e["id"]) or {} for e in events if e.get("snapshot"))
    )


def test_detector_events_lists_the_items(door: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", str(door["db"])]) == 0
    table = capsys.readouterr().out.splitlines()
    items, _ = StoreReader(door["db"]).reviews(ReviewQuery(limit=500))
    assert table[0].split() == ["start", "length", "source", "severity", "objects", "where", "events", "clip"]
    assert len(table) == len(items) + 1 and all("person" in line for line in table[1:])
    assert any("line door" in line for line in table[1:]), "a crossing names its line"
    assert main(["events", str(door["db"]), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["id"] for x in lines] == [i["id"] for i in items] and lines[0]["clip"]["name"].endswith(".mp4")
    assert (
        main(["events", str(door["db"]), "--json", "--class", "person", "--since", "1d", "--limit", "1"]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["events", str(door["db"]), "--source", "elsewhere"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no review items match" in captured.err
    assert main(["events", str(door["db"]), "--since", "last tuesday"]) == 2
    assert "--since/--until: not a time" in capsys.readouterr().err
    assert main(["events", str(door["db"].with_name("nope.db"))]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_store_without_clips_still_has_items_with_pictures(
    model_path: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "history" / "events.db"
    argv = ["run", str(videos_dir / CLIP), "--model", str(model_path), *DOOR, "--max-frames", "260",
            "--events-db", str(db)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in db.parent.iterdir()) == ["events.db"], "no clips, no snapshots, no WAL left"
    items, _ = StoreReader(db).reviews(ReviewQuery())
    assert items and all(i["clip"] is None and i["thumbnail"] for i in items)
    events = rows(db, "SELECT count(*) FROM events")[0][0]
    summary = capsys.readouterr().err
    assert f"store      {len(items)} review items, {events} events, in {db}" in summary, summary


def test_events_db_off_keeps_no_store_beside_the_clips(
    model_path: Path, videos_dir: Path, tmp_path: Path
) -> None:
    argv = ["run", str(videos_dir / CLIP), "--model", str(model_path), *DOOR, "--max-frames", "120",
            "--clips", str(tmp_path / "clips"), "--events-db", "off", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert list((tmp_path / "clips").glob("*-clip-*.mp4")) and not (tmp_path / "clips" / "events.db").exists()


def test_kill_9_leaves_a_consistent_store(model_path: Path, videos_dir: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    db = clips / "events.db"
    cmd = ["detector", "run", str(videos_dir / CLIP), "--model", str(model_path), *DOOR,
           "--clips", str(clips), "--json", str(tmp_path / "out.jsonl")]  # fmt: skip
    run = DetectorProcess(cmd, tmp_path, headless_env())

    def stored(kind: str) -> int:
        try:
            return int(rows(db, f"SELECT count(*) FROM {kind}")[0][0])
        except sqlite3.Error:
            return 0

    try:
        run.wait_until("a finished clip in the store", lambda: stored("media WHERE kind = 'clip'") >= 1, 240)
        run.wait_until("an open item and 5 events", lambda: stored("reviews WHERE end_time IS NULL") >= 1
                       and stored("events") >= 5, 240)  # fmt: skip
        run.proc.send_signal(signal.SIGKILL)
        assert run.finish(30) == -signal.SIGKILL
    finally:
        run.kill()
    assert (clips / "events.db-wal").exists(), "killed: the WAL was not checkpointed"
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    events = [json.loads(d) for (d,) in rows(db, "SELECT data FROM events")]
    assert len(events) >= 5 and all(from_dict(e).id == e["id"] for e in events), "every row whole"
    reviews = {r for (r,) in rows(db, "SELECT id FROM reviews")}
    assert {r for (r,) in rows(db, "SELECT review_id FROM events WHERE review_id IS NOT NULL")} <= reviews
    for kind, path, review, event in rows(db, "SELECT kind, path, review_id, event_id FROM media"):
        assert (clips / path).is_file(), f"a listed {kind} exists: {path}"
        if kind == "clip":
            assert review in reviews
            with av.open(str(clips / path)) as c:
                assert sum(1 for _ in c.decode(c.streams.video[0])) > 10, "a listed clip is complete"
        else:
            assert rows(db, "SELECT 1 FROM events WHERE id = ?", event), "a snapshot's event is there"
    (item,) = [i for i in StoreReader(db).reviews(ReviewQuery())[0] if i["id"] in
               {r for (r,) in rows(db, "SELECT id FROM reviews WHERE end_time IS NULL")}]  # fmt: skip
    assert not item["in_progress"] and item["end_time"] == item["last_time"], "its run is gone: shown ended"
    later = EventStore(db)  # the next run that writes the store ends it for good
    later.handle("x")
    later.removed([clips / "nothing.mp4"])
    later.close()
    assert rows(db, "SELECT count(*) FROM reviews WHERE end_time IS NULL") == [(0,)]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_a_batchs_inputs_share_one_store(model_path: Path, videos_dir: Path, tmp_path: Path) -> None:
    """``detector batch --events-db``: every worker writes the one store (at once), for
    ``detector serve`` to browse afterwards."""
    db = tmp_path / "events.db"
    config = tmp_path / "people.yaml"
    config.write_text(f"tracker: bytetrack\nclip_on: [person]\nevents_db: {db}\n")
    argv = [
        "batch",
        str(videos_dir / CLIP),
        str(videos_dir / "book.mkv"),
        "-d",
        str(tmp_path / "out"),
        "--model",
        str(model_path),
        "--workers",
        "2",
        "--max-frames",
        "150",
        "-c",
        str(config),
        "-q",
    ]
    assert main(argv) == 0
    items, _ = StoreReader(db).reviews(ReviewQuery())
    assert {i["source"] for i in items} == {"one-by-one-person-detection", "book"}
    assert all(i["objects"] == ["person"] and i["clip"] is None for i in items)
    assert len(rows(db, "SELECT id FROM runs WHERE ended IS NOT NULL")) == 2, "one run per input, both closed"
