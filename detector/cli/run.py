"""``detector run SOURCE``: detect objects in a video, camera, stream or image folder."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from detector.cli.common import add_general_flags
from detector.settings.base import RUN
from detector.settings.flags import ORDER_HELP, add_setting_flags, setting_overrides

log = logging.getLogger(__name__)
NOTHING_SAVED = "nothing is saved: add --output FILE.mp4 (annotated video) or --json FILE.jsonl (detections)"

EPILOG = (
    f"{ORDER_HELP} Precedence: defaults < --config FILE < flags. Exit codes: 0 done, 2 usage/input "
    "error, 3 some of several sources failed during the run (the others finished), 4 some output is "
    "incomplete (a full disk: what was written is kept), 130 interrupted, 143 terminated, 1 internal error."
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="detect objects in a video, camera, stream or image folder",
        description="Detect objects in SOURCE and show, save or stream the results.",
        epilog=EPILOG,
    )
    p.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="camera index (0), video file, URL (rtsp/rtmp/http/https), image folder, glob or image; "
        "several run together through one model (default: the config's sources:)",
    )
    add_setting_flags(p, RUN)
    add_general_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, started_at: float) -> int:
    from detector.compose.run import Run
    from detector.machine import raise_open_files_limit
    from detector.report import format_summaries
    from detector.settings import load_settings
    from detector.sources import is_live_spec

    settings = load_settings(args.config, setting_overrides(args), command=RUN)
    raise_open_files_limit()  # descriptors for segments, clips, the store and web connections
    run = Run(settings, args.sources, started_at=started_at)
    live = any(is_live_spec(p.spec) for p in run.plans)
    # what else keeps what a run finds: a window, the web view, recordings, a broker, notifications
    told = settings.mqtt.url or settings.notify.urls
    watched = settings.show or settings.serve.bind or live or settings.record.dir or told
    if not settings.output_paths() and not watched:
        log.info(NOTHING_SAVED)
    try:
        run.execute()
    finally:
        if run.reports and not args.quiet:  # -q: only warnings and errors
            print(format_summaries(run.reports), file=sys.stderr)
    return 0
