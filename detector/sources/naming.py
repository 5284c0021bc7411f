"""Short, file-name-safe names for sources: what ``{name}`` in an output path and ``"source"`` in the
JSONL stand for. A file's stem, ``cam0`` for camera 0, a URL's host and path made safe, or the name
given in the config; duplicates get ``-2``, ``-3``..."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe(text: str) -> str:
    """Letters, digits, ``.``, ``_`` and ``-`` only (runs of anything else become one ``_``)."""
    return _UNSAFE.sub("_", text).strip("._-") or "source"


def source_name(spec: str) -> str:
    """The default name of a source spec."""
    spec = spec.strip()
    if spec.isdigit():
        return f"cam{int(spec)}"
    if "://" in spec:
        parts = urlsplit(spec)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}_{parts.port}"
        return safe(f"{host}{parts.path}")
    path = Path(spec.rstrip("/")).expanduser()
    if any(c in spec for c in "*?["):
        return safe(path.parent.name or "images")
    return safe(path.stem if path.suffix else path.name)


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with case-insensitive duplicates numbered, the first one kept as it is."""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out
