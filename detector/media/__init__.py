"""Media primitives: H.264 encoding, MP4 writing and faststart, audio passthrough, MP4 file helpers,
pictures (JPEG). Sinks, clips, recording, the web view and MQTT use them."""

# OpenCV before PyAV, whichever module asks first: both wheels bundle a libxcb of the same name, and
# when PyAV's is loaded first OpenCV's Qt window (--show) hangs at its first frame, waiting on the X
# server (xcb_shm_query_version). A run reaches av through this package or sources/ first, and each
# imports cv2 before any of its modules imports av (ruff's import sorting alone would put av first).
import cv2  # noqa: F401
