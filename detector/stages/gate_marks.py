"""What the gate did with each frame (``pipeline.gate``), for the JSONL and the picture.

On a gated source (motion gating or ``--detect-fps``) every frame line says whether the model ran on
it (``"inference": true|false``) and, with motion gating, where the motion check saw change
(``"motion"``: boxes as corners in source pixels, biggest first, with those of any live frames dropped
just before it; ``[]`` where nothing moved).
``overlay.motion`` draws those boxes, thin and orange, under everything but the privacy covers.
"""

from __future__ import annotations

import cv2
import numpy as np

from detector.stages.base import Layer, Stage, StageResult
from detector.types import Detections, FloatArray, Frame, FrameFacts, Image, Inference

MOTION_COLOR = (0, 140, 255)  # BGR orange


class GateStage(Stage):
    """Adds ``inference`` (and ``motion``, when ``motion`` is on) to each frame's JSONL line."""

    name = "gate"

    def __init__(self, motion: bool) -> None:
        self.motion = motion
        self.boxes: FloatArray = np.zeros((0, 4), np.float32)

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        facts = FrameFacts(inference=frame.inference is Inference.RAN)
        if self.motion:
            self.boxes = frame.motion if frame.motion is not None else np.zeros((0, 4), np.float32)
            facts.motion = np.rint(self.boxes).astype(int).tolist()
        return StageResult(detections, facts=facts)


class MotionOverlay(GateStage):
    """``GateStage`` that also draws the motion boxes (``overlay.motion``)."""

    layer = Layer.MOTION

    def annotate(self, scene: Image, detections: Detections) -> Image:
        width = max(1, round((scene.shape[0] + scene.shape[1]) / 1500))
        for x1, y1, x2, y2 in np.rint(self.boxes).astype(int).tolist():
            cv2.rectangle(scene, (x1, y1), (x2 - 1, y2 - 1), MOTION_COLOR, width, cv2.LINE_8)
        return scene
