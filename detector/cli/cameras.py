"""``detector cameras``: list the cameras OpenCV can open (index, resolution, fps, backend)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from detector.cli.common import add_general_flags, whole_number


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cameras", help="list available cameras (index, resolution, backend)")
    p.add_argument(
        "--max-index", type=whole_number, default=10, help="probe indices below this (default: 10)"
    )
    add_general_flags(p, config=False)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, started_at: float) -> int:
    import cv2

    from detector.sources.camera import open_camera_quietly

    found = 0
    for i in range(args.max_index):
        cap = open_camera_quietly(i)
        try:
            if cap.isOpened():
                w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                fps = cap.get(cv2.CAP_PROP_FPS)
                print(f"{i}\t{w}x{h}\t{fps:.0f} fps\t{cap.getBackendName()}")
                found += 1
        finally:
            cap.release()
    if not found:
        print(f"no cameras found (probed indices 0-{args.max_index - 1})", file=sys.stderr)
    return 0
