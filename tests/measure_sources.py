"""Measure several files in one run (the README's figures); not a test.

    python tests/measure_sources.py CLIP1 CLIP2 CLIP3 [--frames 300] [--rounds 2]

Per round, alternating: the clips one after another in one process (the model loaded once), all of
them in one ``Run`` (one model, frames of the three shared out), and three ``detector run``
processes at once (three models; wall time including start-up). Then the peak RSS of a run with one
source and with all of them (``/usr/bin/time``). Every run writes an annotated MP4 per clip.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

SNIPPET = """
import sys, time
from detector.backends import load_detector
from detector.cli.common import setup_logging
from detector.compose.run import Run
from detector.settings import load_settings
setup_logging(quiet=True)
frames, together, clips = int(sys.argv[1]), sys.argv[2] == "together", sys.argv[3:]
settings = load_settings(None, {"max_frames": frames, "output": "{name}.mp4", "overwrite": True}, env={})
detector = load_detector(settings, requests=2)
t = time.perf_counter()
if together:
    n = sum(s.frames_processed for s in Run(settings, clips, detector=detector).execute())
else:
    n = sum(s.frames_processed for c in clips for s in Run(settings, [c], detector=detector).execute())
print(n, time.perf_counter() - t)
"""


def in_process(
    clips: list[str], frames: int, together: bool, cwd: str, env: dict[str, str]
) -> tuple[int, float]:
    args = [sys.executable, "-c", SNIPPET, str(frames), "together" if together else "apart", *clips]
    out = subprocess.run(args, env=env, capture_output=True, text=True, cwd=cwd, check=True).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    clips = [os.path.abspath(c) for c in args.clips]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")} | {
        "YOLO_OFFLINE": "1"
    }
    run = [sys.executable, "-m", "detector", "run", "--max-frames", str(args.frames), "--overwrite", "-q"]
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.rounds):
            n1, t1 = in_process(clips, args.frames, False, out, env)
            n3, t3 = in_process(clips, args.frames, True, out, env)
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [*run, c, "--output", f"p{k}.mp4"], env=env, cwd=out, stderr=subprocess.DEVNULL
                )
                for k, c in enumerate(clips)
            ]
            for p in procs:
                p.wait()
            tp = time.perf_counter() - t0
            print(
                f"round {r + 1}: one after another {n1 / t1:.1f} fps; one run of all {n3 / t3:.1f} fps "
                f"(ratio {n3 / t3 / (n1 / t1):.2f}); {len(clips)} processes at once {n3 / tp:.1f} fps "
                f"including start-up ({tp:.1f} s against {t3:.1f} s)"
            )

        def peak_mb(sources: list[str], output: str) -> float:
            timed = ["/usr/bin/time", "-f", "%M", *run, *sources, "--output", output]
            done = subprocess.run(timed, env=env, capture_output=True, text=True, cwd=out, check=True)
            return int(done.stderr.strip().splitlines()[-1]) / 1024

        one, every = peak_mb(clips[:1], "one.mp4"), peak_mb(clips, "all-{name}.mp4")
        print(
            f"peak RSS: one source {one:.0f} MB, {len(clips)} sources {every:.0f} MB, ratio {every / one:.2f}"
        )


if __name__ == "__main__":
    main()
