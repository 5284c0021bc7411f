"""What retention deletes, as a pure function of what the folders hold (``choose``), and what a folder
needs at least (``needs``); ``retention`` applies it to the disk.

Oldest first (by the time a unit ends): every unit older than ``days``; then, per folder, the oldest
until the folder holds at most ``max_size`` with room (``headroom``) for what is being written; then,
across the folders on one filesystem, the oldest until ``min_free`` and that room are free. Never
each source's newest segment, nor its newest clip (``newest``), whatever the limits: a cap too small
for them and the room (``needs``) is said, not met by deleting them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.catalog import MediaFile
from detector.settings.storage import size_text
from detector.storage.disk import allocated


@dataclass(frozen=True)
class Limits:
    days: float | None = None
    max_size: int | None = None
    min_free: int | None = None

    def any(self) -> bool:
        return self.days is not None or self.max_size is not None or self.min_free is not None

    def text(self) -> str:
        parts = [f"older than {self.days:g} days"] if self.days is not None else []
        if self.max_size is not None:
            parts.append(f"beyond {size_text(self.max_size)} a folder")
        if self.min_free is not None:
            parts.append(f"below {size_text(self.min_free)} free")
        return ", ".join(parts) or "no limits"


@dataclass
class Unit:
    """What is deleted together: a segment, or a clip and its snapshots."""

    files: list[MediaFile]
    block: int = 1  # the filesystem's allocation unit

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def disk(self) -> int:
        """What its files take on disk."""
        return sum(allocated(f.bytes, self.block) for f in self.files)

    @property
    def end(self) -> float:
        return max((f.end for f in self.files if f.end is not None), default=0.0)

    @property
    def label(self) -> str:
        extra = len(self.files) - 1
        more = f" and {extra} snapshot{'s' if extra > 1 else ''}" if extra else ""
        return f"{self.files[0].path}{more}"


@dataclass(frozen=True)
class Doomed:
    folder: Path
    unit: Unit
    why: str


def newest(units: Sequence[Unit]) -> set[int]:
    """The units never deleted (by ``id``): each source's newest segment, and its newest clip."""
    best: dict[tuple[str, str], Unit] = {}
    for unit in units:
        head = unit.files[0]
        if head.kind != "snapshot" and unit.end >= best.get((head.source, head.kind), unit).end:
            best[head.source, head.kind] = unit
    return {id(u) for u in best.values()}


def needs(units: Sequence[Unit], *, headroom: int, held: int = 0) -> int:
    """What a folder needs at least: its newest units (``newest``), the room for what is being
    written and its index files. A ``max_size`` below it cannot be kept without deleting those."""
    kept = newest(units)
    return sum(u.disk for u in units if id(u) in kept) + headroom + held


def choose(
    folders: Mapping[Path, Sequence[Unit]],
    limits: Limits,
    *,
    now: float,
    free: int | None,
    headroom: Mapping[Path, int],
    held: Mapping[Path, int] | None = None,
) -> list[Doomed]:
    """The units to delete, oldest first, from ``folders`` that share one filesystem (``free`` bytes
    free on it). ``headroom``: per folder, the room kept for what is being written; ``held``: what
    else it holds that counts against its size (its index files). Each source's newest segment and
    newest clip (``newest``) are never chosen, whatever the limits."""
    doomed: list[Doomed] = []
    gone: set[int] = set()
    kept = {i for units in folders.values() for i in newest(units)}

    def doom(folder: Path, unit: Unit, why: str) -> None:
        doomed.append(Doomed(folder, unit, why))
        gone.add(id(unit))

    def free_to_go(unit: Unit) -> bool:
        return id(unit) not in gone and id(unit) not in kept

    ordered = {folder: sorted(units, key=lambda u: u.end) for folder, units in folders.items()}
    if limits.days is not None:
        cutoff = now - limits.days * 86400
        for folder, units in ordered.items():
            for unit in units:
                if unit.end < cutoff and free_to_go(unit):
                    doom(folder, unit, f"older than {limits.days:g} days")
    if limits.max_size is not None:
        cap = size_text(limits.max_size)
        for folder, units in ordered.items():
            used = sum(u.disk for u in units if id(u) not in gone) + (held or {}).get(folder, 0)
            room = headroom.get(folder, 0)
            for unit in units:
                if used + room <= limits.max_size:
                    break
                if free_to_go(unit):
                    why = (
                        f"{folder} holds {size_text(used)}, {size_text(room)} kept for what is being written"
                    )
                    why += f": over {cap}"
                    doom(folder, unit, why)
                    used -= unit.disk
    if limits.min_free is not None and free is not None:
        need = limits.min_free + sum(headroom.get(f, 0) for f in ordered)
        free += sum(d.unit.disk for d in doomed)
        pool = sorted(((u.end, f, u) for f, us in ordered.items() for u in us), key=lambda x: x[0])
        for _, folder, unit in pool:
            if free >= need:
                break
            if free_to_go(unit):
                why = f"{size_text(free)} free on its disk, less than {size_text(limits.min_free)}"
                why += f" and {size_text(need - limits.min_free)} kept for what is being written"
                doom(folder, unit, why)
                free += unit.disk
    return doomed
