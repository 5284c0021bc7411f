"""Per-frame work after detection, one stage each: class filter, tracker, lines, zones, trails, overlay.

``base``: the ``Stage`` interface; ``build``: the one place stages are made from settings.
"""

from detector.stages.base import Layer, Stage, StageResult

__all__ = ["Layer", "Stage", "StageResult"]
