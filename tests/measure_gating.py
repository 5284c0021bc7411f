"""Issue 23's targets for gated detection, measured on loopback streams; not a test.

    PYTHONPATH=. python tests/measure_gating.py [CASE ...] [--cycles 12] [--compare-cameras 4]
        [--rounds 1] [--video] [--keep DIR]

CASEs (default: all, in this order):

* ``quiet12``, ``quiet16``: 12 (16) "quiet cameras" in one run, motion gating on (``motion: auto``
  is on for live sources). A quiet camera is ``tests/quiet_camera.py``'s: 1280x720, 10 fps, from the
  doorway clip (from 15 s on), 8 s frozen with sensor noise, then 2 s of the clip, over and over
  (``--cycles`` times: 12 cycles = 120 s). Camera k starts ``k * 10 // N`` s into the stream, so their
  moving spells do not all come at once. Target (12): each camera has at least 95% of its frames
  analysed (a JSONL line: the model ran, or it skipped a still frame), p95 latency at most 300 ms.
  Each share is also given from 2 s on: the first seconds hold every camera's first model run at once.
* ``compare``: ``--compare-cameras`` quiet cameras, with motion gating and with ``--no-motion``, in
  alternating runs: line crossings and zone entries equal per camera, track counts within 10%.
* ``busy``: ``--compare-cameras`` busy cameras (the street clip, every frame moves, 1280x720 10 fps,
  looped) with and without motion gating, paired: gating must be no worse.
* ``1080p30``: one 1080p30 live stream (the bottle line) as it is (motion on), with
  ``--detect-fps 10``, and with ``--no-motion``: target at least 90% of the frames analysed.
* ``cpu``: what a camera costs, measured where no frame can drop (so less at the mercy of other
  load): ``--compare-cameras`` copies of the quiet and of the busy clip as files in one run, with
  ``--motion`` and ``--no-motion`` alternating; CPU ms per frame (the process's user + system time)
  and the 10 fps cameras that two cores would carry at that cost.

Every run is one ``detector run`` of every stream with ``--json`` (``--video``: also an MP4 each), the
doorway config (a line at the door) plus a zone at the door, and ``--report DIR/{name}.json``. Per
camera it prints frames analysed of those the stream sent, the share the model ran on, latency p50/p95,
crossings, zone entries and tracks; per run, the CPU the process used (cores) and how busy the main
thread was (stages + sinks of every lane: the sum of each source's mean "stages" + "write" ms times its
frames, over the wall time), the figure that says whether parallel lanes would help.
``PYTHONPATH`` picks the code measured. Loopback only. With the defaults it takes about 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from quiet_camera import DOORWAY, ffmpeg, make_quiet_camera  # noqa: E402
from streaming import StreamServer  # noqa: E402

VIDEOS = Path(os.environ.get("DETECTOR_TEST_VIDEOS", "/work/shared/videos"))
START_S = 2.0  # seconds of start-up left out of the "from 2 s on" figure
CASES = ("quiet12", "quiet16", "compare", "busy", "1080p30", "cpu")


@dataclass
class Camera:
    name: str
    sent: int
    analysed: int
    steady: float  # the share analysed from START_S on (the first seconds: every camera's first model run)
    ran: int
    p50: float
    p95: float
    events: Counter[str]
    tracks: int

    def line(self) -> str:
        return (
            f"{self.name}: analysed {self.analysed}/{self.sent} = {self.analysed / max(1, self.sent):.1%}, "
            f"{self.steady:.1%} from {START_S:g} s on, model on {self.ran / max(1, self.analysed):.0%}; "
            f"latency p50 {self.p50:.0f} ms, p95 "
            f"{self.p95:.0f} ms; crossings {self.events['line_cross']}, zone entries "
            f"{self.events['zone_enter']}, tracks {self.tracks}"
        )


@dataclass
class RunResult:
    cameras: list[Camera]
    wall: float
    cores: float
    main_busy: float
    stage_ms: dict[str, float]

    def lines(self) -> list[str]:
        worst = min(c.analysed / max(1, c.sent) for c in self.cameras)
        steady = min(c.steady for c in self.cameras)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        return [
            f"{len(self.cameras)} cameras: worst analysed {worst:.1%} ({steady:.1%} from {START_S:g} s on), "
            f"worst p95 "
            f"{max(c.p95 for c in self.cameras):.0f} ms, model on "
            f"{sum(c.ran for c in self.cameras) / max(1, sum(c.analysed for c in self.cameras)):.0%} of "
            f"frames; {self.cores:.2f} cores over {self.wall:.0f} s; main thread busy {self.main_busy:.0%}",
            f"  stage ms (mean per frame, over cameras): {stages}",
            *(f"  {c.line()}" for c in self.cameras),
        ]


def make_assets(folder: Path, cycles: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    assets = {"quiet": folder / f"quiet-{cycles}.mp4", "busy": folder / f"busy-{cycles}.mp4"}
    assets["1080p30"] = folder / f"bottles-1080p30-{cycles}.mp4"
    seconds = 10 * cycles
    if not assets["quiet"].exists():
        make_quiet_camera(VIDEOS / DOORWAY, assets["quiet"], start=15, cycles=cycles)
    if not assets["busy"].exists():
        ffmpeg(
            "-ignore_loop", "0", "-i", str(VIDEOS / "person-bicycle-car-detection.gif"), "-t", str(seconds),
            "-vf", "scale=1280:720,fps=10,setsar=1,format=yuv420p", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "10", str(assets["busy"]),
        )  # fmt: skip
    if not assets["1080p30"].exists():
        ffmpeg(
            "-stream_loop", "-1", "-i", str(VIDEOS / "bottle-detection.mp4"), "-t", str(min(seconds, 60)),
            "-vf", "scale=1920:1080,fps=30,setsar=1,format=yuv420p", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "30", "-an", str(assets["1080p30"]),
        )  # fmt: skip
    config = yaml.safe_load((HERE.parent / "configs" / "count-people-doorway.yaml").read_text())
    config["zones"] = [{"name": "exit", "polygon": [[0.7, 0.5], [1, 0.5], [1, 1], [0.7, 1]]}]
    assets["config"] = folder / "door.yaml"
    assets["config"].write_text(yaml.safe_dump(config))
    return assets


def run(clip: Path, cameras: int, extra: list[str], assets: dict[str, Path], video: bool) -> RunResult:
    """One ``detector run`` of ``cameras`` streams of ``clip`` (staggered by whole seconds)."""
    offsets = [k * 10 // cameras % 10 for k in range(cameras)] if cameras > 1 else [0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        servers = [StreamServer(clip, offset=o, lifetime=900).start() for o in offsets]
        try:
            js = out / "out.jsonl"
            cmd = [sys.executable, "-m", "detector", "run", *(s.url for s in servers), "--json", str(js)]
            cmd += ["--config", str(assets["config"]), "--reconnect-max", "0", "-q", "--overwrite"]
            cmd += ["--report", str(out / ("{name}.json" if cameras > 1 else "report.json")), *extra]
            if video:
                cmd += ["--output", str(out / ("{name}.mp4" if cameras > 1 else "out.mp4"))]
            env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env={**env, "YOLO_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            err = proc.stderr.read() if proc.stderr else ""
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"detector run failed: {err[-2000:]}")
        finally:
            for server in servers:
                server.stop()
        reports = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
        return summarize(js, reports, wall, (usage.ru_utime + usage.ru_stime) / wall)


def _steady(records: list[dict[str, Any]]) -> float:
    """The share of the frames sent from ``START_S`` on that were analysed."""
    span = max(r["pts"] for r in records) - min(r["pts"] for r in records)
    fps = (max(r["frame"] for r in records) - min(r["frame"] for r in records)) / max(span, 1e-6)
    first = int(START_S * fps)
    seen = {r["frame"] for r in records if r["frame"] >= first}
    return len(seen) / max(1, max(r["frame"] for r in records) + 1 - first)


def summarize(js: Path, reports: list[dict[str, Any]], wall: float, cores: float) -> RunResult:
    frames: dict[str, list[dict[str, Any]]] = {}
    events: dict[str, Counter[str]] = {}
    for line in js.read_text().splitlines():
        record = json.loads(line)
        name = record.get("source", "stream")
        if "event" in record:
            events.setdefault(name, Counter())[record["event"]] += 1
        else:
            frames.setdefault(name, []).append(record)
    cameras = []
    for name, records in sorted(frames.items()):
        latency = sorted(r["latency_ms"] for r in records)
        cameras.append(
            Camera(
                name=name,
                sent=max(r["frame"] for r in records) + 1,
                analysed=len(records),
                steady=_steady(records),
                ran=sum(r.get("inference", True) for r in records),
                p50=statistics.median(latency),
                p95=latency[int(0.95 * (len(latency) - 1))],
                events=events.get(name, Counter()),
                tracks=len({d["track_id"] for r in records for d in r["detections"]}),
            )
        )
    busy_ms = sum(
        (r["stage_ms"]["stages"]["mean"] + r["stage_ms"]["write"]["mean"]) * r["frames"]["processed"]
        for r in reports
    )
    stage_ms = {
        k: statistics.mean(r["stage_ms"][k]["mean"] for r in reports if k in r["stage_ms"])
        for k in ("decode", "motion", "inference", "stages", "write")
        if any(k in r["stage_ms"] for r in reports)
    }
    return RunResult(cameras, wall, cores, busy_ms / 1000 / wall, stage_ms)


def cpu_per_frame(clip: Path, copies: int, mode: str, assets: dict[str, Path]) -> tuple[float, int]:
    """CPU ms per frame of ``copies`` of ``clip`` as files in one run, and the frames the model ran on."""
    with tempfile.TemporaryDirectory() as tmp:
        js = Path(tmp) / "out.jsonl"
        cmd = [sys.executable, "-m", "detector", "run", *[str(clip)] * copies, mode, "-q"]
        cmd += ["--config", str(assets["config"]), "--json", str(js)]
        proc = subprocess.Popen(cmd, env={**os.environ, "YOLO_OFFLINE": "1"}, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"detector run {mode} failed")
        frames = [json.loads(x) for x in js.read_text().splitlines()]
        frames = [r for r in frames if "event" not in r]
        ran = sum(r.get("inference", True) for r in frames)
        return (usage.ru_utime + usage.ru_stime) * 1000 / len(frames), ran


def cpu_case(assets: dict[str, Path], copies: int) -> list[str]:
    out = []
    for kind in ("quiet", "busy"):
        costs = {}
        for mode in ("--motion", "--no-motion"):
            ms, ran = cpu_per_frame(assets[kind], copies, mode, assets)
            costs[mode] = ms
            out.append(
                f"  {kind}, {copies} files, {mode}: {ms:.1f} CPU ms a frame (start-up included), model on "
                f"{ran} frames; two cores carry {2000 / (10 * ms):.1f} cameras at 10 fps"
            )
        out.append(f"  {kind}: motion on / --no-motion = {costs['--motion'] / costs['--no-motion']:.2f}")
    return out


def compare(gated: RunResult, plain: RunResult) -> list[str]:
    out = []
    for a, b in zip(gated.cameras, plain.cameras, strict=True):
        same = (
            a.events["line_cross"] == b.events["line_cross"]
            and a.events["zone_enter"] == b.events["zone_enter"]
        )
        close = abs(a.tracks - b.tracks) <= 0.1 * max(a.tracks, b.tracks)
        out.append(
            f"  {a.name}: crossings {a.events['line_cross']} vs {b.events['line_cross']}, zone entries "
            f"{a.events['zone_enter']} vs {b.events['zone_enter']}, tracks {a.tracks} vs {b.tracks}: "
            f"{'equal' if same else 'DIFFER'}, tracks {'within 10%' if close else 'NOT within 10%'}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"of: {', '.join(CASES)}")
    parser.add_argument("--cycles", type=int, default=12, help="quiet camera cycles of 10 s (default 12)")
    parser.add_argument("--compare-cameras", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--video", action="store_true", help="also write an annotated MP4 per camera")
    parser.add_argument("--keep", type=Path, help="folder for the made clips, reused by later runs")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]}; the cases are {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as tmp:
        assets = make_assets(args.keep or Path(tmp), args.cycles)
        n = args.compare_cameras
        for r in range(args.rounds):
            print(f"== round {r + 1}", flush=True)
            for case in args.cases:
                if case.startswith("quiet"):
                    result = run(assets["quiet"], int(case[5:]), [], assets, args.video)
                    print(f"-- {case}: motion on", *result.lines(), sep="\n", flush=True)
                elif case in ("compare", "busy"):
                    clip = assets["quiet" if case == "compare" else "busy"]
                    gated = run(clip, n, [], assets, args.video)
                    plain = run(clip, n, ["--no-motion"], assets, args.video)
                    print(f"-- {case}: {n} cameras, motion on", *gated.lines(), sep="\n")
                    print(f"-- {case}: {n} cameras, --no-motion", *plain.lines(), sep="\n")
                    if case == "compare":
                        print("-- compare: motion on vs --no-motion", *compare(gated, plain), sep="\n")
                    print(flush=True)
                elif case == "cpu":
                    print("-- cpu: cost per frame", *cpu_case(assets, n), sep="\n", flush=True)
                else:
                    for extra in ([], ["--detect-fps", "10"], ["--no-motion"]):
                        what = " ".join(extra) or "motion on"
                        result = run(assets["1080p30"], 1, extra, assets, args.video)
                        print(f"-- 1080p30: {what}", *result.lines(), sep="\n", flush=True)


if __name__ == "__main__":
    main()
