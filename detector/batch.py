"""``detector batch``: many videos -> one annotated MP4 + one JSONL each, files in parallel, resumable.

The dispatcher here owns the plan (inputs -> output names), the manifest and the progress log;
the files themselves run in a pool of workers (``batch_workers``: local processes or Ray actors)
that each keep one model loaded.

``DIR/manifest.jsonl`` gets one line per input per attempt, appended and flushed as each file
finishes; the latest line per input wins. A rerun skips an input whose latest line is ``done``
(or ``skipped``: done before, outputs checked) when its outputs are complete and the settings
are unchanged; everything else is redone, overwriting partial outputs.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import av

from detector.batch_workers import PER_RUN_OUTPUTS, Result, Task, failed
from detector.config import Settings
from detector.errors import Terminated, UserError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".gif", ".ts", ".flv", ".wmv", ".mpg", ".mpeg"}
)
MANIFEST = "manifest.jsonl"
FINISHED = ("done", "skipped")
# Settings that do not change what a file's outputs contain (left out of the settings key).
_NOT_IN_KEY = {
    *PER_RUN_OUTPUTS,
    "overwrite",
    "show",
    "log_interval",
    "queue_size",
    "stall_timeout",
    "connect_timeout",
    "reconnect_max",
    "camera_size",
    "camera_fps",
}


class Pool(Protocol):
    def start(self, n: int) -> int: ...

    def submit(self, slot: int, task: Task) -> None: ...

    def wait(self, timeout: float) -> list[tuple[int, Result]]: ...

    def abort(self) -> list[tuple[int, Result]]: ...

    def close(self) -> None: ...


# -- inputs and outputs -----------------------------------------------------------------------------


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def collect_inputs(specs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Files as given; folders searched recursively and globs, both for video extensions only.

    Files under ``exclude`` (the output folder) are never picked up from folders or globs.
    """
    found: list[Path] = []
    empty: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file():
            found.append(path.resolve())
            continue
        if path.is_dir():
            files: Iterable[Path] = path.rglob("*")
        elif glob.has_magic(spec):
            files = (Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
        else:
            raise UserError(f"input {spec} not found")
        matched = sorted(
            p.resolve()
            for p in files
            if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        matched = [p for p in matched if exclude is None or not _is_under(p, exclude)]
        if not matched:
            empty.append(spec)
        found += matched
    unique = list(dict.fromkeys(found))
    exts = " ".join(sorted(VIDEO_EXTENSIONS))
    if not unique:
        raise UserError(f"no video inputs found in {' '.join(specs)} (looked for {exts})")
    for spec in empty:
        log.warning("%s has no videos (%s)", spec, exts)
    return unique


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder if needed and prove it is writable (``UserError`` otherwise)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"--output-dir {p} is a file; give a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        raise UserError(f"--output-dir {p} is not writable: {exc.strerror or exc}") from exc
    return p.resolve()


@dataclass(frozen=True)
class Job:
    input: Path
    name: str
    video: Path
    json: Path
    report: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        return [self.video, self.json, *([self.report] if self.report else [])]

    def task(self) -> Task:
        return Task(
            str(self.input), str(self.video), str(self.json), str(self.report) if self.report else None
        )


def plan_jobs(
    inputs: Sequence[Path], out_dir: Path, latest: dict[str, dict[str, Any]], report: bool = False
) -> list[Job]:
    """Output names from the input stems, unique (case-insensitively), never ``manifest``.

    A name recorded in the manifest stays with its input, so reruns (even with other inputs) agree.
    """
    taken = {Path(MANIFEST).stem}
    names: dict[str, str] = {}
    for key, rec in latest.items():
        name = rec.get("name")
        if isinstance(name, str) and name and name.casefold() not in taken:
            names[key] = name
            taken.add(name.casefold())
    jobs = []
    for path in inputs:
        name = names.get(str(path))
        if name is None:
            stem, n = path.stem or "video", 1
            name = stem
            while name.casefold() in taken:
                n += 1
                name = f"{stem}-{n}"
            taken.add(name.casefold())
        rep = out_dir / f"{name}.report.json" if report else None
        jobs.append(Job(path, name, out_dir / f"{name}.mp4", out_dir / f"{name}.jsonl", rep))
    return jobs


def settings_key(settings: Settings) -> str:
    """A short hash of the settings that shape the outputs (model, thresholds, frames, encoder...)."""
    data = settings.model_dump(mode="json", exclude=_NOT_IN_KEY)
    data.get("encoder", {}).pop("threads", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def count_json_frames(path: Path) -> int:
    """Whole frame lines in a JSONL output (a torn last line does not count)."""
    n = 0
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            rec = json.loads(line)
        except ValueError:
            return -1
        n += isinstance(rec, dict) and "frame" in rec and "detections" in rec
    return n


def count_video_frames(path: Path) -> int:
    """Video packets that can be demuxed to the end of the file (no decoding); -1 if unreadable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, OSError, IndexError, ValueError):
        return -1


def check_outputs(job: Job, frames: Any) -> str | None:
    """Why the outputs of a ``done`` input are not complete, or None if they are."""
    if not isinstance(frames, int) or frames <= 0:
        return "no frame count recorded"
    for p in job.outputs:
        if not p.is_file():
            return f"{p.name} is missing"
    n = count_json_frames(job.json)
    if n != frames:
        return f"{job.json.name} has {n} of {frames} frames"
    n = count_video_frames(job.video)
    if n != frames:
        return f"{job.video.name} has {max(n, 0)} of {frames} frames"
    return None


def why_redo(job: Job, rec: dict[str, Any] | None, key: str) -> str | None:
    if rec is None:
        return "new"
    if rec.get("status") not in FINISHED:
        return f"last attempt {rec.get('status')}: {rec.get('error')}"
    if rec.get("settings") != key:
        return "settings changed"
    return check_outputs(job, rec.get("frames"))


# -- manifest -------------------------------------------------------------------------------------------


class Manifest:
    """Append-only JSON lines; ``latest`` maps each input to its newest line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.latest: dict[str, dict[str, Any]] = {}
        if not path.exists():
            return
        data = path.read_bytes()
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                self.latest[str(rec["input"])] = rec
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: not a manifest line; ignored", path, number)
        if data and not data.endswith(b"\n"):  # a torn last line: end it so the next append is whole
            with path.open("ab") as f:
                f.write(b"\n")

    def append(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.latest[rec["input"]] = rec


# -- the dispatcher -----------------------------------------------------------------------------------


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


class _Batch:
    def __init__(self, out_dir: Path, settings: Settings, log_interval: float) -> None:
        self.manifest = Manifest(out_dir / MANIFEST)
        self.key = settings_key(settings)
        self.log_interval = log_interval
        self.summary = BatchSummary()
        self.t0 = time.monotonic()
        self.running: dict[int, tuple[Job, float]] = {}

    def record(self, job: Job, result: Result, worker: str | None) -> None:
        status = result["status"]
        outputs = [str(p) for p in job.outputs if p.is_file()]
        rec = {
            "input": str(job.input),
            "status": status,
            "error": result.get("error"),
            "frames": result.get("frames", 0),
            "fps": result.get("fps", 0.0),
            "wall_s": result.get("wall_s", 0.0),
            "outputs": outputs,
            "name": job.name,
            "settings": self.key,
            "worker": worker,
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
        s.frames += int(rec["frames"] or 0) if status == "done" else 0
        s.wall_s = time.monotonic() - self.t0
        n = s.done + s.failed + s.skipped
        what = f"{rec['frames']} frames, {rec['fps']:.1f} fps, {rec['wall_s']:.1f} s"
        if status == "failed":
            log.warning("[%d/%d] %s failed: %s (%s)", n, s.total, job.input.name, rec["error"], worker)
        else:
            log.info("[%d/%d] %s done: %s (%s)", n, s.total, job.input.name, what, worker)
        log.info("batch: %d/%d files, %d frames, %.1f fps overall", n, s.total, s.frames, s.fps)

    def heartbeat(self) -> None:
        now = time.monotonic()
        s = self.summary
        doing = ", ".join(
            f"w{slot + 1}: {job.input.name} ({now - t:.0f} s)"
            for slot, (job, t) in sorted(self.running.items())
        )
        n = s.done + s.failed + s.skipped
        log.info(
            "batch: %d/%d files, %d frames, %.1f fps overall; %s",
            n,
            s.total,
            s.frames,
            s.frames / (now - self.t0),
            doing or "idle",
        )


def run_batch(
    inputs: Sequence[Path],
    out_dir: Path,
    settings: Settings,
    pool: Pool,
    *,
    workers: int,
    force: bool = False,
    report: bool = False,
    log_interval: float = 10.0,
) -> BatchSummary:
    """Process every input not finished before; returns the summary. Ctrl-C / errors propagate
    after the files in progress are stopped and recorded (never as ``done`` unless they finished)."""
    batch = _Batch(out_dir, settings, log_interval)
    jobs = plan_jobs(inputs, out_dir, batch.manifest.latest, report)
    batch.summary.total = len(jobs)
    todo: deque[Job] = deque()
    for job in jobs:
        rec = batch.manifest.latest.get(str(job.input))
        reason = "--force" if force else why_redo(job, rec, batch.key)
        if reason is None and rec is not None:
            batch.record(job, {**rec, "status": "skipped", "error": None, "wall_s": 0.0}, None)
            continue
        if rec is not None:
            log.info("redoing %s: %s", job.input.name, reason)
        todo.append(job)
    log.info(
        "batch: %d inputs, %d to do, %d finished before; outputs in %s",
        len(jobs),
        len(todo),
        batch.summary.skipped,
        out_dir,
    )
    if not todo:
        return batch.summary
    try:
        n = batch.summary.workers = pool.start(min(workers, len(todo)))
        batch.t0 = time.monotonic()

        def dispatch(slot: int) -> None:
            if todo:
                job = todo.popleft()
                pool.submit(slot, job.task())
                batch.running[slot] = (job, time.monotonic())
                log.info("w%d: %s", slot + 1, job.input)

        for slot in range(n):
            dispatch(slot)
        last = time.monotonic()
        while batch.running:
            for slot, result in pool.wait(1.0):
                job, _ = batch.running.pop(slot)
                batch.record(job, result, f"w{slot + 1}")
                dispatch(slot)
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
    why = {KeyboardInterrupt: "interrupted", Terminated: "terminated"}.get(type(exc), f"batch stopped: {exc}")
    log.warning("stopping %d files in progress (%s)", len(batch.running), why)
    try:
        for slot, result in pool.abort():
            if slot in batch.running:
                batch.record(batch.running.pop(slot)[0], result, f"w{slot + 1}")
    finally:
        for slot, (job, _) in sorted(batch.running.items()):
            batch.record(job, failed(why), f"w{slot + 1}")
        batch.running.clear()
