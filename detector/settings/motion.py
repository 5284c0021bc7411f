"""The ``motion`` and ``stationary`` sections: run the model only when something moves, and tell objects
that stand still from new ones.

    motion: auto                  # or on / off; or a section:
    motion:
      enabled: auto               # auto: on for live sources (cameras, streams), off for files
      threshold: 25               # grey levels a pixel must change by
      min_area: 0.0005            # smallest moving region, a fraction of the frame
      recheck: 5                  # seconds: the model runs at least this often, moving or not
      masks:                      # motion here never counts (trees, clocks, burned-in timestamps)
        - [[0, 0], [0.3, 0], [0.3, 0.06], [0, 0.06]]
    stationary:
      seconds: 10                 # a track that has not moved for this long is stationary

``motion: on`` is short for ``motion: {enabled: on}``. A source in ``sources:`` may have its own
``motion`` (its keys replace the top-level ones) and ``detect_fps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from detector.settings.analytics import Point, bare_polygon, check_vertices
from detector.settings.base import RUN, StrictModel, option

_SWITCH = {"auto": None, "on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


def expand_motion(value: Any) -> Any:
    """``motion: on`` (a bare switch) -> ``{"enabled": True}``; a mapping stays as it is."""
    if value is None or isinstance(value, bool | str):
        return {"enabled": value}
    return value


class MotionMask(StrictModel):
    """One polygon where motion never counts (``motion.masks``)."""

    name: str | None = None
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")

    _bare = model_validator(mode="before")(bare_polygon)

    @model_validator(mode="after")
    def _bounded(self) -> MotionMask:
        check_vertices(self.polygon, f"motion mask '{self.name}'" if self.name else "a motion mask")
        return self


class MotionSettings(StrictModel):
    """Motion-gated detection: a frame where nothing moved skips the model."""

    enabled: bool | None = option(
        None,
        "run the model only on frames where something moved (and every motion.recheck seconds); "
        "auto = on for live sources, off for files",
        flag="--motion", commands=(RUN,), default_text="auto",
    )  # fmt: skip
    threshold: int = option(
        25, "motion: grey levels (0-255) a pixel must change by to count as moving",
        flag="--motion-threshold", commands=(RUN,), ge=1, le=254,
    )  # fmt: skip
    min_area: float = option(
        0.0005, "motion: the smallest moving region, as a fraction of the frame's area", flag=False,
        gt=0, le=1,
    )  # fmt: skip
    recheck: float = option(
        5.0, "motion: seconds between runs of the model when nothing moves, so that a tracked object "
        "taken away disappears", flag="--motion-recheck", commands=(RUN,), gt=0, le=3600,
    )  # fmt: skip
    masks: list[MotionMask] = option(
        help="motion: polygons where change never counts (trees, clocks, timestamps): "
        "[[[x, y], ...], ...] or [{name, polygon}]",
        flag=False, default_factory=list,
    )  # fmt: skip

    _bare = model_validator(mode="before")(expand_motion)

    @field_validator("enabled", mode="before")
    @classmethod
    def _switch(cls, v: Any) -> Any:
        if isinstance(v, str):
            key = v.strip().lower()
            if key not in _SWITCH:
                raise ValueError("should be auto, on or off")
            return _SWITCH[key]
        return v

    def on(self, live: bool) -> bool:
        """Whether a source is gated: ``enabled``, or for ``auto`` whether the source is live."""
        return live if self.enabled is None else self.enabled

    def merged(self, own: MotionSettings | None) -> MotionSettings:
        """These settings with the keys ``own`` (a source's ``motion``) sets replacing them."""
        if own is None:
            return self
        return self.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})


def expand_shorthands(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config with ``motion: on`` as a mapping (``{enabled: on}``), so flags merge into it."""
    out = dict(data)
    if "motion" in out:
        out["motion"] = expand_motion(out["motion"])
    return out


LIVE_STATIONARY_S = 30.0  # a camera's default: a car parked half a minute is parked


class StationarySettings(StrictModel):
    """Objects that stand still: marked, and never announced twice."""

    seconds: float | None = option(
        None,
        "a track whose box has not moved for this long is stationary: listed in the frame's "
        "\"stationary\", no longer activity for review items, and when it is lost and found again at its "
        "place it keeps its id (no new track_new, zone entry or clip) until it moves; 0 = off",
        flag="--stationary-seconds", commands=(RUN,), ge=0, le=86400, metavar="S",
        default_text=f"{LIVE_STATIONARY_S:g} for live sources, off for files",
    )  # fmt: skip

    def for_source(self, live: bool) -> float | None:
        """The seconds that apply to a source (None: off): the default is on for live sources only, so
        a file's results stay what they were."""
        if self.seconds is None:
            return LIVE_STATIONARY_S if live else None
        return self.seconds or None
