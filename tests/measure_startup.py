"""Start-up: a one-frame run as a whole process, paired against another checkout; not a test.

    PYTHONPATH=. python tests/measure_startup.py [--rounds 7] [--against PATH] [-- EXTRA RUN FLAGS]

Runs ``python -m detector run videos/sample.mp4 --max-frames 1 -q --json FILE`` in this checkout and,
with ``--against`` (e.g. a ``git worktree add /tmp/old af629c5``), in that one, alternately, so the
machine's load falls on both alike. Prints each one's median wall and CPU time (user + system, which
a loaded machine moves less) and the median of the paired ratios, then the detector modules the
run imports that the other's does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import runpy, sys
sys.argv = ["detector", *sys.argv[1:]]
try:
    runpy.run_module("detector", run_name="__main__")
except SystemExit:
    pass
print(" ".join(sorted(m for m in sys.modules if m.startswith("detector"))), file=sys.stderr)
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(tree: Path, flags: list[str], folder: Path, probe: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, the detector modules it imported when ``probe``) of one run."""
    argv = ["run", str(ROOT / "videos" / "sample.mp4"), "--max-frames", "1", "-q", "--overwrite"]
    argv += ["--json", str(folder / "one.jsonl"), *flags]
    cmd = [sys.executable, "-c", PROBE, *argv] if probe else [sys.executable, "-m", "detector", *argv]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0, c0 = time.perf_counter(), cpu()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    wall, used = time.perf_counter() - t0, cpu() - c0
    return wall, used, done.stderr.strip().splitlines()[-1] if probe else ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--against", type=Path)
    parser.add_argument("flags", nargs="*", help="more `detector run` flags (after --)")
    args = parser.parse_args()
    trees = [ROOT] + ([args.against.resolve()] if args.against else [])
    times: dict[Path, list[float]] = {t: [] for t in trees}
    cpus: dict[Path, list[float]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for tree in trees:
            run(tree, args.flags, Path(tmp))  # warm the disk cache and OpenVINO's compile cache
        for _ in range(args.rounds):
            for tree in trees:
                wall, used, _ = run(tree, args.flags, Path(tmp))
                times[tree].append(wall)
                cpus[tree].append(used)
        modules = {tree: set(run(tree, args.flags, Path(tmp), probe=True)[2].split()) for tree in trees}
    for tree in trees:
        runs = ", ".join(f"{t:.2f}" for t in times[tree])
        used = statistics.median(cpus[tree])
        print(f"{tree}: median {statistics.median(times[tree]):.3f} s wall of {args.rounds} ({runs}), "
              f"{used:.3f} s CPU; {len(modules[tree])} detector modules")  # fmt: skip
    if args.against:
        for what, got in (("wall", times), ("CPU", cpus)):
            ratios = [a / b for a, b in zip(got[ROOT], got[trees[1]], strict=True)]
            print(f"paired ratio this / other, {what}: median {statistics.median(ratios):.3f}")
        print("only here:", " ".join(sorted(modules[ROOT] - modules[trees[1]])) or "-")
        print("only there:", " ".join(sorted(modules[trees[1]] - modules[ROOT])) or "-")


if __name__ == "__main__":
    main()
