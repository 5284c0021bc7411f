"""What a batch reads and where it writes: the input videos (files, folders searched recursively,
globs) and the output folder (created if needed, proven writable)."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from detector.errors import UserError
from detector.sources.base import VIDEO_EXTENSIONS as VIDEO_INPUT_EXTENSIONS

log = logging.getLogger(__name__)


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def collect_inputs(specs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Files as given; folders searched recursively and globs, both for video extensions only.

    Files under ``exclude`` (the output folder) are never picked up from folders or globs.
    """
    found: list[Path] = []
    empty: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file():
            found.append(path.resolve())
            continue
        if path.is_dir():
            files: Iterable[Path] = path.rglob("*")
        elif glob.has_magic(spec):
            files = (Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
        else:
            raise UserError(f"input {spec} not found")
        matched = sorted(
            p.resolve()
            for p in files
            if p.suffix.lower() in VIDEO_INPUT_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        matched = [p for p in matched if exclude is None or not _is_under(p, exclude)]
        if not matched:
            empty.append(spec)
        found += matched
    unique = list(dict.fromkeys(found))
    exts = " ".join(sorted(VIDEO_INPUT_EXTENSIONS))
    if not unique:
        raise UserError(f"no video inputs found in {' '.join(specs)} (looked for {exts})")
    for spec in empty:
        log.warning("%s has no videos (%s)", spec, exts)
    return unique


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder if needed and prove it is writable (``UserError`` otherwise)."""
    p = Path(path).expanduser()
    try:
        if p.exists() and not p.is_dir():
            raise UserError(f"--output-dir {p} is a file; give a folder")
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        raise UserError(f"--output-dir {p} is not writable: {exc.strerror or exc}") from exc
    return p.resolve()
