"""The batch dispatcher: which inputs to (re)do, a pool of workers to run them, the manifest and the
progress log. Ctrl-C stops the files in progress (their outputs close) and records them, never as
``done`` unless they finished."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.batch.jobs import (
    MANIFEST,
    Job,
    JobResult,
    Manifest,
    failed,
    plan_jobs,
    settings_key,
    why_redo,
)
from detector.batch.pools import Pool
from detector.errors import Interrupted
from detector.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    wall_s: float = 0.0
    workers: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def files_per_min(self) -> float:
        return 60 * (self.done + self.failed) / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} skipped of {self.total}; "
            f"{self.frames} frames in {self.wall_s:.1f} s = {self.fps:.1f} fps, "
            f"{self.files_per_min:.1f} files/min with {self.workers} workers"
        )


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class FramesSoFar:
    """Frames a running input has written to its JSONL, read as the file grows (only the new bytes),
    so the overall fps counts the work in progress and does not sink while a long file runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.frames = 0
        self._tail = b""  # a line not yet complete

    def count(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:  # not created yet
            return self.frames
        self.offset += len(data)
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        self.frames += sum(1 for line in lines if b'"detections"' in line)  # event lines have none
        return self.frames


class _Batch:
    def __init__(self, out_dir: Path, settings: Settings, log_interval: float) -> None:
        self.manifest = Manifest(out_dir / MANIFEST)
        self.key = settings_key(settings)
        self.log_interval = log_interval
        self.summary = BatchSummary()
        self.clock = time.monotonic
        self.t0 = self.clock()
        self.running: dict[Path, tuple[Job, float]] = {}
        self.progress: dict[Path, FramesSoFar] = {}

    def start(self, job: Job) -> None:
        self.running[job.input] = (job, self.clock())
        self.progress[job.input] = FramesSoFar(job.json)

    def finish(self, job: Job) -> None:
        self.running.pop(job.input, None)
        self.progress.pop(job.input, None)

    def overall(self) -> tuple[int, float]:
        """Frames so far (finished inputs and those in progress) and their rate since the start."""
        frames = self.summary.frames + sum(p.count() for p in self.progress.values())
        elapsed = self.clock() - self.t0
        return frames, frames / elapsed if elapsed > 0 else 0.0

    def record(self, job: Job, result: JobResult) -> None:
        status = result.status
        outputs = [str(p) for p in job.outputs if p.is_file()]
        rec = {
            "input": str(job.input),
            "status": status,
            "error": result.error,
            "frames": result.frames,
            "fps": result.fps,
            "wall_s": result.wall_s,
            "outputs": outputs,
            "name": job.name,
            "settings": self.key,
            "worker": result.worker,
            "time": _now(),
        }
        self.manifest.append(rec)
        s = self.summary
        s.records.append(rec)
        if status == "skipped":
            s.skipped += 1
            return
        s.done += status == "done"
        s.failed += status == "failed"
        s.frames += result.frames if status == "done" else 0
        s.wall_s = self.clock() - self.t0
        n = s.done + s.failed + s.skipped
        what = f"{rec['frames']} frames, {rec['fps']:.1f} fps, {rec['wall_s']:.1f} s"
        worker = result.worker or "-"
        if status == "failed":
            log.warning("[%d/%d] %s failed: %s (%s)", n, s.total, job.input.name, rec["error"], worker)
        else:
            log.info("[%d/%d] %s done: %s (%s)", n, s.total, job.input.name, what, worker)
        frames, fps = self.overall()
        log.info("batch: %d/%d files, %d frames, %.1f fps overall", n, s.total, frames, fps)

    def heartbeat(self) -> None:
        now = self.clock()
        s = self.summary
        doing = ", ".join(f"{job.input.name} ({now - t:.0f} s)" for job, t in self.running.values())
        n = s.done + s.failed + s.skipped
        frames, fps = self.overall()
        log.info(
            "batch: %d/%d files, %d frames, %.1f fps overall; %s", n, s.total, frames, fps, doing or "idle"
        )


def run_batch(
    inputs: Sequence[Path],
    out_dir: Path,
    settings: Settings,
    pool: Pool,
    *,
    workers: int | None,
    force: bool = False,
    report: bool = False,
    log_interval: float = 10.0,
) -> BatchSummary:
    """Process every input not finished before; returns the summary. ``workers``: None lets the pool
    decide (a Ray cluster: as many as it holds). Ctrl-C and errors propagate after the files in
    progress are stopped and recorded."""
    batch = _Batch(out_dir, settings, log_interval)
    jobs = plan_jobs(inputs, out_dir, batch.manifest.latest, report)
    batch.summary.total = len(jobs)
    todo: deque[Job] = deque()
    for job in jobs:
        rec = batch.manifest.latest.get(str(job.input))
        reason = "--force" if force else why_redo(job, rec, batch.key)
        if reason is None and rec is not None:
            batch.record(job, JobResult("skipped", None, rec.get("frames", 0), rec.get("fps", 0.0), 0.0))
            continue
        if rec is not None:
            log.info("redoing %s: %s", job.input.name, reason)
        todo.append(job)
    log.info(
        "batch: %d inputs, %d to do, %d finished before; outputs in %s",
        *(len(jobs), len(todo), batch.summary.skipped, out_dir),
    )
    if not todo:
        return batch.summary
    try:
        n = batch.summary.workers = pool.start(None if workers is None else min(workers, len(todo)))
        batch.t0 = batch.clock()
        last = time.monotonic()
        while todo or batch.running:
            while todo and len(batch.running) < n:
                job = todo.popleft()
                pool.submit(job)
                batch.start(job)
            for job, result in pool.wait(1.0):
                batch.finish(job)
                batch.record(job, result)
            if time.monotonic() - last >= log_interval and batch.running:
                last = time.monotonic()
                batch.heartbeat()
    except BaseException as exc:
        _stop_running(batch, pool, exc)
        raise
    finally:
        pool.close()
        batch.summary.wall_s = time.monotonic() - batch.t0
    return batch.summary


def _stop_running(batch: _Batch, pool: Pool, exc: BaseException) -> None:
    """Record what was in progress: a real result where the worker gave one, else ``failed``."""
    if not batch.running:
        return
    why = (
        exc.word
        if isinstance(exc, Interrupted)
        else "interrupted"
        if isinstance(exc, KeyboardInterrupt)
        else f"batch stopped: {exc}"
    )
    log.warning("stopping %d files in progress (%s)", len(batch.running), why)
    try:
        for job, result in pool.abort():
            if job.input in batch.running:
                batch.finish(job)
                batch.record(job, result)
    finally:
        for job, _ in list(batch.running.values()):
            batch.record(job, failed(why))
        batch.running.clear()
        batch.progress.clear()
