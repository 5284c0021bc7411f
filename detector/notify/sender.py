"""Apprise, one target per ``--notify`` URL, each with its own timeout (so a retry goes only where the
last try failed). A URL Apprise cannot use is a ``UserError`` at start. Targets are named by Apprise's
privacy form of their URL (tokens and passwords masked), never by the URL itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import apprise
from apprise.attachment.memory import AttachMemory

from detector.errors import UserError
from detector.notify.worker import Note

log = logging.getLogger(__name__)


def _scheme(url: str) -> str:
    return url.partition("://")[0] or "?"


class Target:
    """One Apprise URL."""

    def __init__(self, url: str, timeout: float) -> None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise UserError(
                f"--notify {_scheme(url)}://...: Apprise cannot send to this URL (an unknown service, or "
                "a part of the URL missing); see https://github.com/caronc/apprise/wiki"
            )
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        self.name = str(plugin.url(privacy=True)).partition("?")[0]  # secrets masked, options left out
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)

    def send(self, note: Note) -> bool:
        attach: Any = None
        if note.jpeg is not None:
            attach = AttachMemory(content=note.jpeg, name=note.name, mimetype="image/jpeg")
        return bool(self._apprise.notify(body=note.body, title=note.title, attach=attach))


def targets(urls: Sequence[str], timeout: float) -> list[Target]:
    """A target per URL (``UserError`` for one Apprise cannot use). Apprise's own log says only
    what ours does not (its warnings on each failed try), so it shows with ``--debug``."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("apprise").setLevel(logging.ERROR)
    return [Target(url, timeout) for url in urls]
