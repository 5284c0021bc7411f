"""Frame sources behind one interface — video file, camera, network stream, images — and the capture
thread that reads one into the pipeline."""

from detector.sources.base import Source, SourceInfo, SourceKind, check_url, is_live_spec
from detector.sources.from_spec import open_source

__all__ = ["Source", "SourceInfo", "SourceKind", "check_url", "is_live_spec", "open_source"]
