"""Benchmark the event store; not a test.

    PYTHONPATH=. python tests/measure_store.py [--events 100000] [--repeat 30] [--pairs 4] [--frames 700]

1. Queries: a generated store of ``--events`` events (tests/store_data.py: ~1 item per 4 events, 10
   days, 4 sources) is listed 50 items at a time, newest first, for each filter and deep in the
   history, ``--repeat`` times each: through ``StoreReader`` and through the web view's
   ``GET /api/reviews`` on loopback (the whole request, JSON and all). Prints median, p95 and max ms.
2. Size: the store's bytes, per event and per item.
3. CPU: paired runs of the doorway clip with ``--clips`` (so review items and clips in both), with
   the store and with ``--events-db off``, alternating, ``--pairs`` times; each run's CPU time
   (user + system of the process, from ``os.wait4``). Prints each pair's ratio and their median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_data import END, make_store, store_size
from web_client import get

from detector.eventstore.filters import EventQuery, ReviewQuery
from detector.eventstore.queries import StoreReader
from detector.web.config import ServeConfig
from detector.web.view import WebView

ROOT = Path(__file__).resolve().parent.parent
DOORWAY = "/work/shared/videos/one-by-one-person-detection.mp4"
DAY = 86400.0

QUERIES: dict[str, dict[str, Any]] = {
    "newest 50": {},
    "source": {"source": "yard"},
    "severity": {"severity": "detection"},
    "class": {"class": "dog"},
    "zone": {"zone": "porch"},
    "class + zone": {"class": "bicycle", "zone": "street"},
    "source + severity + class": {"source": "front", "severity": "alert", "class": "person"},
    "a day, 5 days back": {"after": END - 5 * DAY, "before": END - 4 * DAY},
    "a day + source + class": {
        "after": END - 3 * DAY,
        "before": END - 2 * DAY,
        "source": "back",
        "class": "car",
    },
}


def stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):6.2f}  p95 {p95:6.2f}  max {ordered[-1]:6.2f} ms"


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    call()  # warm (the page cache, the connection)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def review_query(params: dict[str, Any], cursor: str | None = None) -> ReviewQuery:
    return ReviewQuery(
        source=params.get("source"),
        severity=params.get("severity"),
        class_name=params.get("class"),
        zone=params.get("zone"),
        after=params.get("after"),
        before=params.get("before"),
        limit=50,
        cursor=cursor,
    )


def queries(events: int, repeat: int, folder: Path) -> None:
    path = folder / "events.db"
    t0 = time.perf_counter()
    items = make_store(path, events=events)
    print(f"generated {events} events in {len(items)} items in {time.perf_counter() - t0:.1f} s")
    size = store_size(path)
    print(
        f"store size {size / 1e6:.1f} MB: {size / events:.0f} B per event, {size / len(items):.0f} B per "
        "item (with a 1.7 KB stand-in thumbnail per item)"
    )
    reader = StoreReader(path)
    deep = None
    for _ in range(len(items) // 2 // 50):  # half-way down the history
        _, deep = reader.reviews(ReviewQuery(limit=50, cursor=deep))
    view = WebView(ServeConfig("127.0.0.1", 0, token=None))
    view.set_store(path)
    view.start()
    assert view.url is not None
    url = view.url
    try:
        print(f"\n{'50 items':28s} {'StoreReader':44s} GET /api/reviews")
        cases = [(name, params, None) for name, params in QUERIES.items()] + [
            ("half-way down (cursor)", {}, deep)
        ]
        for name, params, cursor in cases:
            direct = timed(lambda p=params, c=cursor: reader.reviews(review_query(p, c)), repeat)  # type: ignore[misc]
            query = "&".join(f"{k}={v}" for k, v in params.items()) + (f"&cursor={cursor}" if cursor else "")
            http = timed(lambda q=query: get(url, f"/api/reviews?limit=50&{q}"), repeat)  # type: ignore[misc]
            print(f"{name:28s} {stats(direct):44s} {stats(http)}")
        for name, q in (
            ("events, newest 50", EventQuery()),
            ("events of a class", EventQuery(class_name="dog")),
        ):
            direct = timed(lambda q=q: reader.events(q), repeat)  # type: ignore[misc]
            print(f"{name:28s} {stats(direct)}")
    finally:
        view.close()


def cpu_seconds(cmd: list[str]) -> float:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime


def cpu(pairs: int, frames: int, folder: Path) -> None:
    config = str(ROOT / "configs" / "count-people-doorway.yaml")
    base = [sys.executable, "-m", "detector", "run", DOORWAY, "--config", config, "--clip-on", "person"]
    base += ["--max-frames", str(frames), "-q"]
    ratios, seconds, writer = [], {True: [], False: []}, []
    for k in range(pairs):
        for store in (True, False) if k % 2 == 0 else (False, True):  # alternate which goes first
            clips = folder / f"clips-{k}-{int(store)}"
            report = folder / f"report-{k}-{int(store)}.json"
            cmd = [*base, "--clips", str(clips), "--report", str(report)]
            seconds[store].append(cpu_seconds(cmd if store else [*cmd, "--events-db", "off"]))
            if store:
                made = store_size(clips / "events.db")
                writer.append(json.loads(report.read_text())["events_db"]["writer_cpu_s"])
            shutil.rmtree(clips)
        ratios.append(seconds[True][-1] / seconds[False][-1])
        print(
            f"pair {k + 1}: with the store {seconds[True][-1]:.2f} s CPU, without "
            f"{seconds[False][-1]:.2f} s: {ratios[-1]:.3f}; the store's writer thread "
            f"{writer[-1] * 1000:.0f} ms"
        )
    share = statistics.median(w / t for w, t in zip(writer, seconds[True], strict=True))
    print(
        f"CPU with / without the store, median of {pairs} pairs: {statistics.median(ratios):.3f} "
        f"({frames} frames; that store: {made / 1e3:.0f} kB); the writer thread: {100 * share:.2f}% of the "
        "run's CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=700)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        queries(args.events, args.repeat, Path(tmp))
        if not args.skip_cpu:
            print()
            cpu(args.pairs, args.frames, Path(tmp))


if __name__ == "__main__":
    main()
