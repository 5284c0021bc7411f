"""Frame sources behind one interface — video file, camera, network stream, images — and the capture
thread that reads one into the pipeline."""

# OpenCV before PyAV, whichever module asks first: both wheels bundle a libxcb of the same name, and
# when PyAV's is loaded first OpenCV's Qt window (--show) hangs at its first frame, waiting on the X
# server (xcb_shm_query_version). This package's file sources import av too (detector/media/ says the
# same), so it imports cv2 first: ruff's import sorting alone would put av first.
import cv2  # noqa: F401

from detector.sources.base import Source, SourceInfo, SourceKind, check_url, is_live_spec
from detector.sources.from_spec import open_source

__all__ = ["Source", "SourceInfo", "SourceKind", "check_url", "is_live_spec", "open_source"]
