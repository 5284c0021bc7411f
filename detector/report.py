"""The end of a run: one report (``--report FILE.json``) and the one summary printed from it.

``build_report`` gathers the source facts, model, frame counts, speed and latency (from
``RunStats.as_dict()``), detections per class, what the stages add (tracks per class, line and
zone totals) and the output files. ``format_summary`` is the plain-text screen printed at the end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.errors import UserError
from detector.files import make_parents, write_text
from detector.settings import BUNDLED_MODEL
from detector.settings.storage import size_text
from detector.sinks.jsonl import dumps_line
from detector.sources.base import SourceInfo
from detector.stats import RunStats, model_runs
from detector.text import by_count, counts_text

log = logging.getLogger(__name__)

REPORT_VERSION = 1


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
    stage_reports: Iterable[Mapping[str, Any]] = (),
    outputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module doc for what it holds)."""
    run = stats.as_dict()
    run.pop("source", None)
    run.pop("backend", None)
    files = list(dict.fromkeys([*run.pop("outputs", []), *outputs]))  # ordered, no duplicates
    extra: dict[str, Any] = {"tracks_per_class": {}, "lines": {}, "zones": {}}
    for part in stage_reports:
        extra.update(part)
    extra["tracks_per_class"] = by_count(extra["tracks_per_class"])
    return {
        "version": REPORT_VERSION,
        "source": source_facts(source_info),
        "model": model,
        "backend": backend or stats.backend,
        **run,
        **extra,
        "outputs": files,
    }


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` atomically (``files.write_text``): indented JSON, or for a .html / .htm name one
    self-contained page (``report_html``).

    Non-finite numbers become ``null``; numpy values become plain ones.
    """
    p = Path(path).expanduser()
    clean = json.loads(dumps_line(dict(report)))
    if p.suffix.lower() in (".html", ".htm"):
        from detector.report_html import render_html  # only for HTML reports

        text = render_html(clean, p.parent)
    else:
        text = json.dumps(clean, indent=2, ensure_ascii=False) + "\n"
    make_parents(p)
    try:
        write_text(p, text)
    except OSError as exc:
        raise UserError(f"writing report {p} failed: {exc.strerror or exc}") from exc
    log.info("report written to %s", p)
    return p


def format_summary(report: Mapping[str, Any]) -> str:
    """One screen of plain text for the end of a run (stderr)."""
    src, frames, lat = report["source"], report["frames"], report["latency_ms"]
    facts = ", ".join(
        s
        for s in (
            src.get("codec"),
            f"{src['width']}x{src['height']}",
            f"{src['fps_value']:.4g} fps" if src.get("fps_value") else "",
            f"{src['duration_s']:.1f} s" if src.get("duration_s") else "",
        )
        if s
    )
    first = report.get("first_frame_seconds")
    model = str(report["model"])
    if model and Path(model).resolve() == BUNDLED_MODEL:
        model = f"{BUNDLED_MODEL.name} (bundled)"
    stage = "  ".join(f"{name} {v['mean']:.1f}" for name, v in report["stage_ms"].items())
    dropped = f", dropped {frames['dropped']}, corrupt {frames['corrupt']}"
    lines = [
        f"source     {src['name']}  ({facts})",
        f"model      {model}  ({report['backend']})",
        f"frames     read {frames['read']}, processed {frames['processed']}{dropped}"
        + (f", gaps {report['gaps']}" if report.get("gaps") else ""),
        *([f"model      {runs}"] if (runs := model_runs(frames)) else []),
        f"speed      {report['fps']:.1f} fps over {report['wall_seconds']:.1f} s"
        + (f", first frame after {first:.2f} s" if first else ""),
        f"stage ms   {stage}  (mean per frame)",
        f"latency    p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms",
        f"detections {counts_text(dict(list(report['detections_per_class'].items())[:8]))}"
        + box_frames(report),
    ]
    if report.get("tracks_per_class"):
        lines.append(f"tracks     {counts_text(report['tracks_per_class'])}")
    for name, c in report.get("lines", {}).items():
        t = c["total"]
        ins = f"in {t['in']}" + (f" ({counts_text(c['in'])})" if c["in"] else "")
        outs = f"out {t['out']}" + (f" ({counts_text(c['out'])})" if c["out"] else "")
        lines.append(f"line       {name}: {ins}, {outs}")
    for name, z in report.get("zones", {}).items():
        dwell = z["dwell_s"]
        text = f"zone       {name}: entered {sum(z['entered'].values())}, exited {sum(z['exited'].values())}"
        text += f", most inside at once {z['max_inside']}"
        if dwell["count"]:
            text += f", dwell mean {dwell['mean']:.1f} s, max {dwell['max']:.1f} s"
        lines.append(text)
    if report.get("ignored"):
        lines.append(f"ignored    {counts_text(report['ignored'])}")
    if report.get("clips"):
        c = report["clips"]
        lines.append(f"clips      {c['clips']} clips, {c['events']} events, in {c['folder']}")
    if report.get("mqtt"):
        m = report["mqtt"]
        text = f"mqtt       {m['published']} messages to {m['broker']}, {m['dropped']} dropped"
        if m.get("run_dropped", 0) > m["dropped"]:
            text += f" ({m['run_dropped']} in the whole run)"
        if m.get("qos") and m.get("run_acknowledged", 0) < m.get("run_published", 0):
            text += (
                f"; the broker acknowledged only {m['run_acknowledged']} of the run's {m['run_published']}"
            )
        lines.append(text + (f", reconnected {m['reconnects']}x" if m.get("reconnects") else ""))
    if report.get("notify"):
        n = report["notify"]
        lines.append(f"notify     {n['sent']} sent, {n['failed']} failed, {n['dropped']} dropped, "
                     f"{n['skipped']} held back (cooldown or filters)")  # fmt: skip
    lines += store_line(report) + storage_lines(report)
    if report.get("outputs"):
        lines.append(f"outputs    {', '.join(report['outputs'])}")
    return "\n".join(lines)


def box_frames(report: Mapping[str, Any]) -> str:
    """What ``detections`` counts, said after them: each box in each frame, not objects."""
    if not report["detections_per_class"]:
        return ""
    if report.get("tracks_per_class"):
        return "  (box-frames: each box in each frame; objects: tracks)"
    return "  (box-frames: each box in each frame, so one object seen in 30 frames is 30)"


RUN_WIDE = ("events_db", "retention")  # one event store and one retention for every source of a run


def format_summaries(reports: Sequence[Mapping[str, Any]]) -> str:
    """The summaries of a run's sources, one block each; what the sources share (the event store,
    retention) said once, after the last block, as of the last report (the latest figures)."""
    if len(reports) < 2:
        return "\n\n".join(format_summary(r) for r in reports)
    blocks = [format_summary({k: v for k, v in r.items() if k not in RUN_WIDE}) for r in reports]
    shared = {k: reports[-1][k] for k in RUN_WIDE if reports[-1].get(k)}
    lines = store_line(shared) + storage_lines(shared)
    return "\n\n".join([*blocks, *(["\n".join(lines)] if lines else [])])


def store_line(report: Mapping[str, Any]) -> list[str]:
    """The summary's line for the event store (none without one)."""
    if not report.get("events_db"):
        return []
    s = report["events_db"]
    missing = (("events", s["dropped"] + s["lost"]), ("items", s.get("items_lost", 0)),
               ("files", s.get("files_lost", 0)))  # fmt: skip
    lost = ", ".join(f"{n} {what}" for what, n in missing if n)
    lost = f" (lost: {lost})" if lost else ""
    return [f"store      {s['reviews']} review items, {s['events']} events{lost}, in {s['path']}"]


def storage_lines(report: Mapping[str, Any]) -> list[str]:
    """The summary's lines for ``--record`` and retention."""
    lines = []
    if report.get("recording"):
        r = report["recording"]
        cut = f", {r['incomplete']} cut short by a full disk" if r.get("incomplete") else ""
        text = f"{r['segments']} segments ({size_text(r['bytes'])}, {r['mode']}{cut}) in {r['folder']}"
        lines.append(f"recording  {text}")
    if report.get("retention"):
        folders = report["retention"]["folders"].values()
        files, size = sum(f["deleted_files"] for f in folders), sum(f["deleted_bytes"] for f in folders)
        lines.append(f"retention  deleted {files} files ({size_text(size)})")
        cap = report["retention"]["limits"].get("max_size")
        for folder, f in report["retention"]["folders"].items():
            if f.get("needs_bytes"):
                lines.append(
                    f"retention  {folder} needs {size_text(f['needs_bytes'])} for what it keeps, "
                    f"more than retain.max_size {size_text(cap)}: kept, over the cap"
                )
    return lines
