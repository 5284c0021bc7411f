"""The detection stage: the ``Detector`` interface, choosing a backend, and the class filter.

Backends live in their own modules and are imported lazily, so choosing the lean
OpenVINO path never imports torch:
- ``detect_openvino``: an OpenVINO model folder, run directly (fast start, no torch);
- ``yolo_backend``: everything else through Ultralytics (.pt, .yaml, ONNX, tracking).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from detector.config import Settings
from detector.errors import ModelError, UserError
from detector.types import Detections

log = logging.getLogger(__name__)


class Detector(Protocol):
    """Turns one BGR frame into ``Detections`` in source-frame pixels."""

    backend: str
    names: dict[int, str]
    model_path: str

    def detect(self, image: np.ndarray) -> Detections: ...

    def reset(self) -> None: ...


class Tracker(Protocol):
    """Gives detections stable ``tracker_id``s across frames; ``reset`` when a new source starts."""

    name: str

    def update(self, detections: Detections, image: np.ndarray) -> Detections: ...

    def reset(self) -> None: ...


def load_tracker(name: str) -> Tracker:
    """ByteTrack or BoT-SORT (Ultralytics' implementations), run on any backend's detections."""
    from detector.yolo_backend import UltralyticsTracker

    return UltralyticsTracker(name)


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith(".")


def check_model_exists(model: str) -> None:
    """Fail fast, before any output is created, on a model path that does not exist."""
    p = Path(model).expanduser()
    if p.exists():
        if p.is_file() and p.stat().st_size == 0:
            raise ModelError(f"model {model} is empty (0 bytes); pass --model PATH to a valid model")
        return
    if _looks_like_path(model) or p.suffix.lower() in (".onnx", ".xml", ".engine"):
        raise ModelError(
            f"model {model} not found; pass --model PATH to a local model (.pt, .onnx, OpenVINO folder)"
        )


def cache_dir() -> Path:
    """Where exported models and OpenVINO compile caches live ($DETECTOR_CACHE, else ~/.cache/detector)."""
    return Path(os.environ.get("DETECTOR_CACHE") or Path.home() / ".cache" / "detector")


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def openvino_export(model: str, imgsz: int) -> str:
    """A ``.pt`` exported once to OpenVINO, cached by file hash + imgsz, reused afterwards."""
    src = Path(model).expanduser().resolve()
    dest = cache_dir() / "exports" / f"{src.stem}-{_file_hash(src)}-{imgsz}_openvino_model"
    if dest.is_dir():
        log.info("backend auto: using the OpenVINO export of %s cached at %s", model, dest)
        return str(dest)
    from detector.yolo_backend import export_openvino

    log.info(
        "backend auto: exporting %s to OpenVINO once (CPU inference is ~3x faster); cache: %s", model, dest
    )
    return str(export_openvino(str(src), imgsz, dest))


def load_detector(settings: Settings, *, requests: int = 1) -> Detector:
    """Load the model the settings name, with the backend they ask for (``auto`` picks the fastest).

    ``requests``: frames the pipeline may keep in flight (2 for files: OpenVINO's throughput
    mode; 1 for live sources: lowest latency)."""
    model = settings.resolved_model()
    check_model_exists(model)
    backend = settings.backend
    from detector.detect_openvino import is_openvino_dir

    if backend == "onnx" and not model.endswith(".onnx"):
        raise ModelError(
            f"--backend onnx needs an .onnx model, got {model}; export one with `yolo export format=onnx`"
        )
    if backend == "torch" and (is_openvino_dir(model) or model.endswith(".onnx")):
        raise ModelError(f"--backend torch needs a .pt or .yaml model, got {model}")
    on_cpu = settings.device.lower() in ("cpu", "")
    exportable = model.endswith(".pt") and Path(model).is_file()
    if exportable and (backend == "openvino" or (backend == "auto" and on_cpu)):
        model = openvino_export(model, settings.imgsz)
    if backend == "openvino" and not is_openvino_dir(model):
        raise ModelError(f"--backend openvino needs a .pt model or an OpenVINO folder, got {model}")
    if is_openvino_dir(model) and backend in ("auto", "openvino"):
        from detector.detect_openvino import OpenVINODetector

        return OpenVINODetector(
            model,
            conf=settings.conf,
            iou=settings.iou,
            imgsz=settings.imgsz,
            max_det=settings.max_det,
            device=settings.device,
            cache_dir=cache_dir() / "openvino",
            requests=requests,
        )
    from detector.yolo_backend import UltralyticsDetector

    return UltralyticsDetector(
        model,
        conf=settings.conf,
        iou=settings.iou,
        imgsz=settings.imgsz,
        device=settings.device,
        half=settings.half,
        max_det=settings.max_det,
    )


def resolve_classes(wanted: Sequence[int | str] | None, names: Mapping[int, str]) -> list[int] | None:
    """Turn ``--classes person,2`` into class ids, with the valid names in the error."""
    if not wanted:
        return None
    by_name = {v.lower(): k for k, v in names.items()}
    ids: list[int] = []
    for item in wanted:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            cid = int(item)
            if cid not in names:
                raise UserError(f"class id {cid} is not in the model (ids 0-{max(names, default=0)})")
            ids.append(cid)
            continue
        key = str(item).strip().lower()
        if key not in by_name:
            close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            valid = ", ".join(names[i] for i in sorted(names))
            raise UserError(f"unknown class name '{item}'; {hint}valid names: {valid}")
        ids.append(by_name[key])
    return sorted(set(ids))


def filter_classes(detections: Detections, class_ids: Sequence[int] | None) -> Detections:
    if not class_ids or not len(detections):
        return detections
    return detections[np.isin(detections.class_id, np.asarray(class_ids))]
