"""``configs/default.yaml`` and the README's option tables, made from the ``Settings`` declarations.

python -m detector.settings.docs          # rewrite configs/default.yaml and the README tables
python -m detector.settings.docs --check  # exit 1 if either is out of date (tests do the same)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from detector.settings.base import COMMANDS, OptionInfo, walk
from detector.settings.flags import choices, default_text
from detector.settings.model import Settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
README = ROOT / "README.md"
BEGIN, END = "<!-- generated from Settings: {} -->", "<!-- end of generated: {} -->"

_YAML_HEADER = """\
# detector defaults: every key, with the value used when neither this file nor a flag sets it.
# Generated from detector/settings/model.py by `python -m detector.settings.docs`; do not edit by hand.
# Use:  detector run SOURCE --config configs/default.yaml   (flags still win over this file)
"""


def _yaml_value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _comment(info: OptionInfo) -> str:
    text = info.help
    if info.field.get_default(call_default_factory=True) is None and info.cli.get("default_text"):
        text += f"; null = {info.cli['default_text']}"
    options = choices(info)
    if options and info.field.annotation is not bool:
        text += f" ({' | '.join(str(c) for c in options)})"
    return text


def render_default_yaml() -> str:
    lines = [_YAML_HEADER]
    section: str | None = None
    rows: list[tuple[str, str]] = []
    for info in walk(Settings):
        value = info.field.get_default(call_default_factory=True)
        parent = info.path[0] if len(info.path) > 1 else None
        if parent != section and parent is not None:
            rows.append((f"{parent}:", ""))
        section = parent
        indent = "  " if parent else ""
        rows.append((f"{indent}{info.key.split('.')[-1]}: {_yaml_value(value)}", _comment(info)))
    width = max(len(k) for k, c in rows if c) + 2
    for key, comment in rows:
        lines.append(f"{key:<{width}}# {comment}" if comment else key)
    return "\n".join(lines) + "\n"


def render_flags_table(command: str) -> str:
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for info in walk(Settings):
        flag = info.flag(command)
        if flag is None:
            continue
        short = info.cli.get("short")
        names = f"`{short}, {flag}`" if short else f"`{flag}`"
        if info.field.annotation is bool:
            names = f"`{flag} / --no-{flag[2:]}`"
        rows.append(f"| {names} | {default_text(info)} | {_comment(info).replace('|', '/')} |")
    return "\n".join(rows)


def render_keys_table() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for info in walk(Settings):
        value = _yaml_value(info.field.get_default(call_default_factory=True))
        rows.append(f"| `{info.key}` | `{value}` | {_comment(info).replace('|', '/')} |")
    return "\n".join(rows)


BLOCKS = {
    "run flags": lambda: render_flags_table("run"),
    "batch flags": lambda: render_flags_table("batch"),
    "serve flags": lambda: render_flags_table("serve"),
    "config keys": render_keys_table,
}


def render_readme(text: str) -> str:
    """``text`` with every generated block replaced by its fresh rendering."""
    for name, render in BLOCKS.items():
        begin, end = BEGIN.format(name), END.format(name)
        if begin not in text:
            continue
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{render()}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detector.settings.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, fresh in ((DEFAULT_YAML, render_default_yaml()), (README, render_readme(README.read_text()))):
        if path.read_text() != fresh:
            stale.append(path)
            if not args.check:
                path.write_text(fresh)
    if args.check and stale:
        print(
            f"out of date: {', '.join(map(str, stale))}; run python -m detector.settings.docs",
            file=sys.stderr,
        )
        return 1
    return 0


assert set(COMMANDS) >= {"run", "batch"}

if __name__ == "__main__":
    sys.exit(main())
