"""Output paths, checked before the first frame is read: the folder exists and is writable (or, when
missing, can be made: its nearest existing folder is writable), an existing file is only replaced with
``--overwrite``, a video output has a video container's name, no output is the input, and no two
outputs share a file. Every problem is one ``UserError`` line.

One rule for missing folders, for every output: the checks only look, and ``make_parents`` makes them
when the output is first opened, so a run that fails to start leaves no new folders behind."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from detector.errors import UserError
from detector.settings.base import flag_for
from detector.settings.model import Settings

STDOUT = "-"
VIDEO_OUTPUT_EXTENSIONS = {".mp4", ".m4v", ".mov"}
IMAGE_OUTPUT_EXTENSIONS = {".png", ".jpg", ".jpeg"}


def check_output_file(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """Check that ``path`` can be created: its folder is writable (or missing and can be made), the
    file absent unless overwrite.

    In an existing folder a new file is created and removed again, which also catches what no
    permission bit shows (a name too long, a read-only or special file system). Raises ``UserError``
    with one line saying what to do. Shared by the file sinks.
    """
    p = Path(path).expanduser()
    refuse_folder(path, what)
    try:
        return _check_output_file(p, overwrite, what)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
        raise UserError(f"{what} {p} cannot be created ({reason}); choose another path") from exc


def refuse_folder(path: str | Path, what: str) -> None:
    """An output named ``out/``, or an existing folder, is refused: outputs are files."""
    p = Path(path).expanduser()
    try:
        is_dir = p.is_dir()
    except OSError:  # a name too long...: the checks that follow say so
        is_dir = False
    if str(path).endswith(("/", os.sep)) or is_dir:
        raise UserError(f"{what} {path} is a folder; give a file name")


def _check_missing_folder(p: Path, what: str) -> None:
    """``p``'s folder is missing: it can be made if its nearest existing folder is writable and each
    name to be made fits the file system."""
    folder, missing = p.parent, [p.name]
    ancestor = folder
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        missing.append(ancestor.name)
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what} folder {ancestor} is not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(
            f"{what} folder {folder} cannot be made: {ancestor} is not writable; choose another path"
        )
    longest = max(len(os.fsencode(name)) for name in missing)
    if longest > os.pathconf(ancestor, "PC_NAME_MAX"):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))


def _check_output_file(p: Path, overwrite: bool, what: str) -> Path:
    folder = p.parent
    if not os.path.lexists(folder):
        _check_missing_folder(p, what)
        return p
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


def _probe_folder(p: Path, what: str) -> None:
    """A missing folder ``p`` can be made: made and removed again, as a folder (a file made at its
    name would be taken for a file by a second run checking the same missing folder at that moment:
    two runs started at once into one new folder). Messages as ``check_output_file``'s."""
    folder = p.parent
    try:
        if not os.path.lexists(folder):
            _check_missing_folder(p, what)
            return
        if not folder.is_dir():
            raise UserError(f"{what} folder {folder} is not a folder; choose another path")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{what} folder {folder} is not writable; choose another path")
        try:
            os.mkdir(p)
        except FileExistsError:
            return  # made meanwhile (another run): a folder, as it should be
        with contextlib.suppress(OSError):  # another run may have put something in it already
            os.rmdir(p)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
        raise UserError(f"{what} {p} cannot be created ({reason}); choose another path") from exc


def check_json_output_path(path: str | Path, overwrite: bool) -> Path | None:
    """Validate a JSON-lines output before any frame is read; ``None`` means stdout (``-``)."""
    if str(path) == STDOUT:
        return None
    return check_output_file(path, overwrite, "JSON output")


def check_video_output_path(path: str | Path, overwrite: bool) -> Path:
    """Validate a video output before any frame is read; raises ``UserError``."""
    p = Path(path).expanduser()
    refuse_folder(path, "video output")
    if p.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
        kind = f"a '{p.suffix}' name" if p.suffix else "a name without an extension"
        raise UserError(
            f"video output {p}: {kind}, but the video is written as H.264 in MP4; "
            f"use a .mp4, .m4v or .mov name, e.g. {p.with_suffix('.mp4')}"
        )
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


MAX_LOOKS = 8


def check_clips_dir(path: str | Path, overwrite: bool, what: str = "clips folder") -> Path:
    """A folder for clips (or recordings): absent (made at the first event, missing parents too) or a
    writable folder. It is a collection: new clips are numbered after the ones there, ``events.jsonl``
    is appended to, nothing in it is ever replaced (so ``--overwrite`` has nothing to do with it)."""
    p = Path(path).expanduser()
    refusals = 0  # looks that found a folder there, not writable, before and after the access check
    for _ in range(MAX_LOOKS):  # another run's probe of the same new folder may come and go meanwhile
        try:
            is_dir = stat.S_ISDIR(os.stat(p).st_mode)
        except (FileNotFoundError, NotADirectoryError):  # missing, or under a file: said below
            if os.path.islink(p):  # a dangling symlink
                return check_output_file(p, overwrite, what.removesuffix(" folder"))
            _probe_folder(p, what.removesuffix(" folder"))  # its messages add " folder"
            return p
        if not is_dir:
            raise UserError(f"{what} {p} is a file; give a folder")
        if os.access(p, os.W_OK | os.X_OK):
            return p
        # a probe's folder removed and made again between the looks reads as not writable once
        if os.path.isdir(p) and not os.access(p, os.W_OK | os.X_OK):
            refusals += 1
            if refusals == 2:
                break
    raise UserError(f"{what} {p} is not writable; choose another path")


def check_events_db(path: str | Path, overwrite: bool) -> Path:
    """An event store: absent (made at the first write) or a store of ours it appends to (a foreign
    or newer file is refused here, before the model loads); ``--overwrite`` has nothing to do with it."""
    p = Path(path).expanduser()
    refuse_folder(path, "event store")
    if not os.path.lexists(p):
        return check_output_file(p, overwrite, "event store")
    if not p.is_file():
        raise UserError(f"event store {p} is not a file; choose another path")
    if not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK | os.X_OK):
        raise UserError(f"event store {p} is not writable (nor its folder); choose another path")
    from detector.eventstore.schema import check_store  # sqlite3: only for a run with a store

    check_store(p)
    return p


_CHECKS = {
    "output": check_video_output_path,
    "json_path": lambda p, o: check_json_output_path(p, o),
    "csv": lambda p, o: check_output_file(p, o, "CSV output"),
    "mot": lambda p, o: check_output_file(p, o, "MOT output"),
    "report": check_report_path,
    "clips": check_clips_dir,
    "events_db": check_events_db,
    "heatmap": check_image_output_path,
}


def _flag(key: str) -> str:
    """The flag of an output setting, as ``Settings`` declares it (``json_path`` -> ``--json``)."""
    return flag_for(Settings, (key,)) or f"--{key}"


NAME = "{name}"  # in an output path: the source's name (see ``sources.naming``)
ONE_PER_SOURCE = ("output", "csv", "mot", "report", "heatmap")  # with several sources, these need {name}
SHAREABLE = ("json_path", "clips", "events_db")  # several sources, no {name}: one for all
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
