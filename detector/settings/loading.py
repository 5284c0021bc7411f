"""Build ``Settings``: defaults < YAML file (``--config``) < $DETECTOR_MODEL (model only) < flags.

Unknown keys and bad values raise ``UserError`` naming the flag (``--crf``) or the config key
(``config c.yaml: key 'encoder.crf'``) and, for unknown keys, the closest valid one.
"""

from __future__ import annotations

import difflib
import logging
import os
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from detector.errors import UserError
from detector.redact import remember
from detector.settings.base import RUN, flag_for
from detector.settings.model import MODEL_ENV, Settings, needs_track_ids
from detector.settings.motion import expand_shorthands

log = logging.getLogger(__name__)
_SHOWN = reprlib.Repr()  # a value as the error shows it: a polygon of 100,000 points shows 8
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother = 4, 8, 8, 200, 200


def _keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model an annotation holds: ``LineSpec`` for ``list[LineSpec]``, ``TrailSettings``
    for ``TrailSettings | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


def _submodel(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The settings model that holds the last key of ``loc`` (``encoder`` for ``encoder.prest``,
    ``LineSpec`` for ``lines.0.strat``)."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):  # an item of a list
            continue
        info = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        inner = _model_in(getattr(info, "annotation", None))
        if inner is None:
            break
        model = inner
    return model


def _describe(err: Mapping[str, Any], flags: set[str], config_path: str | None, command: str) -> str:
    loc = tuple(err["loc"])
    named = tuple(str(p) for p in loc if not isinstance(p, int))
    key = ".".join(named)
    flag = flag_for(Settings, named, command) if named and named[0] in flags else None
    if flag:
        where = flag
    elif config_path is not None:
        where = f"config {config_path}: key '{key}'"
    else:
        where = f"setting '{key}'"
    if err["type"] == "extra_forbidden":
        valid = _keys(_submodel(loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(valid))}"
        return f"{where} is unknown{hint}"
    msg = str(err["msg"]).replace("Input should", "should").replace("String should", "should")
    msg = msg.replace("Value error, ", "")
    got = err.get("input")
    if _secret(loc):  # a password, or a URL that may hold one: never shown
        return f"{where} {msg}"
    shown = got if flag and isinstance(got, str) else _SHOWN.repr(got)  # flags are always strings: no quotes
    return f"{where} {msg} (got {shown})"


def _secret(loc: tuple[Any, ...]) -> bool:
    """Whether the setting at ``loc`` is declared ``repr=False`` (credentials, URLs that carry them)."""
    named = [i for i, p in enumerate(loc) if not isinstance(p, int)]
    if not named:
        return False
    key = loc[named[-1]]
    model = _submodel(tuple(loc[: named[-1]]))
    field = model.model_fields.get(str(key)) or next(
        (f for f in model.model_fields.values() if f.alias == key), None
    )
    return field is not None and field.repr is False


SECRET_ENV = ("DETECTOR_MQTT_PASSWORD", "DETECTOR_SERVE_TOKEN")  # read where they are used


def remember_secrets(data: Any, model: type[BaseModel] = Settings) -> None:
    """Register the secrets in config or flag data (before it is validated, so that no error, log or
    traceback shows them): the values of settings declared ``repr=False``, and any URL's password."""
    if isinstance(data, str):
        remember(data if "://" in data else None)  # a shorthand: ``mqtt: mqtt://u:p@host``
        return
    if isinstance(data, list):
        for item in data:
            remember_secrets(item, model)
        return
    if not isinstance(data, Mapping):
        return
    for name, info in model.model_fields.items():
        value = data.get(info.alias or name, data.get(name))
        if value is None:
            continue
        inner = _model_in(info.annotation)
        if info.repr is False:
            remember(value)
        elif inner is not None:
            remember_secrets(value, inner)
        elif isinstance(value, str) and "://" in value:
            remember(value)  # a camera's rtsp://user:pass@...: its password


def _first(errors: list[Any]) -> Mapping[str, Any]:
    """The error to tell: an unknown key before the others, so that a misspelt required key (``strat:``
    in a line) gets its "did you mean 'start'" rather than "'start' Field required"."""
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config into a dict, with one-line errors for every way it can be wrong."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"config file {p} is a folder; give a YAML file (see configs/default.yaml)")
    if not p.exists():
        raise UserError(f"config file {p} not found")
    if not p.is_file():
        raise UserError(f"config file {p} is not a regular file; give a YAML file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
        raise UserError(f"config file {p} cannot be read ({reason})") from exc
    if b"\0" in raw:
        raise UserError(f"config file {p} is not a text file (binary data); give a YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["invalid"])[0]
        raise UserError(f"config file {p} is not valid YAML{where}: {problem}") from exc
    if data is None:
        raise UserError(
            f"config file {p} is empty; put at least one setting in it (see configs/default.yaml)"
        )
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    command: str = RUN,
) -> Settings:
    """Build settings. ``overrides`` holds only the flags the user gave, shaped like the config file
    (``{"encoder": {"crf": 20}}``); errors in them name the flag of ``command``."""
    env = os.environ if env is None else env
    for name in SECRET_ENV:
        remember(env.get(name))
    remember_secrets(overrides or {})
    file_data = read_config_file(config_path) if config_path is not None else {}
    remember_secrets(file_data)
    cfg_name = None if config_path is None else str(config_path)
    model_log = logging.getLogger(Settings.__module__)
    model_log.disabled = True  # the merged settings below give the warnings (once)
    try:
        Settings.model_validate(file_data)  # first alone, so its errors name the config file
    except ValidationError as exc:
        raise UserError(_describe(_first(exc.errors()), set(), cfg_name, command)) from exc
    finally:
        model_log.disabled = False
    data = expand_shorthands(file_data)  # ``motion: on`` as a mapping, so that flags merge into it
    if env.get(MODEL_ENV):
        data["model"] = env[MODEL_ENV]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = merge(data, overrides)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise UserError(_describe(_first(exc.errors()), set(overrides), cfg_name, command)) from exc
    if not data.get("tracker") and settings.tracker:
        log.info(
            "%s need track ids: tracking is on (ByteTrack; --track=botsort for BoT-SORT)",
            " and ".join(needs_track_ids(data)),
        )
    return settings
