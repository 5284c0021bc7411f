"""detector: real-time object detection on video.

Flow: ``sources`` (Frame) -> ``pipeline`` (capture, inference with a ``backends`` Detector) ->
``stages`` (filter, track, count, blur, draw) -> ``sinks``; ``run`` composes one run, ``cli`` the
commands. See the README's "How a frame flows".
"""

from detector.types import Detections, Frame

__all__ = ["Detections", "Frame", "__version__"]
__version__ = "0.1.0"
