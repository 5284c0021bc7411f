"""Command-line flags made from the ``Settings`` declarations, so every command offers, documents and
validates an option the same way: argparse only collects strings, ``Settings`` validates them.

Flags and SOURCEs go in any order (``free_order``): a list flag's values end at the next flag or at the
first word that names a source, and a flag with an optional value (``--track``) takes one only as
``--track=botsort``, never from the next word.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

from detector.errors import UserError
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
    "detect_fps": "motion",
    "motion": "motion",
    "stationary": "motion",
    "blur": "privacy",
    "pixelate": "privacy",
    "encoder": "encoder and overlay",
    "overlay": "encoder and overlay",
    "serve": "web view",
    "record": "recording and retention",
    "retain": "recording and retention",
    "mqtt": "MQTT and notifications",
    "notify": "MQTT and notifications",
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


ORDER_HELP = (
    "Flags and SOURCEs go in any order. A list flag (--classes, --blur...) takes the words after it up "
    "to the next flag or the first word that names a SOURCE: an existing file or folder, a URL, a glob, "
    "or a name with a '/' or an extension; commas work too (--classes person,car), repeating a flag "
    "adds to its list, and -- ends the list (--classes person -- 0 for camera 0). --track alone is "
    "ByteTrack and never takes the next word; --track=botsort picks botsort."
)


class ListFlag(argparse.Action):
    """A list setting's flag: ``--classes person car``; repeats add up (``--blur person --blur car``)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), *values])


class OptionalValueFlag(argparse.Action):
    """A flag that works alone (``--track``: its ``const``) or with ``=VALUE`` (``--track=botsort``)."""

    def __init__(self, *args: Any, names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names = tuple(names)  # the values it takes, for the hint when one follows a bare flag

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        setattr(namespace, self.dest, self.const if values is None else values)


def names_a_source(word: str) -> bool:
    """Whether a word after a list flag is a SOURCE rather than a class name: it exists as a file or
    folder, is a URL or a glob, or has a '/' or a file extension (class names have neither)."""
    if "://" in word or "/" in word or any(c in word for c in "*?["):
        return True
    stem, dot, ext = word.rpartition(".")
    has_extension = bool(dot and stem and ext) and not ext.isdigit()
    return has_extension or os.path.exists(word)


def free_order(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with the values of list flags and optional-value flags made explicit (``--classes=person
    --classes=car``, ``--track=bytetrack``), so that argparse (intermixed) never takes a SOURCE as a
    flag's value. The rules are ``ORDER_HELP``."""
    actions = parser._option_string_actions
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        action = actions.get(word)
        i += 1
        if word == "--":
            out += argv[i - 1 :]
            break
        if isinstance(action, OptionalValueFlag):
            nxt = argv[i] if i < len(argv) else ""
            if nxt in action.names and not os.path.exists(nxt):
                raise UserError(
                    f"{word} {nxt}: a bare {word} never takes the next word (it is {action.const}); "
                    f"write {word}={nxt}"
                )
            out.append(f"{word}={action.const}")
        elif isinstance(action, ListFlag):
            values = []
            while i < len(argv) and not argv[i].startswith("-") and not names_a_source(argv[i]):
                values.append(argv[i])
                i += 1
            out += [f"{word}={v}" for v in values] if values else [word]  # none: argparse says so
        else:
            out.append(word)
            if action is not None and action.nargs is None and i < len(argv):
                out.append(argv[i])  # a one-value flag's value, whatever it looks like
                i += 1
    return out


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
            kw.update(
                action=OptionalValueFlag, nargs="?", const=info.cli["const"], metavar=metavar,
                names=[str(c) for c in options or ()],
            )  # fmt: skip
            help_text = help_text.replace(" (default:", f"; {flag}={metavar} to pick one (default:", 1)
        elif info.cli.get("repeat"):
            kw.update(action="append", metavar=metavar)
        elif get_origin(ann) is list:
            kw.update(action=ListFlag, nargs="+", metavar=metavar)
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
