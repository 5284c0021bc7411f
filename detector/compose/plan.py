"""A run's sources, planned before anything opens: each one's identity (``sources.naming``: a unique,
file-safe name and its URL without credentials, made here once), the spec as given, and its own
settings (a config's ``sources:`` may give a source its own lines, zones, motion and detection rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detector.errors import UserError
from detector.settings import Settings
from detector.sources.naming import SourceIdentity, identities, source_name


@dataclass
class SourcePlan:
    """One source of the run: who it is, its spec as given (it may hold credentials: only the source
    opener sees it), and its settings (its own lines and zones)."""

    identity: SourceIdentity
    spec: str
    settings: Settings

    @property
    def name(self) -> str:
        return self.identity.name


def plan_sources(settings: Settings, specs: list[str]) -> list[SourcePlan]:
    """The sources to run: SOURCE arguments, else the config's ``sources:``; each one's identity made
    here, once (names made unique, URLs without credentials)."""
    if specs:
        entries = [(source_name(s), s.strip(), settings) for s in specs]
    elif settings.sources:
        entries = []
        for src in settings.sources:
            own: dict[str, Any] = {"lines": src.lines if src.lines is not None else settings.lines}
            own["zones"] = src.zones if src.zones is not None else settings.zones
            own["motion"] = settings.motion.merged(src.motion)
            own["detect_fps"] = src.detect_fps if src.detect_fps is not None else settings.detect_fps
            entries.append(
                (src.name or source_name(src.source), src.source.strip(), settings.model_copy(update=own))
            )
    else:
        raise UserError(
            "no SOURCE given: pass a camera index, video file, URL or folder, or list `sources:` in a config"
        )
    ids = identities([(name, spec) for name, spec, _ in entries])
    return [SourcePlan(ident, spec, s) for ident, (_, spec, s) in zip(ids, entries, strict=True)]
