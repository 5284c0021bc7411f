"""What MQTT and notifications cost, measured (not a test): paired runs, alternating.

    DETECTOR_TEST_VIDEOS=../shared/videos python tests/measure_mqtt.py [--pairs 3] [--frames 600]

1. fps: the doorway footage with a zone over the whole room and the door line, ``--max-frames``
   frames, run without and with ``--mqtt`` (a local mosquitto, a subscriber on ``#``) and ``--notify``
   (a loopback ``json://`` server), A B A B...; fps from each run's report and the CPU seconds the
   process used (steadier than fps on a loaded machine), the ratios pair by pair.
2. frame to MQTT message: the street GIF with the traffic config, 5 runs with MQTT; for each event
   record, the subscriber's arrival time minus the record's ``wall_time`` (files: when its frame
   reached the sinks). Also the outbox's own figure from the report (every message: its frame at the
   sinks to the message handed to the broker, p95).
3. messages per minute (``--rate``): the doorway footage with that config, car-detection.mp4 with
   configs/traffic-zones.yaml, and the street GIF made a minute long (every class, ``--clip-on
   person``: a busy street as the issue's was), each served live in real time (looping,
   ``--rate-seconds``) to a run with ``--mqtt``; the subscriber's messages by kind (counts,
   snapshots and their MB, discovery configs, events, review items, other) per minute. ``--tree
   DIR`` runs another checkout's ``detector`` (the code before a change: ``git archive COMMIT |
   tar -x -C DIR``), whose settings may lack the newer keys (the configs here use none).

    DETECTOR_TEST_VIDEOS=../shared/videos python tests/measure_mqtt.py --rate [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosquitto import Broker, Message, Subscriber
from streaming import StreamServer, ffmpeg_exe
from webhook import Webhook

ROOT = Path(__file__).resolve().parent.parent
DOOR = "one-by-one-person-detection.mp4"
GIF = "person-bicycle-car-detection.gif"
STREET = "car-detection.mp4"  # 12.5 fps, 30 s, a busy road


def door_config(folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "count-people-doorway.yaml").read_text())
    data["zones"] = [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]
    data["notify"] = {"cooldown": 0}
    path = folder / "door.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(args: list[str], folder: Path, tree: Path = ROOT) -> dict:
    """One run's report, with ``cpu_s``: the CPU seconds (user + system) the process used."""
    report = folder / "report.json"
    cmd = [sys.executable, "-m", "detector", "run", *args, "--report", str(report), "--overwrite", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, cwd=folder, env={**os.environ, "PYTHONPATH": str(tree)}, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(report.read_text())
    out["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def kind(message: Message) -> str:
    """What a message is: counts, snapshot, discovery, events, reviews or other."""
    topic = message.topic
    if topic.startswith("homeassistant/"):
        return "discovery"
    if topic.endswith("/snapshot"):
        return "snapshots"
    if topic.rsplit("/", 1)[-1] in ("events", "reviews", "stats", "available", "status"):
        return topic.rsplit("/", 1)[-1]
    return "counts"


def rates(videos: Path, seconds: float, tree: Path, only: list[str]) -> None:
    """Messages per minute of each footage served live, by kind, and the busiest count topic."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        busy = folder / "street-loop.mp4"  # the street GIF 30 times over: a busy street for a minute
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-stream_loop", "29", "-i", str(videos / GIF), "-c:v", "libx264",
             "-pix_fmt", "yuv420p", "-r", "12.5", str(busy)], check=True, timeout=300,
        )  # fmt: skip
        traffic = ["--config", str(ROOT / "configs" / "traffic-zones.yaml")]
        cases = [
            (videos / DOOR, 10.0, ["--config", str(door_config(folder))]),
            (videos / STREET, 12.5, traffic),
            (busy, 12.5, ["--track", "--clip-on", "person", "--clips", str(folder / "clips")]),  # any class
        ]
        cases = [case for case in cases if not only or any(o in case[0].name for o in only)]
        with Broker(folder) as broker:
            for clip, fps, extra in cases:
                with (
                    Subscriber(broker) as sub,
                    StreamServer(clip, loop=True, lifetime=seconds + 120) as stream,
                ):
                    frames = str(round(seconds * fps))
                    args = [stream.url, *extra, "--mqtt", broker.url, "--max-frames", frames]
                    report = run(args, folder, tree)
                    time.sleep(1.0)  # the last messages
                    messages = [m for m in sub.messages if not m.retain]
                minutes = (messages[-1].at - messages[0].at) / 60
                by_kind = Counter(kind(m) for m in messages)
                shots = sum(len(m.payload) for m in messages if kind(m) == "snapshots") / 1e6
                topics = Counter(m.topic for m in messages if kind(m) == "counts")
                busiest, most = topics.most_common(1)[0] if topics else ("-", 0)
                kinds = ", ".join(f"{k} {n / minutes:.0f}" for k, n in by_kind.most_common())
                print(f"{clip.name} live, {report['frames']['processed']} frames, {minutes * 60:.0f} s: "
                      f"{len(messages) / minutes:.0f} messages/min; by kind per minute {kinds}; "
                      f"snapshots {shots:.2f} MB; busiest count topic {busiest} {most / minutes:.0f}/min; "
                      f"discovery configs {by_kind['discovery']}", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--rate", action="store_true", help="messages per minute only (3.)")
    parser.add_argument("--rate-seconds", type=float, default=60.0)
    parser.add_argument("--only", nargs="*", default=[], help="--rate: footage whose name has one of these")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose detector runs (--rate)")
    opts = parser.parse_args()
    videos = Path(os.environ["DETECTOR_TEST_VIDEOS"])
    if opts.rate:
        rates(videos, opts.rate_seconds, opts.tree.resolve(), opts.only)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Broker(folder) as broker, Subscriber(broker) as sub, Webhook() as hook:
            base = [
                str(videos / DOOR),
                "--config",
                str(door_config(folder)),
                "--max-frames",
                str(opts.frames),
            ]
            told = [*base, "--mqtt", broker.url, "--notify", hook.url]
            ratios, cpu = [], []
            for k in range(opts.pairs):
                off, on = run(base, folder), run(told, folder)
                ratios.append(on["fps"] / off["fps"])
                cpu.append(on["cpu_s"] / off["cpu_s"])
                print(
                    f"pair {k + 1}: fps without {off['fps']:.2f}, with {on['fps']:.2f} "
                    f"(ratio {ratios[-1]:.3f}); CPU s without {off['cpu_s']:.1f}, with {on['cpu_s']:.1f} "
                    f"(ratio {cpu[-1]:.3f}); sinks ms/frame without {off['stage_ms']['write']['mean']:.2f}, "
                    f"with {on['stage_ms']['write']['mean']:.2f}; "
                    f"mqtt published {on['mqtt']['run_published']}, "
                    f"dropped {on['mqtt']['run_dropped']}; notifications sent {on['notify']['sent']}",
                    flush=True,
                )
            for what, values in (("fps", ratios), ("CPU seconds", cpu)):
                print(f"{what} ratio with/without: median {statistics.median(values):.3f}, "
                      f"mean {statistics.mean(values):.3f}, {[round(r, 3) for r in values]}")  # fmt: skip
            print(f"webhook POSTs: {len(hook.received())}")
            delays: list[float] = []
            outbox: list[float] = []
            config = ROOT / "configs" / "traffic-zones.yaml"
            for _ in range(opts.latency_runs):
                start = len(sub.messages)
                report = run([str(videos / GIF), "--config", str(config), "--mqtt", broker.url], folder)
                outbox.append(report["mqtt"]["latency_ms"]["p95"])
                for m in sub.messages[start:]:
                    if m.topic == "detector/events":
                        wall = datetime.fromisoformat(json.loads(m.payload)["wall_time"]).timestamp()
                        delays.append((m.at - wall) * 1000)
            d = np.asarray(delays)
            p50, p95 = np.percentile(d, 50), np.percentile(d, 95)
            print(f"frame (sinks) to MQTT subscriber, {len(d)} events over {opts.latency_runs} runs: "
                  f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {d.max():.1f} ms")  # fmt: skip
            print(f"outbox (frame at the sinks to the broker, every message) p95 per run: {outbox} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
