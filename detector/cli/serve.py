"""``detector serve --events-db FILE``: browse an event store's history with no detection running
(after a batch job, or on another machine), until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from detector.cli.common import add_general_flags
from detector.settings.base import SERVE
from detector.settings.flags import add_setting_flags, setting_overrides

log = logging.getLogger(__name__)
DEFAULT_BIND = "8080"
BROWSING = "browsing"  # the web view's phase: no run, only the history


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="browse an event store's history (/history) with no detection running",
        description="Serve the history page and the event store's API (/api/reviews, /api/events, "
        "/media) of --events-db FILE, with the same token and Host rules as a run's --serve.",
        epilog="Exit codes: 0 never (it serves until stopped), 2 usage error or no such store, "
        "130 interrupted, 143 terminated.",
    )
    add_setting_flags(p, SERVE)
    add_general_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, started_at: float) -> int:
    from detector.errors import UserError
    from detector.eventstore.schema import SCHEMA_VERSION, connect, existing_store, migrate
    from detector.machine import raise_open_files_limit
    from detector.settings import load_settings, with_updates
    from detector.web.config import serve_config
    from detector.web.view import WebView

    settings = load_settings(args.config, setting_overrides(args), command=SERVE)
    if not settings.events_db or settings.store_off():
        raise UserError("detector serve needs --events-db FILE (the store to browse)")
    path = Path(settings.events_db).expanduser()
    version = existing_store(path, whole=True)  # read-only: an empty or foreign file is refused, unwritten
    if version < SCHEMA_VERSION:  # an older store of ours: migrated in place, as a run would
        db = connect(path)
        try:
            migrate(db, path)
            log.info("event store %s: schema %d brought up to %d", path, version, SCHEMA_VERSION)
        finally:
            db.close()
    if settings.serve.bind is None:
        settings = with_updates(settings, serve={**settings.serve.model_dump(), "bind": DEFAULT_BIND})
    raise_open_files_limit()
    web = WebView(serve_config(settings))
    web.set_phase(BROWSING)
    web.set_store(path)
    web.start()
    try:
        log.info("browsing %s: %shistory (Ctrl-C stops)", path, web.url)
        while True:  # until a signal raises Interrupted
            time.sleep(3600)
    finally:
        web.close()
    return 0
