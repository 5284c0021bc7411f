"""Class names and ids: the one lookup of ``person`` / ``2`` in the model's names, and the class filter
stage (``--classes``)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from detector.errors import UserError
from detector.stages.base import Stage, StageResult
from detector.types import Detections, Frame


def resolve_classes(
    wanted: Sequence[int | str] | None, names: Mapping[int, str], what: str = ""
) -> list[int] | None:
    """Class names (any case) or ids -> sorted class ids; ``None`` stays ``None`` (all classes).

    ``what`` prefixes errors (``"line 'door': "``), which list the valid names.
    """
    if wanted is None:
        return None
    by_name = {v.lower(): k for k, v in names.items()}
    ids: set[int] = set()
    for item in wanted:
        if isinstance(item, int) or str(item).strip().isdigit():
            cid = int(item)
            if cid not in names:
                raise UserError(f"{what}class id {cid} is not in the model (ids 0-{max(names, default=0)})")
            ids.add(cid)
            continue
        key = str(item).strip().lower()
        if key not in by_name:
            close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.6)
            hint = f"did you mean '{names[by_name[close[0]]]}'? " if close else ""
            valid = ", ".join(names[i] for i in sorted(names))
            raise UserError(f"{what}unknown class name '{item}'; {hint}valid names: {valid}")
        ids.add(by_name[key])
    return sorted(ids)


def class_names(wanted: Sequence[int | str], names: Mapping[int, str]) -> list[str]:
    """Class ids or names as names, leniently: an id looked up in the model's names (one it lacks is
    left out), a name kept as typed (stripped). For lists that only match what was detected
    (``review.alert_classes``, ``notify.classes``), where ``resolve_classes`` would refuse a typo."""
    out = []
    for item in wanted:
        if isinstance(item, int) or str(item).strip().isdigit():
            name = names.get(int(item))
            if name is not None:
                out.append(name)
        else:
            out.append(str(item).strip())
    return out


def class_mask(detections: Detections, class_ids: Sequence[int] | None) -> npt.NDArray[np.bool_]:
    """Which detections belong to ``class_ids``; all of them when ``None``."""
    if class_ids is None:
        return np.ones(len(detections), dtype=bool)
    return np.isin(detections.class_id, np.asarray(class_ids, dtype=np.int64))


class ClassFilter(Stage):
    """Keeps only the detections of the chosen classes (``--classes``)."""

    name = "classes"

    def __init__(self, class_ids: Sequence[int]) -> None:
        self.class_ids = list(class_ids)

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        if not len(detections):
            return StageResult(detections)
        return StageResult(detections[class_mask(detections, self.class_ids)])
