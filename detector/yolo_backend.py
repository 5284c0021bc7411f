"""The Ultralytics backend: the only module that imports ``ultralytics`` (and so torch).

It loads ``.pt``, ``.yaml``, ONNX or an OpenVINO folder through ``YOLO(path, task="detect")``,
runs predict (or track) on one BGR frame and returns our own ``Detections``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.types import Detections

log = logging.getLogger(__name__)

os.environ.setdefault("YOLO_VERBOSE", "False")


def _backend_name(model: str) -> str:
    p = Path(model)
    if p.suffix == ".onnx":
        return "onnx"
    if p.is_dir() or model.endswith("_openvino_model"):
        return "openvino (ultralytics)"
    return "torch"


class UltralyticsDetector:
    """YOLO through Ultralytics. Not thread-safe: one thread owns it."""

    def __init__(
        self,
        model: str,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int = 640,
        classes: Sequence[int] | None = None,
        device: str = "cpu",
        half: bool = False,
        max_det: int = 300,
        tracker: str | None = None,
    ) -> None:
        try:
            from ultralytics import YOLO
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelError(
                f"ultralytics cannot be imported ({exc}); reinstall with pip install -e ."
            ) from exc
        self.model_path = model
        self.backend = _backend_name(model)
        self.tracker = tracker
        try:
            self.model = YOLO(model, task="detect")
        except (ConnectionError, TimeoutError) as exc:
            raise ModelError(
                f"model {model} is not on disk and cannot be downloaded (no network?); "
                "pass --model PATH to a local model (.pt, .onnx, OpenVINO folder)"
            ) from exc
        except FileNotFoundError as exc:
            raise ModelError(f"model {model} not found; pass --model PATH to a local model") from exc
        except Exception as exc:  # torch/onnx/openvino raise many kinds for a corrupt file
            raise ModelError(f"model {model} cannot be loaded: {str(exc).splitlines()[0][:200]}") from exc
        task = getattr(self.model, "task", "detect")
        if task != "detect":
            raise ModelError(
                f"model {model} is a {task} model; detector needs a detection model (task 'detect')"
            )
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}
        self.kwargs: dict[str, Any] = {
            "conf": conf,
            "iou": iou,
            "imgsz": imgsz,
            "classes": list(classes) if classes else None,
            "device": device,
            "half": half,
            "max_det": max_det,
            "verbose": False,
        }
        self.last_timings: dict[str, float] = {}

    def detect(self, image: np.ndarray) -> Detections:
        results: Any
        try:
            if self.tracker:
                results = self.model.track(image, persist=True, tracker=self.tracker, **self.kwargs)
            else:
                results = self.model.predict(image, **self.kwargs)
        except (RuntimeError, ValueError) as exc:
            if "device" in str(exc).lower() or "cuda" in str(exc).lower():
                raise ModelError(
                    f"device {self.kwargs['device']} cannot be used: {str(exc).splitlines()[0]}"
                ) from exc
            raise
        r = results[0]
        self.last_timings = dict(getattr(r, "speed", {}) or {})
        boxes: Any = r.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty(self.names)
        ids = boxes.id
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy(),
            confidence=boxes.conf.cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int64),
            tracker_id=None if ids is None else ids.cpu().numpy().astype(np.int64),
            names=self.names,
        )

    def reset(self) -> None:
        """Forget tracks (a new source starts)."""
        if self.tracker and getattr(self.model, "predictor", None) is not None:
            self.model.predictor = None


def export_openvino(model: str, imgsz: int, dest: Path) -> Path:
    """Export a ``.pt`` model to an OpenVINO folder at ``dest`` (FP32, static ``imgsz``)."""
    from ultralytics import YOLO

    try:
        yolo = YOLO(model, task="detect")
        if getattr(yolo, "task", "detect") != "detect":
            raise ModelError(
                f"model {model} is a {yolo.task} model; detector needs a detection model (task 'detect')"
            )
        out = Path(yolo.export(format="openvino", imgsz=imgsz, dynamic=False, half=False, verbose=False))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"exporting {model} to OpenVINO failed: {str(exc).splitlines()[0][:200]}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    out.rename(tmp)
    tmp.rename(dest)  # atomic: a half-exported cache is never picked up
    return dest
