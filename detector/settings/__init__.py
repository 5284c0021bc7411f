"""Typed, validated settings: the one declaration of every option (flags, YAML keys, docs).

``model``: the ``Settings`` model; ``analytics``: lines, zones and trails sections; ``loading``:
defaults < YAML < env < flags; ``flags``: argparse flags made from the declarations; ``docs``:
``configs/default.yaml`` and the README tables made from them.
"""

from detector.settings.analytics import LineSpec, TrailSettings, ZoneSpec
from detector.settings.loading import load_settings, read_config_file
from detector.settings.model import (
    BUNDLED_MODEL,
    DEFAULT_MODEL,
    MODEL_ENV,
    EncoderSettings,
    OverlaySettings,
    Settings,
    with_updates,
)

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "EncoderSettings",
    "LineSpec",
    "OverlaySettings",
    "Settings",
    "TrailSettings",
    "ZoneSpec",
    "load_settings",
    "read_config_file",
    "with_updates",
]
