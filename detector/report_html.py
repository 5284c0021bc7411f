"""``--report FILE.html``: the run report as one self-contained page.

Everything is inside the file: CSS, charts as inline SVG (``charts``), the heatmap and the event
snapshots as data URIs; no script, no network. Links to clips are relative to the page, so the page
and the clips folder can be moved together. What it shows: the source, model and speed; detections
per class over time; line crossings (cumulative in/out) and zone occupancy over time; the heatmap;
the events with snapshot thumbnails and links to their clips; a latency histogram.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.charts import histogram, line_chart
from detector.media.images import data_uri, fit_width
from detector.stats import model_runs
from detector.storage.snapshot import event_text
from detector.text import counts_text

log = logging.getLogger(__name__)

THUMB_WIDTH = 240
MAX_THUMBS = 120  # events beyond this are listed without a picture (the page stays a few MB)
MAX_SERIES = 8

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #1b1b1b; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; }
td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
.facts th { color: #555; font-weight: normal; } .muted { color: #777; }
.events td { border-top: 1px solid #ddd; padding: 6px 10px 6px 0; } .events img { display: block; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #333; }
svg.chart .grid { stroke: #e6e6e6; } svg.chart .axis { stroke: #888; }
img.heatmap { max-width: 100%; border: 1px solid #ccc; }
"""


def _thumbnail(path: Path) -> str | None:
    image = cv2.imread(str(path))
    return None if image is None else data_uri(fit_width(np.asarray(image, np.uint8), THUMB_WIDTH), "jpeg")


def _facts(report: Mapping[str, Any]) -> str:
    src, frames, lat = report["source"], report["frames"], report["latency_ms"]
    fps = f"{src['fps_value']:.4g} fps" if src.get("fps_value") else ""
    duration = f"{src['duration_s']:.1f} s" if src.get("duration_s") else ""
    about = (src["kind"], src.get("codec"), f"{src['width']}x{src['height']}", fps, duration)
    stage = ", ".join(f"{k} {v['mean']:.1f}" for k, v in report.get("stage_ms", {}).items())
    rows = [
        ("source", f"{src['name']} ({', '.join(x for x in about if x)})"),
        ("model", f"{Path(str(report['model'])).name} ({report['backend']})"),
        ("frames", f"read {frames['read']}, processed {frames['processed']}, dropped {frames['dropped']}"),
        *([("model runs", runs)] if (runs := model_runs(frames)) else []),
        ("speed", f"{report['fps']:.1f} fps over {report['wall_seconds']:.1f} s"),
        ("stage ms", f"{stage} (mean per frame)"),
        ("latency", f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms"),
        ("detections", counts_text(report.get("detections_per_class", {}), "none")),
    ]
    if report.get("tracks_per_class"):
        rows.append(("tracks", counts_text(report["tracks_per_class"])))
    for name, c in report.get("lines", {}).items():
        rows.append((f"line {name}", f"in {c['total']['in']}, out {c['total']['out']}"))
    for name, z in report.get("zones", {}).items():
        rows.append((f"zone {name}", f"entered {sum(z['entered'].values())}, most inside {z['max_inside']}"))
    if report.get("ignored"):
        rows.append(("ignored", counts_text(report["ignored"])))
    if report.get("outputs"):
        rows.append(("outputs", ", ".join(report["outputs"])))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _time_charts(timeline: Mapping[str, Any]) -> list[str]:
    bucket, t0 = float(timeline["bucket_s"]), float(timeline["t0"])
    times = [t0 + bucket * (i + 0.5) for i in range(len(timeline["frames"]))]
    out = []
    classes = dict(sorted(timeline["classes"].items(), key=lambda kv: -sum(kv[1]))[:MAX_SERIES])
    chart = line_chart(times, classes, title="detections per class", y_label="mean detections per frame")
    out.append("<h2>Detections per class over time</h2>" + (chart or '<p class="muted">no detections</p>'))
    for name, line in timeline.get("lines", {}).items():
        label = f"line {name}: crossings so far"
        chart = line_chart(times, line, title=f"line {name}", y_label=label, step=True)
        out.append(f"<h2>Line {escape(name)}: in and out over time</h2>{chart}")
    if timeline.get("zones"):
        zones = dict(list(timeline["zones"].items())[:MAX_SERIES])
        chart = line_chart(times, zones, title="zone occupancy", y_label="most objects inside", step=True)
        out.append(f"<h2>Zone occupancy over time</h2>{chart}")
    return out


def _events(timeline: Mapping[str, Any], clips: Mapping[str, Any] | None, page_dir: Path) -> str:
    events = timeline.get("events", [])
    if not events:
        return '<p class="muted">no events</p>'
    folder = Path(clips["folder"]) if clips else None
    rows = []
    for k, e in enumerate(events):
        what, who = event_text(e)
        picture, link = "", ""
        if folder is not None and e.get("snapshot") and k < MAX_THUMBS:
            uri = _thumbnail(folder / e["snapshot"])
            picture = f'<img src="{uri}" width="{THUMB_WIDTH}" alt="snapshot">' if uri else ""
        if folder is not None and e.get("clip"):
            href = Path(os.path.relpath(folder / e["clip"], page_dir)).as_posix()
            offset = e.get("clip_offset_s")
            href += f"#t={offset}" if offset is not None else ""
            link = f'<a href="{escape(href)}">{escape(str(e["clip"]))}</a>'
            picture = f'<a href="{escape(href)}">{picture}</a>' if picture else picture
        cells = (f"{float(e.get('pts', 0.0)):.1f} s", escape(what), escape(who), picture, link)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = timeline.get("events_total", len(events)) - len(events)
    tail = f'<p class="muted">{more} more events in events.jsonl</p>' if more > 0 else ""
    head = "<tr><th>time</th><th>event</th><th>object</th><th>snapshot</th><th>clip</th></tr>"
    return f'<table class="events">{head}{"".join(rows)}</table>{tail}'


def render_html(report: Mapping[str, Any], page_dir: Path) -> str:
    """The page for ``report`` (as ``build_report`` makes it, with the timeline sink's part)."""
    name = Path(str(report["source"]["name"])).name
    timeline = report.get("timeline") or {}
    parts = [f"<h1>{escape(name)}</h1>", '<p class="muted">detector run report</p>', _facts(report)]
    if timeline:
        parts += _time_charts(timeline)
        if timeline.get("heatmap"):
            parts.append(f'<h2>Heatmap</h2><img class="heatmap" alt="heatmap" src="{timeline["heatmap"]}">')
        parts.append(f"<h2>Events</h2>{_events(timeline, report.get('clips'), page_dir)}")
        chart = histogram(timeline.get("latency_ms", []), title="latency", x_label="latency (ms)")
        parts.append(f"<h2>Latency</h2>{chart}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(name)}: detector report</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
