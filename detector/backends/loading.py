"""Choosing and loading a backend for the model the settings name.

Backends are imported lazily, so the lean OpenVINO path never imports torch:
- ``backends.openvino``: an OpenVINO model folder, run directly (fast start, no torch);
- ``backends.ultralytics``: everything else through Ultralytics (.pt, .yaml, ONNX).
A ``.pt`` on the CPU is exported to OpenVINO once (cached) when the backend is ``auto``.
Every model is first checked by ``backends.checks.check_model`` (one-line errors, nothing imported).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from detector.backends.base import Detector
from detector.backends.checks import check_model, is_openvino, is_openvino_dir
from detector.errors import ModelError
from detector.machine import cache_dir
from detector.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["check_model", "exported", "is_openvino_dir", "load_detector", "wants_export"]


def wants_export(settings: Settings) -> bool:
    """Should this ``.pt`` run as an OpenVINO export? (``--backend openvino``, or ``auto`` on the CPU)."""
    model = settings.resolved_model()
    on_cpu = settings.device.lower() in ("cpu", "")
    exportable = model.endswith(".pt") and Path(model).is_file()
    return exportable and (settings.backend == "openvino" or (settings.backend == "auto" and on_cpu))


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
    from detector.backends.ultralytics import export_openvino

    log.info(
        "backend auto: exporting %s to OpenVINO once (CPU inference is ~3x faster); cache: %s", model, dest
    )
    return str(export_openvino(str(src), imgsz, dest, name=model))


def exported(settings: Settings) -> Settings:
    """The settings with a ``.pt`` replaced by its cached OpenVINO export, when ``wants_export``."""
    if not wants_export(settings):
        return settings
    return settings.model_copy(update={"model": openvino_export(settings.resolved_model(), settings.imgsz)})


def load_detector(settings: Settings, *, requests: int = 1) -> Detector:
    """Load the model the settings name, with the backend they ask for (``auto`` picks the fastest).

    ``requests``: frames the pipeline may keep in flight (2 for files: OpenVINO's throughput mode)."""
    backend = settings.backend
    model = settings.resolved_model()
    check_model(model)
    if backend == "onnx" and not model.endswith(".onnx"):
        raise ModelError(
            f"--backend onnx needs an .onnx model, got {model}; export one with `yolo export format=onnx`"
        )
    if backend == "torch" and (is_openvino(model) or model.endswith(".onnx")):
        raise ModelError(f"--backend torch needs a .pt or .yaml model, got {model}")
    model = exported(settings).resolved_model()
    if backend == "openvino" and not is_openvino(model):
        raise ModelError(f"--backend openvino needs a .pt model or an OpenVINO folder, got {model}")
    if is_openvino(model) and backend in ("auto", "openvino"):
        from detector.backends.openvino import OpenVINODetector

        return OpenVINODetector(
            model,
            conf=settings.conf,
            iou=settings.iou,
            imgsz=settings.imgsz,
            max_det=settings.max_det,
            device=settings.device,
            requests=requests,
        )
    from detector.backends.ultralytics import UltralyticsDetector

    return UltralyticsDetector(
        model,
        conf=settings.conf,
        iou=settings.iou,
        imgsz=settings.imgsz,
        device=settings.device,
        half=settings.half,
        max_det=settings.max_det,
    )
