"""Output paths, checked before the first frame is read: the folder exists and is writable, an existing
file is only replaced with ``--overwrite``, a video output has a video container's name, no output
is the input, and no two outputs share a file. Every problem is one ``UserError`` line."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from detector.errors import UserError
from detector.settings.base import flag_for
from detector.settings.model import Settings

STDOUT = "-"
VIDEO_OUTPUT_EXTENSIONS = {".mp4", ".m4v", ".mov"}
IMAGE_OUTPUT_EXTENSIONS = {".png", ".jpg", ".jpeg"}


def check_output_file(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """Check that ``path`` can be created: folder exists and is writable, file absent unless overwrite.

    A new file is created and removed again, which also catches what no permission bit shows (a
    name too long, a read-only or special file system). Raises ``UserError`` with one line saying
    what to do. Shared by the file sinks.
    """
    p = Path(path).expanduser()
    try:
        return _check_output_file(p, overwrite, what)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
        raise UserError(f"{what} {p} cannot be created ({reason}); choose another path") from exc


def _check_output_file(p: Path, overwrite: bool, what: str) -> Path:
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder; give a file name")
    folder = p.parent
    if not folder.exists():
        raise UserError(f"{what} folder {folder} does not exist; create it or choose another path")
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} is not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{what} folder {folder} is not writable; choose another path")
    if os.path.lexists(p):
        if not overwrite:
            raise UserError(f"{what} {p} exists; pass --overwrite to replace it")
        if p.exists() and not os.access(p, os.W_OK):
            raise UserError(f"{what} {p} exists and is not writable; choose another path")
        return p
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    os.unlink(p)
    return p


def check_json_output_path(path: str | Path, overwrite: bool) -> Path | None:
    """Validate a JSON-lines output before any frame is read; ``None`` means stdout (``-``)."""
    if str(path) == STDOUT:
        return None
    return check_output_file(path, overwrite, "JSON output")


def check_video_output_path(path: str | Path, overwrite: bool) -> Path:
    """Validate a video output before any frame is read; raises ``UserError``."""
    p = Path(path).expanduser()
    if p.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
        kind = f"'{p.suffix}'" if p.suffix else "a name without extension"
        raise UserError(f"video output {p}: {kind} is not a video container; use a .mp4, .m4v or .mov name")
    return check_output_file(p, overwrite, "video output")


def check_report_path(path: str | Path, overwrite: bool) -> Path:
    """A report: a .html / .htm name gets the page with charts, any other name JSON."""
    return check_output_file(path, overwrite, "report")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long...
        return path.absolute()


def check_image_output_path(path: str | Path, overwrite: bool) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() not in IMAGE_OUTPUT_EXTENSIONS:
        raise UserError(f"heatmap {p}: use a .png (or .jpg) name")
    return check_output_file(p, overwrite, "heatmap")


def check_clips_dir(path: str | Path, overwrite: bool) -> Path:
    """A folder for clips: absent (made at the first event) or a writable folder. It is a collection:
    new clips are numbered after the ones there, ``events.jsonl`` is appended to, nothing in it is
    ever replaced (so ``--overwrite`` has nothing to do with it)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"clips folder {p} is a file; give a folder")
    if not p.exists():
        check_output_file(p, overwrite, "clips folder")
        return p
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"clips folder {p} is not writable; choose another path")
    return p


_CHECKS = {
    "output": check_video_output_path,
    "json_path": lambda p, o: check_json_output_path(p, o),
    "csv": lambda p, o: check_output_file(p, o, "CSV output"),
    "mot": lambda p, o: check_output_file(p, o, "MOT output"),
    "report": check_report_path,
    "clips": check_clips_dir,
    "heatmap": check_image_output_path,
}


def _flag(key: str) -> str:
    """The flag of an output setting, as ``Settings`` declares it (``json_path`` -> ``--json``)."""
    return flag_for(Settings, (key,)) or f"--{key}"


NAME = "{name}"  # in an output path: the source's name (see ``sources.naming``)
ONE_PER_SOURCE = ("output", "csv", "mot", "report", "heatmap")  # with several sources, these need {name}
SHAREABLE = ("json_path", "clips")  # with several sources and no {name}: one for all, records say "source"
_EXAMPLE = {
    "output": "out/{name}.mp4",
    "csv": "out/{name}.csv",
    "mot": "out/{name}.txt",
    "report": "out/{name}.json",
    "heatmap": "out/{name}.png",
}


def check_outputs(
    outputs: Mapping[str, str], overwrite: bool, sources: Sequence[tuple[str, str]]
) -> tuple[list[dict[str, Path]], dict[str, str]]:
    """Validate every output before anything runs. ``outputs``: settings field -> path, where ``{name}``
    stands for each source's name; ``sources``: (name, spec) pairs.

    Returns each source's checked paths ({name} filled in; stdout JSON left out), and the outputs
    all sources share (a ``--json`` or ``--clips`` without ``{name}`` in a run with several sources).
    Errors: a per-source output without ``{name}`` when there are several sources, an output that is
    an input file, two outputs on one file.
    """
    several = len(sources) > 1
    for key, value in outputs.items():
        if several and key in ONE_PER_SOURCE and NAME not in value:
            raise UserError(
                f"{_flag(key)} {value}: each of the {len(sources)} sources needs its own file; "
                f"put {NAME} in the path, e.g. {_EXAMPLE[key]}"
            )
    inputs = {_resolved(Path(spec).expanduser()) for _, spec in sources if Path(spec).expanduser().is_file()}
    seen: dict[Path, str] = {}

    def claim(key: str, path: Path) -> None:
        resolved = _resolved(path)
        if resolved in inputs:
            raise UserError(f"{_flag(key)} {path} is the input file; choose another output path")
        if resolved in seen:
            raise UserError(
                f"{_flag(seen[resolved])} and {_flag(key)} both write {path}; give each its own file"
            )
        seen[resolved] = key

    shared: dict[str, str] = {}
    for key in SHAREABLE:
        value = outputs.get(key, "")
        if several and value and NAME not in value:
            shared[key] = value
            checked = _CHECKS[key](value, overwrite)
            if checked is not None:
                claim(key, checked)
    per_source: list[dict[str, Path]] = []
    for name, _ in sources:
        paths: dict[str, Path] = {}
        for key, value in outputs.items():
            if key in shared:
                continue
            checked = _CHECKS[key](value.replace(NAME, name), overwrite)
            if checked is not None:
                claim(key, checked)
                paths[key] = checked
        per_source.append(paths)
    return per_source, shared
