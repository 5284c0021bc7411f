"""detector: real-time object detection on video.

Flow: ``sources`` (Frame) -> ``detection`` (Detections) -> ``overlay`` (annotated frame) -> ``sinks``.
"""

from detector.types import Detections, Frame

__all__ = ["Detections", "Frame", "__version__"]
__version__ = "0.1.0"
