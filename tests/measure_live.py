"""Measure live keep-up (the README's figures); not a test. Loopback only.

    python tests/measure_live.py CLIP [CLIP ...] [--rounds 2]

Each CLIP is served in real time on loopback (ffmpeg -re, MPEG-TS over HTTP); one ``detector run``
reads them all (several clips: several sources in one run) with ``--json`` and ``--output`` on.
Per source: frames processed of those the stream sent, capture-to-sink latency p50/p95, and the
latency growth from the first third of the run to the last. ``PYTHONPATH`` picks the code measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming import StreamServer


def measure(clips: list[Path], out: Path) -> list[str]:
    servers = [StreamServer(c, lifetime=300).start() for c in clips]
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        js = out / "out.jsonl"
        video = out / ("out.mp4" if len(clips) == 1 else "{name}.mp4")
        cmd = [sys.executable, "-m", "detector", "run", *(s.url for s in servers), "--json", str(js)]
        cmd += ["--output", str(video), "--overwrite", "--reconnect-max", "0", "-q"]
        done = subprocess.run(
            cmd, env={**env, "YOLO_OFFLINE": "1"}, capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
    finally:
        for server in servers:
            server.stop()
    frames: dict[str, list[dict]] = {}
    for line in js.read_text().splitlines():
        record = json.loads(line)
        if "event" not in record:
            frames.setdefault(record.get("source", "stream"), []).append(record)
    lines = []
    for name, records in frames.items():
        sent = max(r["frame"] for r in records) + 1
        latency = [r["latency_ms"] for r in records]
        third = max(1, len(latency) // 3)
        growth = statistics.mean(latency[-third:]) - statistics.mean(latency[:third])
        p95 = sorted(latency)[int(0.95 * (len(latency) - 1))]
        lines.append(
            f"{name}: processed {len(records)}/{sent} = {len(records) / sent:.0%}; latency p50 "
            f"{statistics.median(latency):.0f} ms, p95 {p95:.0f} ms; growth {growth:+.0f} ms (last third)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"round {r + 1}:", *measure(args.clips, Path(tmp)), sep="\n  ")


if __name__ == "__main__":
    main()
