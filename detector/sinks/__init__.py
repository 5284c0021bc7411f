"""Sinks: where annotated frames and detections go (video file, JSON lines, window)."""

from detector.sinks.base import FrameResult, Sink

__all__ = ["FrameResult", "Sink"]
