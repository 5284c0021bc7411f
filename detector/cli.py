"""The ``detector`` command line. ``main(argv) -> int`` is callable from tests.

Exit codes: 0 done; 2 anything the user can fix (one line on stderr, no traceback);
130 after Ctrl-C and 143 after SIGTERM, outputs closed; 1 a bug (traceback with --debug).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from detector import __version__
from detector.argtypes import number, whole_number
from detector.batch_cli import add_batch_parser, cmd_batch
from detector.config import DEFAULT_MODEL, MODEL_ENV, EncoderSettings, Settings, load_settings
from detector.errors import Terminated, UserError
from detector.stats import RunStats

log = logging.getLogger("detector")
D = Settings()
E = EncoderSettings()


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="detector",
        description="Real-time object detection on video: webcam, file, stream or image folder "
        "-> YOLO -> overlay -> H.264 MP4 + JSON lines.",
    )
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="detect objects in a video, camera, stream or image folder",
        description="Detect objects in SOURCE and show, save or stream the results.",
        epilog="Precedence: defaults < --config FILE < flags. Exit codes: 0 done, 2 usage/input error, "
        "130 interrupted, 143 terminated, 1 internal error.",
    )
    run.add_argument(
        "source",
        metavar="SOURCE",
        help="camera index (0), video file, URL (rtsp/rtmp/http/https), image folder, glob or image",
    )
    io = run.add_argument_group("outputs")
    io.add_argument(
        "-o", "--output", metavar="FILE.mp4", help="write annotated H.264 MP4 here (default: none)"
    )
    io.add_argument(
        "--json",
        dest="json",
        metavar="FILE.jsonl",
        help="write one JSON line per frame here; '-' for stdout (default: none)",
    )
    io.add_argument(
        "--overwrite", action="store_true", default=None, help="replace existing outputs (default: off)"
    )
    io.add_argument("--csv", metavar="FILE.csv", help="one CSV row per detection (default: none)")
    io.add_argument("--mot", metavar="FILE.txt", help="MOTChallenge file, 1-based frames (default: none)")
    io.add_argument("--report", metavar="FILE.json", help="run report: source, speed, counts (default: none)")
    io.add_argument(
        "--audio",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the source file's audio in --output, cut to the processed span (default: on)",
    )
    io.add_argument(
        "--show",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a window (default: on for cameras when a display exists)",
    )
    m = run.add_argument_group("model")
    m.add_argument(
        "-m",
        "--model",
        metavar="PATH",
        help=f"model: .pt, .yaml, .onnx or OpenVINO folder (default: ${MODEL_ENV}, "
        f"else config, else {DEFAULT_MODEL})",
    )
    m.add_argument(
        "--backend",
        choices=["auto", "torch", "openvino", "onnx"],
        help=f"inference backend (default: {D.backend})",
    )
    m.add_argument("--conf", type=number, help=f"confidence threshold in (0, 1] (default: {D.conf})")
    m.add_argument("--iou", type=number, help=f"NMS IoU threshold in (0, 1] (default: {D.iou})")
    m.add_argument("--imgsz", type=whole_number, help=f"inference size, multiple of 32 (default: {D.imgsz})")
    m.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="keep only these classes, by name or id: person car or 0,2 (default: all)",
    )
    m.add_argument(
        "--track",
        dest="tracker",
        nargs="?",
        const="bytetrack",
        choices=["bytetrack", "botsort"],
        help="track objects: ids in labels and JSONL (default: off; bytetrack when given alone)",
    )
    m.add_argument("--device", help=f"cpu, cuda:0, ... (default: {D.device})")
    m.add_argument("--half", action="store_true", default=None, help="FP16 inference on GPU (default: off)")
    m.add_argument("--max-det", type=whole_number, help=f"max detections per frame (default: {D.max_det})")
    f = run.add_argument_group("frames")
    f.add_argument("--max-frames", type=whole_number, help="stop after N processed frames (default: all)")
    f.add_argument(
        "--vid-stride",
        type=whole_number,
        help=f"process every Nth frame; output fps is divided by N (default: {D.vid_stride})",
    )
    f.add_argument(
        "--image-fps", type=number, help=f"frame rate for image folders (default: {D.image_fps:g})"
    )
    live = run.add_argument_group("live sources")
    live.add_argument(
        "--stall-timeout",
        type=number,
        help=f"network streams: seconds without data before reconnecting (default: {D.stall_timeout:g})",
    )
    live.add_argument(
        "--reconnect-max",
        type=whole_number,
        help=f"reconnect attempts before giving up, 0 = none (default: {D.reconnect_max})",
    )
    live.add_argument(
        "--camera-size", metavar="WxH", help="camera resolution, e.g. 1280x720 (default: camera's)"
    )
    live.add_argument("--camera-fps", type=number, help="camera frame rate (default: camera's)")
    enc = run.add_argument_group("encoder")
    enc.add_argument("--preset", help=f"x264 preset (default: {E.preset})")
    enc.add_argument(
        "--crf", type=whole_number, help=f"x264 quality, 0-51, lower is better (default: {E.crf})"
    )
    gen = run.add_argument_group("general")
    gen.add_argument("-c", "--config", metavar="FILE.yaml", help="YAML settings (see configs/default.yaml)")
    gen.add_argument("--no-panel", action="store_true", help="hide the FPS/count panel")
    gen.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    gen.add_argument("--debug", action="store_true", help="debug logging and tracebacks")

    bench = sub.add_parser(
        "bench",
        help="measure per-stage ms and fps, pipelined vs a plain sequential loop",
        description="Benchmark on the first N frames of SOURCE: inference only, a sequential loop, and our "
        "pipelined loop, alternating, twice. Prints per-stage ms (mean, p95), fps and ratios.",
    )
    bench.add_argument("source", metavar="SOURCE", help="a video file or image folder")
    bench.add_argument("-m", "--model", metavar="PATH", help="model (default: as for run)")
    bench.add_argument("--frames", type=whole_number, default=300, help="frames per run (default: 300)")
    bench.add_argument(
        "--rounds", type=whole_number, default=2, help="rounds, alternating order (default: 2)"
    )
    bench.add_argument("--backend", choices=["auto", "torch", "openvino", "onnx"], help="(default: auto)")
    bench.add_argument("--preset", help=f"x264 preset (default: {E.preset})")
    bench.add_argument("--imgsz", type=whole_number, help=f"inference size (default: {D.imgsz})")
    bench.add_argument("-c", "--config", metavar="FILE.yaml", help="YAML settings")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--debug", action="store_true", help="debug logging and tracebacks")

    add_batch_parser(sub)
    cams = sub.add_parser("cameras", help="list available cameras (index, resolution, backend)")
    cams.add_argument(
        "--max-index", type=whole_number, default=10, help="probe indices below this (default: 10)"
    )
    cams.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    return parser


_FLAT = (
    "output",
    "json",
    "csv",
    "mot",
    "report",
    "audio",
    "overwrite",
    "show",
    "model",
    "backend",
    "conf",
    "iou",
    "imgsz",
    "classes",
    "device",
    "half",
    "max_det",
    "tracker",
    "max_frames",
    "vid_stride",
    "image_fps",
    "stall_timeout",
    "reconnect_max",
    "camera_size",
    "camera_fps",
)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, shaped like the config file."""
    over: dict[str, Any] = {k: getattr(args, k) for k in _FLAT if getattr(args, k, None) is not None}
    encoder = {k: getattr(args, k) for k in ("preset", "crf") if getattr(args, k, None) is not None}
    if encoder:
        over["encoder"] = encoder
    if getattr(args, "no_panel", False):
        over["overlay"] = {"panel": False}
    return over


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests swap it; a stale stream would be closed)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("detector").setLevel(level)


