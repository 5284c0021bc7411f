"""Apprise, one target per ``--notify`` URL, each with its own timeout (so a retry goes only where the
last try failed). A URL Apprise cannot use is a ``UserError`` at start. Targets are named by Apprise's
privacy form of their URL (tokens and passwords masked), never by the URL itself; ntfy's topics are
masked there too (on a public server the topic is the password), and in every log line.

``notify.timeout`` bounds a whole try, not each read: an endpoint that trickles its reply a byte at a
time never trips a socket's read timeout. Each try runs on a daemon thread of its own that is given up
on (left to end with its socket) once the timeout has passed; while ``STUCK`` given-up tries of a
target still hold their sockets, the next try fails at once, so an endpoint that never ends its
replies holds a bounded number of threads and sockets. Apprise's own deadline is off: it would run
the try on its shared thread pool, whose blocked worker the interpreter joins at exit, keeping the
process alive long after the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import apprise
from apprise.attachment.memory import AttachMemory

from detector.errors import UserError
from detector.notify.worker import Note
from detector.redact import remember

log = logging.getLogger(__name__)

STUCK = 4  # given-up tries of one target still running, at most; past it a try fails at once


def _scheme(url: str) -> str:
    return url.partition("://")[0] or "?"


def _name(plugin: Any) -> str:
    """Apprise's privacy form of the URL without its options, its topics (ntfy's) masked as Apprise
    masks tokens (``T...t``): ``ntfy://user:****@host/T...t``."""
    name = str(plugin.url(privacy=True)).partition("?")[0]
    topics = {str(t) for t in getattr(plugin, "topics", None) or ()}
    if not topics:
        return name
    remember(sorted(topics))  # masked in every log line too
    scheme, _, rest = name.partition("://")
    auth, at, where = rest.rpartition("@")
    parts = [str(plugin.pprint(p, True, safe="")) if unquote(p) in topics else p for p in where.split("/")]
    return f"{scheme}://{auth}{at}{'/'.join(parts)}"


class Target:
    """One Apprise URL."""

    def __init__(self, url: str, timeout: float) -> None:
        asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)  # tries run on our thread
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:
            raise UserError(
                f"--notify {_scheme(url)}://...: Apprise cannot send to this URL (an unknown service, or "
                "a part of the URL missing); see https://github.com/caronc/apprise/wiki"
            )
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        self.timeout = timeout
        self.name = _name(plugin)  # secrets masked, options left out
        self._apprise = apprise.Apprise(asset=asset)
        self._apprise.add(plugin)
        self._stuck: list[threading.Thread] = []  # tries given up on, maybe still running

    def send(self, note: Note) -> bool:
        """One try, over within ``timeout`` whatever the endpoint does; True when it was taken."""
        attach: Any = None
        if note.jpeg is not None:
            attach = AttachMemory(content=note.jpeg, name=note.name, mimetype="image/jpeg")
        self._stuck = [t for t in self._stuck if t.is_alive()]
        if len(self._stuck) >= STUCK:
            log.debug("%s: %d earlier tries still hang; not tried", self.name, len(self._stuck))
            return False
        taken: list[bool] = []
        done = threading.Event()

        def attempt() -> None:
            try:
                taken.append(bool(self._apprise.notify(body=note.body, title=note.title, attach=attach)))
            except Exception as exc:  # a plugin's bug is one failed try
                log.debug("%s: %s: %s", self.name, type(exc).__name__, exc)
            finally:
                done.set()

        thread = threading.Thread(target=attempt, name="notify-try", daemon=True)
        thread.start()
        if done.wait(self.timeout):
            return bool(taken and taken[0])
        log.debug("%s did not finish within %g s; given up", self.name, self.timeout)
        self._stuck.append(thread)
        return False


def targets(urls: Sequence[str], timeout: float) -> list[Target]:
    """A target per URL (``UserError`` for one Apprise cannot use). Apprise's own log says only
    what ours does not (its warnings on each failed try), so it shows with ``--debug``."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("apprise").setLevel(logging.ERROR)
    return [Target(url, timeout) for url in urls]
