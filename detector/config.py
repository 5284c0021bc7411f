"""Typed, validated settings: defaults < YAML file (``--config``) < CLI flags.

Unknown keys and bad values raise ``UserError`` naming the key (or the flag) and,
for unknown keys, the closest valid one.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detector.analytics.lines import LineSpec
from detector.analytics.trails import TrailSettings
from detector.analytics.zones import ZoneSpec
from detector.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "yolo26n.pt"
MODEL_ENV = "DETECTOR_MODEL"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EncoderSettings(_Strict):
    """H.264 encoder settings for the annotated video."""

    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
    ] = "ultrafast"
    crf: int = Field(23, ge=0, le=51)
    threads: int = Field(0, ge=0, le=64, description="0 = sized to the machine")
    fragment_seconds: float = Field(1.0, gt=0, le=10, description="keyframe / MP4 fragment interval")


class OverlaySettings(_Strict):
    """What the overlay draws."""

    panel: bool = True
    labels: bool = True
    confidence: bool = True
    line_width: int | None = Field(None, ge=1, le=32, description="None = scaled to the frame")


class Settings(_Strict):
    """Everything ``detector run`` needs."""

    model: str | None = None
    backend: Literal["auto", "torch", "openvino", "onnx"] = "auto"
    conf: float = Field(0.25, gt=0, le=1)
    iou: float = Field(0.7, gt=0, le=1)
    imgsz: int = Field(640, gt=0, le=8192)
    classes: list[int | str] | None = None
    device: str = "cpu"
    half: bool = False
    max_det: int = Field(300, ge=1, le=10000)
    tracker: Literal["bytetrack", "botsort"] | None = Field(None, description="track objects across frames")
    output: str | None = None
    json_path: str | None = Field(None, alias="json")
    csv: str | None = Field(None, description="one CSV row per detection")
    mot: str | None = Field(None, description="MOTChallenge text file")
    report: str | None = Field(None, description="run report (JSON)")
    show: bool | None = None
    max_frames: int | None = Field(None, ge=1)
    vid_stride: int = Field(1, ge=1, le=1000)
    overwrite: bool = False
    audio: bool = Field(True, description="keep a file source's audio in the output video")
    image_fps: float = Field(30.0, gt=0, le=1000, description="frame rate written for image folders")
    queue_size: int = Field(4, ge=1, le=256)
    stall_timeout: float = Field(5.0, gt=0, le=600)
    connect_timeout: float = Field(10.0, gt=0, le=600)
    reconnect_max: int = Field(5, ge=0, le=1000)
    camera_size: str | None = Field(None, pattern=r"^\d+x\d+$")
    camera_fps: float | None = Field(None, gt=0, le=1000)
    log_interval: float = Field(
        5.0, gt=0, description="seconds between progress log lines without a terminal"
    )
    lines: list[LineSpec] = Field(default_factory=list, description="counting lines")
    zones: list[ZoneSpec] = Field(default_factory=list, description="counting zones")
    trails: TrailSettings | None = Field(None, description="motion trails per track; null = off")
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    overlay: OverlaySettings = Field(default_factory=OverlaySettings)

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("imgsz")
    @classmethod
    def _round_imgsz(cls, v: int) -> int:
        if v % 32:
            rounded = int(math.ceil(v / 32) * 32)
            log.warning("imgsz %d is not a multiple of 32; using %d", v, rounded)
            return rounded
        return v

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, v: Any) -> Any:
        if isinstance(v, str | int):
            v = [v]
        if isinstance(v, list):
            out: list[Any] = []
            for item in v:
                if isinstance(item, str):
                    out.extend(
                        int(p) if p.strip().isdigit() else p.strip() for p in item.split(",") if p.strip()
                    )
                else:
                    out.append(item)
            return out
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for kind, items in (("line", self.lines), ("zone", self.zones)):
            names = [x.name for x in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind} names must be unique; '{dup[0]}' is used twice")
        return self

    def resolved_model(self) -> str:
        """``--model`` (already merged here as an override) else $DETECTOR_MODEL else config else default."""
        return self.model or DEFAULT_MODEL


def _field_names(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _submodel(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Settings
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            for f in model.model_fields.values():
                if f.alias == part:
                    info = f
        ann = getattr(info, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            break
    return model


def _describe(err: Mapping[str, Any], flags: set[str], config_path: str | None) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc if not isinstance(p, int))
    top = str(loc[0]) if loc else ""
    flag = str(loc[-1]) if top in ("encoder", "overlay") and len(loc) > 1 else top  # --crf, not --encoder
    where = f"--{flag.replace('_', '-')}" if top in flags else f"config {config_path}: key '{key}'"
    if config_path is None and top not in flags:
        where = f"setting '{key}'"
    if err["type"] == "extra_forbidden":
        valid = _field_names(_submodel(loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(valid))}"
        return f"{where} is unknown{hint}"
    got = err.get("input")
    msg = str(err["msg"]).replace("Input should", "should").replace("String should", "should")
    return f"{where} {msg} (got {got!r})"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config into a dict, with one-line errors for every way it can be wrong."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {p} cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"config file {p} is not valid YAML{where}: {problem}") from exc
    if data is None:
        raise UserError(
            f"config file {p} is empty; put at least one setting in it (see configs/default.yaml)"
        )
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings: defaults < config file < $DETECTOR_MODEL (model only) < overrides (CLI flags).

    ``overrides`` holds only the flags the user actually gave; nested keys use dicts
    (``{"encoder": {"crf": 20}}``).
    """
    env = os.environ if env is None else env
    file_data = read_config_file(config_path) if config_path is not None else {}
    cfg_name = None if config_path is None else str(config_path)
    log.disabled = True  # the merged settings below give the warnings (once)
    try:
        Settings.model_validate(file_data)  # first alone, so its errors name the config file
    except ValidationError as exc:
        raise UserError(_describe(exc.errors()[0], set(), cfg_name)) from exc
    finally:
        log.disabled = False
    data = dict(file_data)
    if env.get(MODEL_ENV):
        data["model"] = env[MODEL_ENV]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise UserError(_describe(exc.errors()[0], set(overrides), cfg_name)) from exc
