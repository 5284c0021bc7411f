"""The end-of-run report: one JSON document (``--report``) and a short table for the terminal.

``build_report`` gathers the source facts, model, frame counts, speed and latency
(from ``RunStats.as_dict()``), detections and tracks per class, line and zone totals
and the output files. ``TrackTally`` counts distinct tracks per class during the run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.analytics.lines import LineCounter
from detector.analytics.zones import ZoneCounter
from detector.errors import UserError
from detector.sinks.jsonl import check_output_file, dumps_line
from detector.sources import SourceInfo
from detector.stats import RunStats
from detector.types import Detections

log = logging.getLogger(__name__)

REPORT_VERSION = 1


class TrackTally:
    """Distinct track ids per class, counted under the class of their first sighting.

    Ids unseen for ``forget_after_s`` seconds (pts) are forgotten, so memory stays flat;
    trackers never reuse an id, so a forgotten id is never counted twice.
    """

    def __init__(self, forget_after_s: float = 60.0) -> None:
        self.forget_after_s = forget_after_s
        self.counts: Counter[str] = Counter()
        self._last_seen: dict[int, float] = {}

    def update(self, detections: Detections, pts: float) -> None:
        if detections.tracker_id is not None:
            for tid, cid in zip(detections.tracker_id.tolist(), detections.class_id.tolist(), strict=True):
                if tid not in self._last_seen:
                    self.counts[detections.class_name(cid)] += 1
                self._last_seen[tid] = pts
        stale = [t for t, seen in self._last_seen.items() if abs(pts - seen) > self.forget_after_s]
        for t in stale:
            del self._last_seen[t]

    def per_class(self) -> dict[str, int]:
        return dict(self.counts.most_common())


def _fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def source_facts(info: SourceInfo) -> dict[str, Any]:
    """What the report says about the source."""
    return {
        "name": info.name,
        "kind": info.kind,
        "codec": info.codec or None,
        "width": info.width,
        "height": info.height,
        "fps": _fps_text(info.fps),
        "fps_value": round(float(info.fps), 4) if info.fps else None,
        "frame_count": info.frame_count,
        "duration_s": None if info.duration is None else round(float(info.duration), 3),
    }


def build_report(
    stats: RunStats,
    source_info: SourceInfo,
    model: str,
    backend: str,
    line_counters: Iterable[LineCounter] = (),
    zone_counters: Iterable[ZoneCounter] = (),
    tracks_per_class: Mapping[str, int] | None = None,
    outputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module doc for what it holds)."""
    run = stats.as_dict()
    run.pop("source", None)
    run.pop("backend", None)
    files = list(dict.fromkeys([*run.pop("outputs", []), *outputs]))  # ordered, no duplicates
    return {
        "version": REPORT_VERSION,
        "source": source_facts(source_info),
        "model": model,
        "backend": backend or stats.backend,
        **run,
        "tracks_per_class": dict(sorted((tracks_per_class or {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        "lines": {c.name: c.summary() for c in line_counters},
        "zones": {c.name: c.summary() for c in zone_counters},
        "outputs": files,
    }


def check_report_path(path: str | Path, overwrite: bool) -> Path:
    """Validate the report path before the run starts (``UserError`` with one line)."""
    return check_output_file(path, overwrite, "report")


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as indented JSON, atomically (a temp file renamed over ``path``).

    Non-finite numbers become ``null``; numpy values become plain ones.
    """
    p = Path(path).expanduser()
    text = json.dumps(json.loads(dumps_line(dict(report))), indent=2, ensure_ascii=False) + "\n"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise UserError(f"writing report {p} failed: {exc.strerror or exc}") from exc
    log.info("report written to %s", p)
    return p


def _classes(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def format_table(report: Mapping[str, Any]) -> str:
    """A short plain-text summary of a report for the end of the run."""
    src = report["source"]
    frames = report["frames"]
    lat = report["latency_ms"]
    size = f"{src['width']}x{src['height']}"
    fps = f"{src['fps']} fps" + (f" = {src['fps_value']:.2f}" if src.get("fps_value") else "")
    facts = ", ".join(
        s
        for s in (src.get("codec"), size, fps, f"{src['duration_s']:.1f} s" if src.get("duration_s") else "")
        if s
    )
    lines = [
        f"source   {src['name']} ({facts})",
        f"model    {report['model']} ({report['backend']})",
        f"frames   processed {frames['processed']} of {frames['read']} read, "
        f"dropped {frames['dropped']}, corrupt {frames['corrupt']}",
        f"speed    {report['fps']:.1f} fps over {report['wall_seconds']:.1f} s; "
        f"latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms",
    ]
    dets, tracks = report["detections_per_class"], report.get("tracks_per_class") or {}
    names = list(dict.fromkeys([*dets, *tracks]))
    if names:
        width = max(12, *(len(n) for n in names))
        lines.append(f"{'class':<{width}} {'detections':>10} {'tracks':>7}")
        lines.extend(f"{n:<{width}} {dets.get(n, 0):>10} {tracks.get(n, '-'):>7}" for n in names)
    for name, c in report.get("lines", {}).items():
        t = c["total"]
        ins = f"in {t['in']}" + (f" ({_classes(c['in'])})" if c["in"] else "")
        outs = f"out {t['out']}" + (f" ({_classes(c['out'])})" if c["out"] else "")
        lines.append(f"line {name}: {ins}, {outs}")
    for name, z in report.get("zones", {}).items():
        entered, dwell = sum(z["entered"].values()), z["dwell_s"]
        text = f"zone {name}: entered {entered}, exited {sum(z['exited'].values())}"
        text += f", most inside at once {z['max_inside']}"
        if dwell["count"]:
            text += f", dwell mean {dwell['mean']:.1f} s, max {dwell['max']:.1f} s"
        lines.append(text)
    if report.get("outputs"):
        lines.append(f"outputs  {', '.join(report['outputs'])}")
    return "\n".join(lines)
