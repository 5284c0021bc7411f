"""Detection backends: the ``Detector`` interface, and loading the one the settings ask for."""

from detector.backends.base import Detector, Pending
from detector.backends.loading import load_detector

__all__ = ["Detector", "Pending", "load_detector"]
