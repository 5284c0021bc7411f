"""Secrets kept out of every message: passwords, tokens and ntfy topics, in errors, logs and the
tracebacks ``--debug`` prints (pydantic's ``input_value=...`` among them).

``remember`` registers a secret (the settings loader for the values declared secret, ``repr=False``,
and the secret environment variables; the notification sender for ntfy topics); ``redact`` masks every
registered one in a text, and whatever is shaped like one (a URL's ``user:PASSWORD@``, a
``password: ...`` or ``token=...``). ``Redacting`` is the log formatter that redacts every line it
formats, tracebacks included. No library fits: logging has no notion of secrets.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote, urlsplit

MASK = "****"
SHORTEST = 4  # a remembered secret shorter than this is masked only where it is shaped like one
_secrets: set[str] = set()
_lock = threading.Lock()
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"\[\]]*:)[^@\s/'\"\[\]]+@")
_KEYED = re.compile(
    r"(?P<head>\b(?:password|passwd|secret|token)['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*\*)[^\s'\",}\]]+",
    re.IGNORECASE,
)


def remember(value: object) -> None:
    """Register a secret (a string, or the strings inside lists and mappings; a number as its text). A
    URL registers its password, and nothing else of it."""
    if isinstance(value, dict):
        for item in value.values():
            remember(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            remember(item)
    elif isinstance(value, str) and "://" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            password = None
        if password:
            remember(password)
            remember(unquote(password))
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if len(text) >= SHORTEST:
            with _lock:
                _secrets.add(text)


def redact(text: str) -> str:
    """``text`` with every secret masked."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # a secret that holds another goes first
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return _KEYED.sub(lambda m: m["head"] + MASK, text)


def forget_all() -> None:
    """For tests: no secret remembered."""
    with _lock:
        _secrets.clear()


class Redacting(logging.Formatter):
    """A formatter whose every line, traceback included, is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
