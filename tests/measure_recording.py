"""Soak of continuous recording with retention (the figures of issue 20); not a test. Loopback only.

    python tests/measure_recording.py [--minutes 60] [--segment 30] [--max-size 60MB] [--mode annotated]

A clip is served on loopback in a loop, in real time (ffmpeg ``-stream_loop -1 -re``, MPEG-TS over
HTTP); one ``detector run URL --record DIR --record-segment S --retain-max-size X --serve`` records it
for ``--minutes``, onto a tmpfs of ``--disk`` (as root) or a temporary folder. Every ``--every``
seconds: what the recording folder holds (bytes, files), the process's RSS, its open file
descriptors (``/proc/PID/fd``) and threads, frames processed and retention's deletions (``/metrics``).
Then Ctrl-C, the exit code, and the run report's retention timings. Prints a summary (JSON) and
writes every sample to ``OUT/soak.json``. ``PYTHONPATH`` picks the code measured.
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
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming import StreamServer
from web_client import get

CLIP = "one-by-one-person-detection.mp4"


class LoopServer(StreamServer):
    """The clip over and over (``-stream_loop -1``), for as long as the server lives."""

    def command(self) -> list[str]:
        cmd = super().command()
        return [*cmd[: cmd.index("-i")], "-stream_loop", "-1", *cmd[cmd.index("-i") :]]


def proc_figures(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def folder_figures(folder: Path) -> dict[str, int]:
    size = files = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                size += path.stat().st_size
                files += 1
        except OSError:  # deleted meanwhile
            pass
    return {"bytes": size, "files": files}


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def soak(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    clip = Path(os.environ.get("DETECTOR_TEST_VIDEOS", "../shared/videos")) / CLIP
    disk = out / "disk"
    disk.mkdir()
    mounted = False
    if args.disk and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk}", "tmpfs", str(disk)], check=True)
        mounted = True
    rec, report, err = disk / "rec", out / "report.json", out / "stderr.txt"
    seconds = args.minutes * 60
    samples: list[dict[str, Any]] = []
    try:
        with LoopServer(clip, lifetime=seconds + 600) as server:
            cmd = [sys.executable, "-m", "detector", "run", server.url, "--record", str(rec)]
            cmd += ["--record-segment", str(args.segment), "--record-mode", args.mode]
            cmd += ["--retain-max-size", args.max_size, "--serve", "127.0.0.1:0", "--report", str(report)]
            cmd += ["--reconnect-max", "10", "--overwrite"]
            env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
            with open(err, "wb") as stderr:
                proc = subprocess.Popen(
                    cmd, stderr=stderr, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                    env={**env, "YOLO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                )  # fmt: skip
            web = None
            started = time.monotonic()
            while time.monotonic() - started < seconds and proc.poll() is None:
                time.sleep(args.every)
                if web is None:
                    found = re.findall(r"web view on (http://127\.0\.0\.1:\d+/)", err.read_text())
                    web = found[0] if found else None
                sample: dict[str, Any] = {"t": round(time.monotonic() - started, 1)}
                sample.update(proc_figures(proc.pid))
                sample.update(folder_figures(rec))
                if web is not None:
                    text = get(web, "/metrics", timeout=10).body.decode()
                    sample["frames"] = metric(text, "detector_frames_processed_total")
                    sample["deleted_files"] = metric(text, "detector_retention_deleted_files_total")
                    sample["storage_full"] = metric(text, "detector_storage_full{")
                samples.append(sample)
                print(json.dumps(sample), flush=True)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(120)
    finally:
        if mounted:
            result = folder_figures(rec)
            subprocess.run(["umount", "-l", str(disk)], check=False)
        else:
            result = folder_figures(rec)
    return summarise(args, samples, code, report, result)


def summarise(
    args: argparse.Namespace, samples: list[dict[str, Any]], code: int, report: Path, last: dict[str, int]
) -> dict[str, Any]:
    warm = [s for s in samples if s["t"] >= args.warmup * 60] or samples
    half = [s for s in samples if s["t"] >= args.minutes * 30] or samples

    def span(key: str, rows: list[dict[str, Any]]) -> tuple[int, int]:
        return min(s[key] for s in rows), max(s[key] for s in rows)

    figures: dict[str, Any] = {
        "minutes": args.minutes, "segment_s": args.segment, "max_size": args.max_size, "mode": args.mode,
        "exit_code": code, "samples": len(samples),
    }  # fmt: skip
    low, high = span("bytes", half)
    top = span("bytes", samples)[1]
    figures["folder_bytes"] = {
        "max": top,
        "second_half_min": low,
        "second_half_max": high,
        "at_end": last["bytes"],
    }
    low, high = span("files", half)
    figures["files"] = {"second_half_min": low, "second_half_max": high}
    figures["rss_mb"] = {
        "after_warmup": round(warm[0]["rss_kb"] / 1024, 1),
        "end": round(samples[-1]["rss_kb"] / 1024, 1),
        "max": round(span("rss_kb", samples)[1] / 1024, 1),
    }
    low, high = span("fds", warm)
    figures["fds"] = {"after_warmup_min": low, "after_warmup_max": high, "end": samples[-1]["fds"]}
    low, high = span("threads", warm)
    figures["threads"] = {"min": low, "max": high}
    figures["frames"] = samples[-1].get("frames")
    figures["deleted_files"] = samples[-1].get("deleted_files")
    figures["rss_mb"]["growth"] = round(figures["rss_mb"]["end"] - figures["rss_mb"]["after_warmup"], 1)
    if report.exists():
        data = json.loads(report.read_text())
        figures["retention"] = data.get("retention")
        figures["recording"] = data.get("recording")
        figures["fps"] = data.get("fps")
        figures["frames_report"] = data.get("frames")
    figures["rss_per_sample_mb"] = [round(s["rss_kb"] / 1024, 1) for s in samples][
        :: max(1, len(samples) // 24)
    ]
    figures["fd_median"] = statistics.median(s["fds"] for s in warm)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--segment", type=float, default=30)
    parser.add_argument("--max-size", default="60MB")
    parser.add_argument("--mode", default="annotated", choices=["annotated", "raw"])
    parser.add_argument("--disk", default="256m", help="tmpfs size for the recording (as root); '' = tmp")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before the RSS baseline")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    figures = soak(args, out)
    (out / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
