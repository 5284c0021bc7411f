"""The Ultralytics backend: the only module that imports ``ultralytics`` (and so torch).

- ``UltralyticsDetector`` loads ``.pt``, ``.yaml``, ONNX or an OpenVINO folder through
  ``YOLO(path, task="detect")`` and runs predict on one BGR frame;
- ``export_openvino`` exports a ``.pt`` once for the lean OpenVINO backend;
- ``UltralyticsTracker`` runs ByteTrack / BoT-SORT on our ``Detections`` from any backend.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.backends.base import Done, Pending
from detector.backends.checks import HINT, OTHER_FORMATS, not_detect
from detector.errors import ModelError
from detector.text import first_line
from detector.types import Detections, Image

log = logging.getLogger(__name__)

os.environ.setdefault("YOLO_VERBOSE", "False")


def _backend_name(model: str) -> str:
    p = Path(model)
    if p.suffix == ".onnx":
        return "onnx"
    if p.is_dir() or model.endswith("_openvino_model"):
        return "openvino (ultralytics)"
    return "torch"


def _reason(exc: BaseException, *paths: str) -> str:
    """Ultralytics' message for ``exc``, shorn of its "ERROR ❌" prefix and of the model's path."""
    text = first_line(exc, 300)
    for p in sorted(paths, key=len, reverse=True):
        text = text.replace(f"'{p}'", "it").replace(p, "it")
    text = re.sub(r"^\W*ERROR\W*", "", text).strip()
    if len(text) > 160:
        text = text[:160].rsplit(" ", 1)[0] + "..."
    return text or type(exc).__name__


def _cannot_load(model: str, exc: BaseException, *paths: str) -> ModelError:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
        return ModelError(f"model {model} needs the Python package {package}, which is not installed")
    return ModelError(f"model {model} cannot be loaded ({_reason(exc, model, *paths)}); {HINT}")


# Formats Ultralytics loads lazily, at the first predict: loaded at once here, so errors come first.
_LOADED_AT_PREDICT = (".onnx", ".xml", *OTHER_FORMATS)


class UltralyticsDetector:
    """YOLO through Ultralytics: synchronous predictions, several frames of the same size in one batch
    (frames of several sources; a batch of one size gives the same boxes as one frame at a time, since
    Ultralytics letterboxes a batch of equal shapes as it does one image). Not thread-safe."""

    max_in_flight = 1
    max_batch = 8

    def __init__(
        self,
        model: str,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int = 640,
        device: str = "cpu",
        half: bool = False,
        max_det: int = 300,
    ) -> None:
        try:
            from ultralytics import YOLO
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelError(
                f"ultralytics cannot be imported ({exc}); reinstall with pip install -e ."
            ) from exc
        self.model_path = model
        self.backend = _backend_name(model)
        try:
            # A .yaml builds a fresh model: forcing task="detect" would hide a segment/classify head.
            yaml_cfg = Path(model).suffix.lower() in (".yaml", ".yml")
            self.model = YOLO(model, task=None if yaml_cfg else "detect")
        except (ConnectionError, TimeoutError) as exc:
            raise ModelError(
                f"model {model} is not on disk and cannot be downloaded (no network?); {HINT}"
            ) from exc
        except FileNotFoundError as exc:
            raise ModelError(f"model {model} not found; {HINT}") from exc
        except Exception as exc:  # torch/onnx/openvino raise many kinds for a corrupt file
            raise _cannot_load(model, exc) from exc
        task = getattr(self.model, "task", "detect")
        if task != "detect":
            raise not_detect(model, task)
        self.kwargs: dict[str, Any] = {
            "conf": conf,
            "iou": iou,
            "imgsz": imgsz,
            "device": device,
            "half": half,
            "max_det": max_det,
            "verbose": False,
        }
        if Path(model).suffix.lower() in _LOADED_AT_PREDICT or Path(model).is_dir():
            try:
                self.model.predict(np.zeros((64, 64, 3), np.uint8), **self.kwargs)
            except Exception as exc:
                raise _cannot_load(model, exc) from exc
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}

    def submit(self, image: Image, on_ready: Callable[[], None] | None = None) -> Pending:
        """Predicts at once (Ultralytics has no async API): the result is ready when this returns."""
        return Done(self.detect(image))

    def submit_batch(self, images: Sequence[Image]) -> list[Pending]:
        """One prediction per group of equal-sized frames; results in the order of ``images``."""
        out: list[Pending | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        for indices in groups.values():
            for i, detections in zip(indices, self._predict([images[i] for i in indices]), strict=True):
                out[i] = Done(detections)
        return [p for p in out if p is not None]

    def detect(self, image: Image) -> Detections:
        return self._predict([image])[0]

    def _predict(self, images: list[Image]) -> list[Detections]:
        results: Any
        try:
            results = self.model.predict(images if len(images) > 1 else images[0], **self.kwargs)
        except (RuntimeError, ValueError) as exc:
            if "device" in str(exc).lower() or "cuda" in str(exc).lower():
                raise ModelError(f"device {self.kwargs['device']} cannot be used: {first_line(exc)}") from exc
            raise
        return [self._detections(r.boxes) for r in results]

    def _detections(self, boxes: Any) -> Detections:
        if boxes is None or len(boxes) == 0:
            return Detections.empty(self.names)
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy(),
            confidence=boxes.conf.cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int64),
            names=self.names,
        )


def export_openvino(model: str, imgsz: int, dest: Path, name: str | None = None) -> Path:
    """Export a ``.pt`` model to an OpenVINO folder at ``dest`` (FP32, static ``imgsz``); errors name
    the model as ``name`` (what the user gave) when set."""
    from ultralytics import YOLO

    shown = name or model
    try:
        yolo = YOLO(model, task="detect")
    except Exception as exc:  # a corrupt or non-YOLO file: say so, not "export failed"
        raise _cannot_load(shown, exc, model) from exc
    if getattr(yolo, "task", "detect") != "detect":
        raise not_detect(shown, str(yolo.task))
    try:
        out = Path(yolo.export(format="openvino", imgsz=imgsz, dynamic=False, half=False, verbose=False))
    except Exception as exc:
        raise ModelError(f"exporting {shown} to OpenVINO failed: {first_line(exc, 200)}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    out.rename(tmp)
    tmp.rename(dest)  # atomic: a half-exported cache is never picked up
    return dest


class UltralyticsTracker:
    """ByteTrack or BoT-SORT from Ultralytics, run on our ``Detections`` from any backend.

    Detection stays on the fast backend; only the association step comes from Ultralytics. The
    trackers' documented input is detections "exposing conf, cls and xywh and supporting boolean
    indexing", such as Ultralytics' public ``Boxes`` class over a NumPy array, which is what we give.
    Only tracked boxes are returned, with ``tracker_id`` filled (as ``model.track`` does).
    """

    def __init__(self, tracker: str = "bytetrack") -> None:
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        name = tracker if tracker.endswith(".yaml") else f"{tracker}.yaml"
        try:
            cfg = IterableSimpleNamespace(**YAML.load(check_yaml(name)))
        except (FileNotFoundError, OSError) as exc:
            raise ModelError(f"tracker {tracker} not found; use bytetrack or botsort") from exc
        kinds = {"bytetrack": BYTETracker, "botsort": BOTSORT}
        if cfg.tracker_type not in kinds:
            raise ModelError(f"tracker type {cfg.tracker_type} is not supported; use bytetrack or botsort")
        if getattr(cfg, "with_reid", False):
            log.warning("ReID needs extra weights that cannot be downloaded offline; tracking without ReID")
            cfg.with_reid = False
        self._boxes = Boxes
        self.name = str(cfg.tracker_type)
        # Built without frame_rate (so for 30 fps): a lost track is dropped after track_buffer frames.
        self.lost_frames = int(cfg.track_buffer)
        self._tracker = kinds[cfg.tracker_type](args=cfg)
        self._last: Detections | None = None

    def predict(self, steps: int = 1, *, still: bool = False) -> Detections:
        """Frames the model did not run on: the tracks hold their last boxes. Ultralytics' trackers
        cannot step through a frame without detections (their ``update`` would mark every track
        lost), so they are not stepped: their lost-track buffer counts only the frames the model
        ran on."""
        return self._last[:] if self._last is not None else Detections.empty()  # a copy: ids get renumbered

    def update(self, detections: Detections, image: Image) -> Detections:
        data = np.concatenate(
            [
                detections.xyxy,
                detections.confidence[:, None],
                detections.class_id[:, None].astype(np.float32),
            ],
            axis=1,
        )
        rows = self._tracker.update(self._boxes(data, image.shape[:2]), image)
        if len(rows) == 0:
            self._last = Detections(
                xyxy=np.zeros((0, 4), np.float32),
                confidence=np.zeros(0, np.float32),
                class_id=np.zeros(0, np.int64),
                tracker_id=np.zeros(0, np.int64),
                names=detections.names,
            )
            return self._last[:]
        rows = np.asarray(rows)
        self._last = Detections(
            xyxy=rows[:, :4],
            confidence=rows[:, 5],
            class_id=rows[:, 6].astype(np.int64),
            tracker_id=rows[:, 4].astype(np.int64),
            names=detections.names,
        )
        return self._last[:]
