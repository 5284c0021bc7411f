"""``/api/status`` and ``/healthz`` as plain dicts, from what the feeds hold (server's thread)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from detector.text import by_count
from detector.web.feeds import Board, Feed, Phase
from detector.web.storage_health import retention_short, storage_health


def _source_status(feed: Feed, stall_timeout: float) -> dict[str, Any]:
    stats, info, totals = feed.stats, feed.info, feed.totals
    fps = stats.fps_meter.value
    return {
        "name": feed.name,
        "kind": info.kind,
        "width": info.width,
        "height": info.height,
        "source_fps": round(float(info.fps), 3) if info.fps else None,
        "phase": feed.phase(),
        "healthy": _healthy(feed, stall_timeout),
        "fps": round(fps, 2) if fps is not None else None,
        "frames": {
            "read": stats.frames_read,
            "processed": stats.frames_processed,
            "dropped": stats.frames_dropped,
            "detected": stats.frames_detected,
            "motion_skipped": stats.frames_motion_skipped,
            "rate_skipped": stats.frames_rate_skipped,
        },
        "gaps": stats.gaps,
        "latency_ms": {
            "p50": round(stats.latency.percentile(50), 1),
            "p95": round(stats.latency.percentile(95), 1),
        },
        "counts": totals.get("counts", {}),
        "detections": totals.get("detections", {}),
        "tracks": totals.get("tracks", {}),
        "lines": totals.get("lines", {}),
        "zones": totals.get("zones", {}),
        "events": feed.events(),
    }


def _healthy(feed: Feed, stall_timeout: float) -> bool:
    """Frames flow: the newest is at most ``stall_timeout`` old (a finished source is not stalled)."""
    return feed.finished or feed.stalled_for() <= stall_timeout


def build_status(board: Board, viewers: dict[str, int]) -> dict[str, Any]:
    """The run: phase, model, uptime and viewers, then each source; for one source its figures are
    also at the top level, for several the sums (latency: the worst source's)."""
    sources = [_source_status(feed, board.stall_timeout) for feed in board.sources()]
    counts: Counter[str] = Counter()
    for s in sources:
        counts.update(s["counts"])
    fps = [s["fps"] for s in sources if s["fps"] is not None]
    return {
        "phase": board.phase,
        "model": board.model,
        "backend": board.backend,
        "uptime_s": round(time.monotonic() - board.started_at, 1),
        "fps": round(sum(fps), 2) if fps else None,
        "frames": sum(s["frames"]["processed"] for s in sources),
        "dropped": sum(s["frames"]["dropped"] for s in sources),
        "latency_ms": {
            "p50": max((s["latency_ms"]["p50"] for s in sources), default=0.0),
            "p95": max((s["latency_ms"]["p95"] for s in sources), default=0.0),
        },
        "counts": by_count(counts),
        "viewers": viewers,
        "history": board.store is not None,  # the run keeps an event store: /history shows it
        "sources": sources,
    }


def build_health(board: Board) -> tuple[bool, dict[str, Any]]:
    """(healthy, body). Healthy while the model loads and while every open source delivers frames;
    not once any has stalled longer than ``--stall-timeout``, nor while an output cannot be written
    (a full disk), nor once the run has finished."""
    stall = board.stall_timeout
    feeds = board.sources()
    stalled = {f.name: round(f.stalled_for(), 1) for f in feeds if not _healthy(f, stall)}
    if board.phase == Phase.FINISHED or (feeds and all(f.finished for f in feeds)):
        return False, {"status": "finished"}
    full = storage_health(board.storage)  # an output that cannot be written
    if full is not None:
        return False, full
    if stalled:
        return False, {"status": "stalled", "stall_timeout_s": stall, "stalled_s": stalled}
    short = retention_short(board.storage)  # a cap that cannot hold what is kept: said, still healthy
    return True, {"status": "ok", "phase": board.phase, **({"retention_short": short} if short else {})}
