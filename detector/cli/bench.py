"""``detector bench SOURCE``: per-stage ms and fps, our pipelined loop against a plain sequential one."""

from __future__ import annotations

import argparse
from typing import Any

from detector.cli.common import add_general_flags, positive
from detector.settings.base import BENCH
from detector.settings.flags import ORDER_HELP, add_setting_flags, setting_overrides


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="measure per-stage ms and fps, pipelined vs a plain sequential loop",
        description="Benchmark on the first N frames of SOURCE: inference only, a sequential loop, and our "
        "pipelined loop, alternating, twice. Prints per-stage ms (mean, p95), fps and ratios.",
        epilog=ORDER_HELP,
    )
    p.add_argument("source", metavar="SOURCE", help="a video file or image folder")
    p.add_argument("--frames", type=positive, default=300, help="frames per run (default: 300)")
    p.add_argument("--rounds", type=positive, default=2, help="rounds, alternating order (default: 2)")
    p.add_argument("--json", dest="print_json", action="store_true", help="print JSON instead of a table")
    add_setting_flags(p, BENCH)
    add_general_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, started_at: float) -> int:
    from detector.bench import print_bench, run_bench
    from detector.settings import load_settings

    settings = load_settings(args.config, setting_overrides(args), command=BENCH)
    print_bench(run_bench(args.source, settings, frames=args.frames, rounds=args.rounds), args.print_json)
    return 0
