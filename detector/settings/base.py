"""The building blocks of every settings model: strict pydantic models and ``option``, which declares a
setting once — its type, default, range, help, and the command-line flag (if any) of each command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUN, BATCH, BENCH, SERVE = "run", "batch", "bench", "serve"
COMMANDS = (RUN, BATCH, BENCH, SERVE)
CLI_KEY = "cli"  # where ``option`` keeps the flag metadata inside ``json_schema_extra``


class StrictModel(BaseModel):
    """Unknown keys are errors (with a "did you mean"), and assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def option(
    default: Any = None,
    help: str = "",
    *,
    flag: str | bool | None = True,
    short: str | None = None,
    commands: Sequence[str] = (RUN, BATCH),
    renamed: dict[str, str] | None = None,
    metavar: str | None = None,
    const: Any = None,
    repeat: bool = False,
    default_text: str | None = None,
    default_factory: Any = None,
    **constraints: Any,
) -> Any:
    """A pydantic ``Field`` that also says how the command line offers it.

    ``flag``: True for ``--name-with-dashes``, a string for another name, False/None for config only.
    ``commands``: the subcommands that have the flag; ``renamed``: another flag name in one command
    (``{"batch": "--model-backend"}``). ``const``: the value of a flag given without one (``--track``).
    ``repeat``: a list whose flag takes one value each time it is given (``--notify URL --notify URL``).
    ``default_text``: how ``--help`` shows the default when the value alone says too little.
    """
    cli = {
        "flag": flag,
        "short": short,
        "commands": tuple(commands) if flag else (),
        "renamed": dict(renamed or {}),
        "metavar": metavar,
        "const": const,
        "repeat": repeat,
        "default_text": default_text,
    }
    if default_factory is not None:
        return Field(
            default_factory=default_factory, description=help, json_schema_extra={CLI_KEY: cli}, **constraints
        )
    return Field(default, description=help, json_schema_extra={CLI_KEY: cli}, **constraints)


def split_list(value: Any) -> Any:
    """``"person, car"`` -> ``["person", "car"]``; digits become ints (class ids); lists are split too.

    The one way a list of names or ids is read, from flags (``--classes person,2 car``) or YAML.
    """
    if isinstance(value, str | int):
        value = [value]
    if not isinstance(value, list | tuple):
        return value
    out: list[Any] = []
    for item in value:
        if isinstance(item, str):
            out.extend(int(p) if p.strip().isdigit() else p.strip() for p in item.split(",") if p.strip())
        else:
            out.append(item)
    return out


class OptionInfo:
    """One declared setting, found by ``walk``: its path (``("encoder", "crf")``), field and flag metadata."""

    def __init__(self, path: tuple[str, ...], key: str, field: Any) -> None:
        self.path = path  # attribute names
        self.key = key  # the YAML key path, aliases applied (``json``, ``encoder.crf``)
        self.field = field
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        self.cli: dict[str, Any] = dict(extra.get(CLI_KEY) or {})

    @property
    def help(self) -> str:
        return str(self.field.description or "")

    def flag(self, command: str) -> str | None:
        """The flag this command offers for the setting (``--crf``), or None."""
        if not self.cli.get("flag") or command not in self.cli.get("commands", ()):
            return None
        renamed = self.cli.get("renamed", {}).get(command)
        if renamed:
            return str(renamed)
        flag = self.cli["flag"]
        return flag if isinstance(flag, str) else "--" + self.path[-1].replace("_", "-")


def walk(model: type[BaseModel], prefix: tuple[str, ...] = (), key_prefix: str = "") -> list[OptionInfo]:
    """Every leaf setting of ``model``, nested models (``encoder``, ``overlay``) flattened, in order."""
    out: list[OptionInfo] = []
    for name, field in model.model_fields.items():
        key = f"{key_prefix}{field.alias or name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and not _is_list_item(field):
            out.extend(walk(ann, (*prefix, name), key + "."))
        else:
            out.append(OptionInfo((*prefix, name), key, field))
    return out


def _is_list_item(field: Any) -> bool:
    return CLI_KEY in (field.json_schema_extra or {})  # declared with option(): a leaf, even if a model


def flag_for(model: type[BaseModel], path: tuple[str, ...], command: str = RUN) -> str | None:
    """The flag that sets ``path`` in ``command`` (for error messages), or None."""
    for info in walk(model):
        if info.path == path or info.key == ".".join(path):
            return info.flag(command)
    return None
