"""What the web view says about storage: ``/healthz`` is 503 while an output is failing for want of
storage (and says a ``max_size`` too small for what retention keeps), and ``/metrics`` has the
failures, what retention deleted and how full each folder is. Read on the server's thread from the
run's ``storage.setup.Storage`` (its parts are thread-safe)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from detector.storage.setup import Storage


def storage_health(storage: Storage | None) -> dict[str, Any] | None:
    """The body of a 503 while some output cannot be written, else None."""
    problems = storage.status.problems() if storage is not None else []
    if not problems:
        return None
    first = problems[0]
    reason = f"{first['output']}: {first['error']}"
    return {"status": "storage_full", "reason": reason, "outputs": problems}


def retention_short(storage: Storage | None) -> list[dict[str, Any]]:
    """The folders whose ``retain.max_size`` cannot hold what retention never deletes, with the size
    they need (said in ``/healthz`` without making it fail: recording goes on, over the cap)."""
    return storage.retention.shortfalls() if storage is not None else []


def storage_metrics(storage: Storage | None) -> Iterator[Metric]:
    """Prometheus families of the run's storage (none without one)."""
    if storage is None:
        return
    failing = GaugeMetricFamily(
        "detector_storage_full", "outputs that cannot be written now (full disk, quota, I/O error)",
        labels=["source"],
    )  # fmt: skip
    now: dict[str, int] = {}
    for problem in storage.status.problems():
        now[problem["source"]] = now.get(problem["source"], 0) + 1
    failures = CounterMetricFamily(
        "detector_storage_failures", "writes that failed for want of storage", labels=["source"]
    )
    for source, n in storage.status.failures_by_source().items():
        failures.add_metric([source], n)
        failing.add_metric([source], now.get(source, 0))
    yield failing
    yield failures
    report = storage.retention.report()
    files = CounterMetricFamily(
        "detector_retention_deleted_files", "files retention deleted", labels=["folder", "kind"]
    )
    size = CounterMetricFamily(
        "detector_retention_deleted_bytes", "bytes retention deleted", labels=["folder", "kind"]
    )
    used = GaugeMetricFamily(
        "detector_storage_used_bytes", "what our files in a folder hold", labels=["folder"]
    )
    free = GaugeMetricFamily(
        "detector_storage_free_bytes", "free space on a folder's disk", labels=["folder"]
    )
    for folder, figures in report["folders"].items():
        files.add_metric([folder, figures["kind"]], figures["deleted_files"])
        size.add_metric([folder, figures["kind"]], figures["deleted_bytes"])
        used.add_metric([folder], figures["used_bytes"])
        if figures["free_bytes"] is not None:
            free.add_metric([folder], figures["free_bytes"])
    yield from (files, size, used, free)
