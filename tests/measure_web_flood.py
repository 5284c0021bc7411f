"""Measure what a flood of idle web connections does to a recording run (issue 30.6); not a test.

    DETECTOR_TEST_VIDEOS=../shared/videos python tests/measure_web_flood.py [--rounds 2] [--phase 8]

One ``detector run`` of the doorway clip as a looping live loopback stream, with ``--record`` and
``--serve``, under a limit of 1024 open files (soft and hard). Phases alternate: A quiet, B with 1,100
connections that each sent half a request line and then nothing (opened at the phase's start, closed
at its end). Per phase: frames processed per second (JSONL lines), segments written, the run's open
descriptors (most seen, /proc/PID/fd), its CPU seconds per second, and how many of the 1,100 the
server dropped at once. Then B/A ratios, paired phase by phase.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming import StreamServer
from web_client import address, wait_for

LIMIT = 1024
CONNECTIONS = 1100
CLIP = "one-by-one-person-detection.mp4"


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def phase(pid: int, jsonl: Path, segments: Path, seconds: float, url: str | None) -> dict[str, float]:
    held: list[socket.socket] = []
    dropped = 0
    if url is not None:
        for _ in range(CONNECTIONS):
            s = socket.create_connection(address(url), timeout=5)
            held.append(s)
            try:
                s.send(b"GET /stream.mjpg HT")
            except OSError:
                dropped += 1
        time.sleep(0.5)
        for s in held:  # dropped by the server: the socket reads EOF (or a reset) at once
            s.setblocking(False)
            try:
                dropped += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                dropped += 1
    frames0, seg0, cpu0, t0 = lines(jsonl), lines(segments), cpu_seconds(pid), time.monotonic()
    most = 0
    while time.monotonic() - t0 < seconds:
        most = max(most, open_fds(pid))
        time.sleep(0.2)
    dt = time.monotonic() - t0
    out = {"fps": (lines(jsonl) - frames0) / dt, "segments": lines(segments) - seg0, "fds": most,
           "cpu": (cpu_seconds(pid) - cpu0) / dt, "dropped": dropped}  # fmt: skip
    for s in held:
        s.close()
    time.sleep(1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--phase", type=float, default=8.0, help="seconds (under the 10 s header deadline)")
    args = parser.parse_args()
    videos = Path(os.environ.get("DETECTOR_TEST_VIDEOS", "videos"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with tempfile.TemporaryDirectory() as tmp, StreamServer(videos / CLIP, loop=True, lifetime=600) as server:
        folder = Path(tmp)
        jsonl, rec = folder / "out.jsonl", folder / "rec"
        cmd = ["detector", "run", server.url, "--record", str(rec), "--record-segment", "2", "--json",
               str(jsonl), "--serve", "127.0.0.1:0", "--reconnect-max", "0"]  # fmt: skip

        def limited() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

        err = folder / "stderr.txt"
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        with err.open("wb") as f:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, env=env, preexec_fn=limited)
        try:
            wait_for("the web view", lambda: re.search(r"web view on (\S+/)", err.read_text()), timeout=60)
            url = re.findall(r"web view on (\S+/)", err.read_text())[0]
            wait_for("frames", lambda: lines(jsonl) > 30, timeout=60)
            results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
            for _ in range(args.rounds):
                for name in ("A", "B"):
                    got = phase(
                        proc.pid, jsonl, rec / "segments.jsonl", args.phase, url if name == "B" else None
                    )
                    results[name].append(got)
                    print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()), flush=True)
                    if proc.poll() is not None:
                        raise SystemExit(f"the run ended ({proc.returncode}):\n{err.read_text()[-2000:]}")
            ratios = [
                b["fps"] / a["fps"] for a, b in zip(results["A"], results["B"], strict=True) if a["fps"]
            ]
            print(f"fps B/A pair by pair: {', '.join(f'{r:.3f}' for r in ratios)}; "
                  f"median {statistics.median(ratios):.3f}")  # fmt: skip
            print(f"open descriptors, most seen: A {max(r['fds'] for r in results['A']):.0f}, "
                  f"B {max(r['fds'] for r in results['B']):.0f} (limit {LIMIT})")  # fmt: skip
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            text = err.read_text()
            print(f"exit {code}; 'Too many open files' in stderr: {text.count('Too many open files')}; "
                  f"tracebacks: {text.count('Traceback')}")  # fmt: skip


if __name__ == "__main__":
    main()
