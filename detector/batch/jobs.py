"""The plan of a batch and its record: jobs (input -> output names), their results, the settings key,
output checks, and the manifest.

``DIR/manifest.jsonl`` gets one line per input per attempt, appended and flushed as each file
finishes; the latest line per input wins. A rerun skips an input whose latest line is ``done``
(or ``skipped``: done before, outputs checked) when its outputs are complete and the settings
are unchanged; everything else is redone, overwriting partial outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av

from detector.settings import Settings
from detector.settings.model import PER_RUN_OUTPUTS
from detector.settings.serve import ServeSettings

log = logging.getLogger(__name__)

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
    "serve",
    "mqtt",  # where results are told, not what they are
    "notify",
    "connect_timeout",
    "reconnect_max",
    "camera_size",
    "camera_fps",
    "clip_before",  # clips are per-run outputs a batch turns off
    "clip_after",
}


@dataclass(frozen=True)
class JobResult:
    """How one attempt at one input ended."""

    status: Literal["done", "failed", "skipped"]
    error: str | None = None
    frames: int = 0
    fps: float = 0.0
    wall_s: float = 0.0
    worker: str | None = None
    input: str = ""  # which job this answers (results from Ray arrive unordered)


def failed(
    error: str, frames: int = 0, wall_s: float = 0.0, worker: str | None = None, input: str = ""
) -> JobResult:
    return JobResult("failed", error, frames, 0.0, round(wall_s, 3), worker, input)


@dataclass(frozen=True)
class Job:
    """One input of a batch and its outputs (also what a worker is sent)."""

    input: Path
    name: str
    video: Path
    json: Path
    report: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        return [self.video, self.json, *([self.report] if self.report else [])]

    def settings(self, base: Settings) -> Settings:
        """The settings of this input's run: its own output files, nothing shown, nothing served."""
        # a config's csv/mot would collide; one event store takes every input's events (and items)
        update: dict[str, object] = {k: None for k in PER_RUN_OUTPUTS if k != "events_db"}
        update.update(output=str(self.video), json_path=str(self.json), overwrite=True, show=False)
        update["serve"] = ServeSettings()  # a config's serve.bind: every worker would take the same port
        update["report"] = str(self.report) if self.report else None
        return base.model_copy(update=update)


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
