"""Command-line flags made from the ``Settings`` declarations, so every command offers, documents and
validates an option the same way: argparse only collects strings, ``Settings`` validates them."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal, get_args, get_origin

from detector.settings.base import OptionInfo, walk
from detector.settings.model import Settings

_GROUPS = {  # help groups, by the first key of the setting
    "model": "model",
    "backend": "model",
    "conf": "model",
    "iou": "model",
    "imgsz": "model",
    "classes": "model",
    "device": "model",
    "half": "model",
    "max_det": "model",
    "tracker": "model",
    "max_frames": "frames",
    "vid_stride": "frames",
    "image_fps": "frames",
    "stall_timeout": "live sources",
    "reconnect_max": "live sources",
    "camera_size": "live sources",
    "camera_fps": "live sources",
    "blur": "privacy",
    "pixelate": "privacy",
    "encoder": "encoder and overlay",
    "overlay": "encoder and overlay",
    "serve": "web view",
}


def _dest(info: OptionInfo) -> str:
    return "setting__" + "__".join(info.path)


def _unwrap(annotation: Any) -> Any:
    """``int | None`` -> ``int``."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def default_text(info: OptionInfo) -> str:
    """How help and docs show a default."""
    text = info.cli.get("default_text")
    if text:
        return str(text)
    value = info.field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def choices(info: OptionInfo) -> tuple[Any, ...] | None:
    ann = _unwrap(info.field.annotation)
    return get_args(ann) if get_origin(ann) is Literal else None


def add_setting_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flag of every setting that ``command`` offers, in help groups."""
    groups: dict[str, Any] = {}
    for info in walk(Settings):
        flag = info.flag(command)
        if flag is None:
            continue
        group_name = _GROUPS.get(info.path[0], "outputs")
        group = groups.get(group_name) or groups.setdefault(group_name, parser.add_argument_group(group_name))
        names = [n for n in (info.cli.get("short"), flag) if n]
        kw: dict[str, Any] = {"dest": _dest(info), "default": None}
        ann = _unwrap(info.field.annotation)
        options = choices(info)
        help_text = info.help
        if options and ann is not bool:  # listed here; Settings (not argparse) rejects other values
            help_text += f"; one of: {', '.join(str(c) for c in options)}"
        help_text += f" (default: {default_text(info)})"
        metavar = info.cli.get("metavar") or ("NAME" if options else info.path[-1].upper())
        if ann is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif info.cli.get("const") is not None:
            kw.update(nargs="?", const=info.cli["const"], metavar=metavar)
        elif get_origin(ann) is list:
            kw.update(nargs="+", metavar=metavar)
        else:
            kw["metavar"] = metavar
        group.add_argument(*names, help=help_text.replace("%", "%%"), **kw)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave as flags, shaped like the config file (``{"encoder": {"crf": 20}}``)."""
    over: dict[str, Any] = {}
    for name, value in vars(args).items():
        if not name.startswith("setting__") or value is None:
            continue
        path = name.removeprefix("setting__").split("__")
        target = over
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return over
