"""Multi-object tracking on NumPy alone: a Kalman filter on boxes and ByteTrack's association."""

from detector.tracking.bytetrack import ByteTrack

__all__ = ["ByteTrack"]
