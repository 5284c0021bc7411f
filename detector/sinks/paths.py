"""Output paths, checked before the first frame is read: the folder exists and is writable, an existing
file is only replaced with ``--overwrite``, a video output has a video container's name, no output
is the input, and no two outputs share a file. Every problem is one ``UserError`` line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from detector.errors import UserError

STDOUT = "-"
VIDEO_OUTPUT_EXTENSIONS = {".mp4", ".m4v", ".mov"}


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
    return check_output_file(path, overwrite, "report")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long...
        return path.absolute()


_CHECKS = {
    "output": check_video_output_path,
    "json_path": lambda p, o: check_json_output_path(p, o),
    "csv": lambda p, o: check_output_file(p, o, "CSV output"),
    "mot": lambda p, o: check_output_file(p, o, "MOT output"),
    "report": check_report_path,
}
_FLAG = {"output": "output", "json_path": "json", "csv": "csv", "mot": "mot", "report": "report"}


def check_outputs(outputs: Mapping[str, str], overwrite: bool, source_spec: str) -> dict[str, Path]:
    """Validate every output (by settings field name) before anything runs; stdout JSON is left out."""
    paths: dict[str, Path] = {}
    for key, value in outputs.items():
        checked = _CHECKS[key](value, overwrite)
        if checked is not None:
            paths[key] = checked
    source = _resolved(Path(source_spec).expanduser())
    seen: dict[Path, str] = {}
    for key, path in paths.items():
        resolved = _resolved(path)
        if resolved == source and source.is_file():
            raise UserError(f"--{_FLAG[key]} {path} is the input file; choose another output path")
        if resolved in seen:
            raise UserError(
                f"--{_FLAG[seen[resolved]]} and --{_FLAG[key]} both write {path}; give each its own file"
            )
        seen[resolved] = key
    return paths
