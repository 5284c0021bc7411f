"""The ``detector`` command line. ``main(argv) -> int`` is callable from tests.

Exit codes: 0 done; 2 anything the user can fix (one line on stderr, no traceback); 3 some of several
sources failed during a run, or some inputs of a batch failed; 4 a run ended with some output cut short
by a full disk; 130 after Ctrl-C and 143 after SIGTERM, outputs closed; 1 a bug (traceback with --debug).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from detector import __version__
from detector.cli import batch, bench, cameras, events, run, serve
from detector.cli.common import ArgParser, error_line, setup_logging
from detector.errors import Interrupted, UserError
from detector.redact import redact
from detector.signals import interrupts

log = logging.getLogger("detector")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgParser(
        prog="detector",
        description="Real-time object detection on video: webcam, file, stream or image folder "
        "-> YOLO -> overlay -> H.264 MP4 + JSON lines.",
    )
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgParser)
    for module in (run, bench, batch, cameras, serve, events):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    started_at = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    setup_logging(debug=debug, quiet="-q" in argv or "--quiet" in argv)
    signals = interrupts()
    installed = signals.install()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        code: int = args.handler(args, started_at)
        return code
    except UserError as exc:
        if debug:
            log.exception("user error")
        print(error_line(exc), file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"detector: {exc.word}; outputs closed", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # where our handler is not installed (not the main thread)
        print("detector: interrupted; outputs closed", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            log.exception("internal error")
        else:
            print(
                f"detector: internal error: {type(exc).__name__}: {redact(str(exc))} "
                "(run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
    finally:
        if installed:
            signals.restore()


def main_entry() -> None:
    sys.exit(main())
