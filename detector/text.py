"""Small text helpers shared by every layer: one-line error reasons and counts sorted for display."""

from __future__ import annotations

from collections.abc import Mapping


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first informative line of an exception's message (never empty, at most ``limit`` chars).

    OpenVINO prefixes its messages with ``Exception from src/...`` lines; those are skipped.
    """
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    useful = [x for x in lines if not x.startswith("Exception from ")]
    return (useful or lines or [type(exc).__name__])[0][:limit]


def by_count(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts ordered for people: most first, then by name."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def counts_text(counts: Mapping[str, int], empty: str = "none") -> str:
    """``person 3, car 1`` (in the mapping's order)."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or empty


def one_line(text: str) -> str:
    """Newlines (e.g. inside a file name) escaped, so an error message stays on one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
