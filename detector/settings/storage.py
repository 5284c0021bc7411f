"""The ``record`` and ``retain`` sections: continuous recording in segments (``--record DIR``), and how
much of it, and of the clips, is kept (``retain.days``, ``retain.max_size``, ``retain.min_free``).

``parse_size`` is the one reader of a size (``50GB``, ``500MB``, ``1.5GiB``, ``2048``): decimal units
(kB, MB, GB, TB: powers of 1000) and binary ones (KiB, MiB, GiB, TiB: powers of 1024); a bare number
is bytes.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import field_validator

from detector.settings.base import RUN, StrictModel, option

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_POWERS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
MAX_SIZE = 1000**6  # bytes: no disk holds more (a million TB)


def parse_size(value: Any) -> int:
    """Bytes of ``50GB`` / ``500MB`` / ``1.5GiB`` / ``2048``; ``ValueError`` with the reason."""
    if isinstance(value, bool):
        raise ValueError("should be a size such as 50GB or 500MB")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError("should be a size such as 50GB or 500MB")
        number, unit = float(match.group(1)), (match.group(2) or "").lower()
    if math.isnan(number):
        raise ValueError("should be a size such as 50GB or 500MB")
    factor = 1024 ** " kmgt".index(unit[0]) if "i" in unit else _POWERS[unit[:1]]
    size = number * factor
    if size > MAX_SIZE:  # infinity too
        raise ValueError("should be at most 1000000TB")
    if size < 1:  # and minus infinity
        raise ValueError("should be more than 0 bytes")
    return int(size)


def size_text(size: float) -> str:
    """``52.4 MB``: bytes for people, in the decimal units ``parse_size`` reads."""
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if abs(size) >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"


class RecordSettings(StrictModel):
    """Continuous recording of every source, in segments."""

    dir: str | None = option(
        None,
        "record every source continuously into DIR/{source}/{YYYY-MM-DD}/{HH.MM.SS}.mp4 segments, "
        "listed in DIR/segments.jsonl",
        flag="--record", commands=(RUN,), metavar="DIR", default_text="off",
    )  # fmt: skip
    segment: float = option(
        600.0, "seconds of video per recording segment (each starts on a keyframe)",
        flag="--record-segment", commands=(RUN,), metavar="SECONDS", ge=1, le=86400,
    )  # fmt: skip
    mode: Literal["annotated", "raw"] = option(
        "annotated",
        "annotated: the video --output writes (encoded once, shared with the clips); raw: the "
        "source's own packets, copied without decoding or encoding (files and streams)",
        flag="--record-mode", commands=(RUN,),
    )  # fmt: skip


class RetainSettings(StrictModel):
    """What retention keeps of the recordings and the clips (oldest deleted first); null = no limit."""

    days: float | None = option(
        None, "delete recordings and clips older than this many days",
        flag="--retain-days", commands=(RUN,), metavar="DAYS", gt=0, default_text="no limit",
    )  # fmt: skip
    max_size: int | None = option(
        None, "the most that each folder (--record DIR, --clips DIR) may hold: 50GB, 500MB",
        flag="--retain-max-size", commands=(RUN,), metavar="SIZE", default_text="no limit",
    )  # fmt: skip
    min_free: int | None = option(
        None, "free space kept on the filesystem of each folder: 10GB",
        flag="--retain-min-free", commands=(RUN,), metavar="SIZE", default_text="no limit",
    )  # fmt: skip

    @field_validator("max_size", "min_free", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)

    def any(self) -> bool:
        return self.days is not None or self.max_size is not None or self.min_free is not None