def _on_sigterm(signum: int, _frame: object) -> None:
    raise Terminated()


def _cmd_cameras(args: argparse.Namespace) -> int:
    import cv2

    from detector.sources import open_camera_quietly

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


def _cmd_bench(args: argparse.Namespace) -> int:
    from detector.bench import print_bench, run_bench

    over = {k: getattr(args, k) for k in ("model", "backend", "imgsz") if getattr(args, k) is not None}
    if args.preset:
        over["encoder"] = {"preset": args.preset}
    settings = load_settings(args.config, over)
    print_bench(run_bench(args.source, settings, frames=args.frames, rounds=args.rounds), args.json)
    return 0


def _cmd_run(args: argparse.Namespace, started_at: float) -> int:
    from detector.app import run

    settings = load_settings(args.config, overrides_from_args(args))
    holder: list[RunStats] = []
    try:
        run(args.source, settings, started_at=started_at, stats_out=holder)
    finally:
        if holder and holder[0].frames_processed:
            print(holder[0].summary(), file=sys.stderr)
    return 0


def error_line(exc: BaseException) -> str:
    """The one stderr line for a ``UserError``; newlines (e.g. inside a file name) are escaped."""
    text = str(exc).replace("\r", "\\r").replace("\n", "\\n")
    return f"detector: error: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    started_at = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    setup_logging(debug=debug, quiet="-q" in argv or "--quiet" in argv)
    old_term = None
    if threading_main():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if args.command == "cameras":
            return _cmd_cameras(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "batch":
            return cmd_batch(args)
        return _cmd_run(args, started_at)
    except UserError as exc:
        if debug:
            log.exception("user error")
        print(error_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted; outputs closed", file=sys.stderr)
        return 130
    except Terminated:
        print("detector: terminated; outputs closed", file=sys.stderr)
        return 143
    except Exception as exc:
        if debug:
            log.exception("internal error")
        else:
            print(
                f"detector: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main_entry() -> None:
    sys.exit(main())
