"""Measure what the web view costs (the README's figures); not a test. Loopback only.

    DETECTOR_TEST_VIDEOS=../shared/videos python tests/measure_web.py [--rounds 2]

1. One viewer at 1080p: a 1080p30 file, runs alternating without and with one full-rate viewer;
   processed fps from each run's report.
2. The view's delay: a live 720p30 stream with one full-rate MJPEG reader; for each frame, when its
   MJPEG part arrived minus when its JSONL line appeared (both on this machine's monotonic clock),
   plus the JSONL's own latency (capture to sinks).
3. CPU of 2 full-rate viewers: the same stream, one run, phases without and with them alternating;
   the process's CPU time (/proc) per second of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming import StreamServer, ffmpeg_exe
from web_client import Viewer, get, wait_for


def make_clip(src: Path, out: Path, size: str, seconds: int) -> Path:
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-t", str(seconds), "-i", str(src)]
    cmd += ["-vf", f"scale={size},fps=30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]
    cmd += ["-pix_fmt", "yuv420p", "-an", str(out)]
    subprocess.run(cmd, check=True, timeout=300)
    return out


def start(source: str, folder: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = folder / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    cmd = ["detector", "run", source, "--serve", "127.0.0.1:0", "--overwrite", *extra]
    with err.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, env=env)
    return proc, err


def web_url(err: Path) -> str:
    found: list[str] = []

    def logged() -> bool:
        found[:] = re.findall(r"web view on (http://127\.0\.0\.1:\d+/)", err.read_text())
        return bool(found)

    wait_for("the web view's address", logged, timeout=60)
    return found[0]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_viewer_at_1080p(clip: Path, folder: Path, rounds: int) -> None:
    fps: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for watched in (False, True):
            report = folder / "report.json"
            proc, err = start(str(clip), folder, "--report", str(report))
            viewer = Viewer(web_url(err)).start() if watched else None
            proc.wait(600)
            if viewer is not None:
                viewer.close()
            fps[watched].append(json.loads(report.read_text())["fps"])
            got = f", the viewer got {len(viewer.parts)} frames" if viewer else ""
            print(
                f"  1080p file, {'one viewer' if watched else 'no viewer'}: {fps[watched][-1]:.1f} fps{got}"
            )
    a, b = statistics.mean(fps[False]), statistics.mean(fps[True])
    print(f"1080p file: {a:.1f} fps without a viewer, {b:.1f} with one ({(b / a - 1) * 100:+.1f}%)")


def delay_and_cpu(clip: Path, folder: Path, rounds: int) -> None:
    jsonl = folder / "live.jsonl"
    with StreamServer(clip, lifetime=600) as server:
        proc, err = start(server.url, folder, "--json", str(jsonl))
        url = web_url(err)
        wait_for("frames", lambda: get(url, "/api/status").json()["frames"] >= 30, timeout=60)
        # JSONL lines as they appear (polled every 2 ms) and MJPEG parts as they arrive.
        seen: dict[int, float] = {}
        latency: dict[int, float] = {}
        stop = threading.Event()

        def tail() -> None:
            with jsonl.open("rb") as f:
                buf = b""
                while not stop.is_set():
                    chunk = f.read()
                    now = time.monotonic()
                    if not chunk:
                        time.sleep(0.002)
                        continue
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        rec = json.loads(line)
                        if "event" not in rec:
                            seen[rec["frame"]] = now
                            latency[rec["frame"]] = rec["latency_ms"]

        tailer = threading.Thread(target=tail, daemon=True)
        tailer.start()
        cpu: dict[bool, list[float]] = {False: [], True: []}
        fps: dict[bool, list[float]] = {False: [], True: []}
        delays: list[float] = []
        for watched in [False, True] * rounds + [False]:
            viewers = [Viewer(url).start() for _ in range(2)] if watched else []
            if viewers:
                wait_for("2 viewers", lambda: get(url, "/api/status").json()["viewers"]["video"] == 2)
            c0, t0, f0 = cpu_seconds(proc.pid), time.monotonic(), get(url, "/api/status").json()["frames"]
            time.sleep(6)
            dt = time.monotonic() - t0
            cpu[watched].append((cpu_seconds(proc.pid) - c0) / dt * 100)
            fps[watched].append((get(url, "/api/status").json()["frames"] - f0) / dt)
            for v in viewers:
                v.close()
                delays += [
                    (p.received_at - seen[p.frame]) * 1000 + latency[p.frame]
                    for p in v.parts
                    if p.frame in seen
                ]
            behind = [
                (p.received_at - seen[p.frame]) * 1000 for v in viewers for p in v.parts if p.frame in seen
            ]
            if behind:
                q = statistics.quantiles(behind, n=20)
                print(
                    f"  view behind the JSONL line: median {statistics.median(behind):.1f} ms, "
                    f"p95 {q[18]:.1f} ms"
                )
        stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    lat = [latency[f] for f in latency]
    q = statistics.quantiles(delays, n=20)
    print(
        f"live {clip.name}: JSONL latency (capture to sinks) median {statistics.median(lat):.0f} ms; "
        f"capture to a full-rate MJPEG viewer median {statistics.median(delays):.0f} ms, p95 {q[18]:.0f} ms"
    )
    for k in (False, True):
        print(
            f"  {'2 full-rate viewers' if k else 'no viewers'}: "
            f"CPU {[round(c) for c in cpu[k]]} % of a core, "
            f"fps {[round(f, 1) for f in fps[k]]}"
        )
    extra = statistics.mean(cpu[True]) - statistics.mean(cpu[False])
    print(f"CPU used by 2 full-rate viewers: {extra:+.0f} % of one core (mean of the paired phases)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    videos = Path(os.environ["DETECTOR_TEST_VIDEOS"])
    src = videos / "one-by-one-person-detection.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one_viewer_at_1080p(make_clip(src, folder / "p1080.mp4", "1920:1080", 10), folder, args.rounds)
        delay_and_cpu(make_clip(src, folder / "p720.mp4", "1280:720", 80), folder, args.rounds)


if __name__ == "__main__":
    main()
