"""The ``sources:`` section: several sources in one run, each with a name and its own lines and zones.

    sources:
      - name: door
        source: rtsp://127.0.0.1:8554/door
        lines: [{name: in, start: [0.5, 0], end: [0.5, 1]}]
      - source: videos/lot.mp4          # name: the file's stem, "lot"
        zones: [...]
        motion: {masks: [[[0, 0], [1, 0], [1, 0.05], [0, 0.05]]]}
        detect_fps: 5

A source without its own ``lines`` / ``zones`` / ``detect_fps`` uses the top-level ones; the keys of
its own ``motion`` replace those of the top-level ``motion``.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from detector.settings.analytics import LineSpec, ZoneSpec
from detector.settings.base import StrictModel
from detector.settings.motion import MotionSettings

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # a file-name part: no "..", no leading "." or "-"


class SourceSpec(StrictModel):
    source: str = Field(min_length=1, description="camera index, file, URL, image folder or glob")
    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="letters, digits, . _ - (not first); default from the source",
    )
    lines: list[LineSpec] | None = Field(
        None, description="this source's counting lines (else the top-level ones)"
    )
    zones: list[ZoneSpec] | None = Field(None, description="this source's zones (else the top-level ones)")
    motion: MotionSettings | None = Field(
        None, description="this source's motion settings (its keys replace the top-level ones)"
    )
    detect_fps: float | None = Field(None, gt=0, le=1000, description="this source's --detect-fps")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        if v is not None and not SAFE_NAME.fullmatch(v):
            raise ValueError(
                "should be letters, digits, '.', '_' and '-', not starting with '.' or '-' "
                "(it names files: {name} in output paths, clips, recordings)"
            )
        return v
