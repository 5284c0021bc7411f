"""Who a source is: its ``SourceIdentity``, made once when a run plans its sources.

The name is what ``{name}`` in an output path, ``"source"`` in the JSONL and events, and the names of
clips, snapshots and recordings stand for: a file's stem, ``cam0`` for camera 0, a URL's host and path
made safe, or the name given in the config; duplicates get ``-2``, ``-3``... It is always a safe
file-name part (letters, digits, ``.``, ``_``, ``-``; never ``.`` or ``..``). The identity's ``url`` is
the spec with any credentials removed (``redact_url``): the only form of a URL that leaves the process,
in logs, files, events and the web view.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from detector.sources.base import IMAGE_EXTENSIONS, SourceKind, redact_url

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SourceIdentity:
    """One source of a run, as every stage, sink and the web view know it."""

    name: str  # unique in the run, and safe as a file name
    kind: SourceKind
    url: str  # the spec (file path, URL, camera index) with any credentials removed

    @property
    def slug(self) -> str:
        """The name as a part of file names (clips, snapshots, recordings): the name itself."""
        return self.name


def spec_kind(spec: str) -> SourceKind:
    """What kind of source a spec names, before it is opened."""
    spec = spec.strip()
    if spec.isdigit():
        return "camera"
    if "://" in spec:
        return "stream"
    path = Path(spec).expanduser()
    if path.is_dir() or any(c in spec for c in "*?[") or path.suffix.lower() in IMAGE_EXTENSIONS:
        return "images"
    return "file"


def safe(text: str) -> str:
    """Letters, digits, ``.``, ``_`` and ``-`` only (runs of anything else become one ``_``), never
    starting or ending with ``.``, ``_`` or ``-`` (so never ``.`` or ``..``)."""
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


def identities(entries: Sequence[tuple[str, str]]) -> list[SourceIdentity]:
    """The identities of a run's sources from (name, spec) pairs: names made unique, URLs redacted."""
    names = unique_names([name for name, _ in entries])
    return [
        SourceIdentity(name, spec_kind(spec), redact_url(spec.strip()))
        for name, (_, spec) in zip(names, entries, strict=True)
    ]
