"""``open_source``: whatever a spec names — camera index, URL, folder, glob, image or video file."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from detector.errors import SourceError
from detector.sources.base import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Source, check_url
from detector.sources.camera import CameraSource, parse_size
from detector.sources.images import ImageSource, natural_key
from detector.sources.video import PyAVSource


def open_source(
    spec: str,
    *,
    image_fps: float = 30.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 5.0,
    camera_size: str | None = None,
    camera_fps: float | None = None,
) -> Source:
    """Open whatever ``spec`` names: camera index, URL, folder, glob, image or video file."""
    spec = spec.strip()
    if spec.isdigit():
        return CameraSource(int(spec), size=parse_size(camera_size), fps=camera_fps)
    if "://" in spec:
        check_url(spec)
        return PyAVSource(spec, kind="stream", connect_timeout=connect_timeout, read_timeout=read_timeout)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            (str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key
        )
        if not files:
            videos = sum(1 for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            if videos:
                raise SourceError(
                    f"folder {spec} holds {videos} video{'s' if videos > 1 else ''} and no images: "
                    f"`detector batch {spec} --output-dir out/` runs each video (a folder SOURCE of "
                    "`detector run` is an image sequence)"
                )
            raise SourceError(f"folder {spec} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return ImageSource(files, spec, image_fps)
    if any(c in spec for c in "*?[") and not path.exists():
        files = sorted(
            (p for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS),
            key=natural_key,
        )
        if not files:
            raise SourceError(f"pattern {spec} matches no images")
        return ImageSource(files, spec, image_fps)
    if not path.exists():
        raise SourceError(f"input {spec} not found")
    if not path.is_file():
        raise SourceError(f"input {spec} is not a file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"input {spec} cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise SourceError(f"input {spec} is empty (0 bytes)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource([str(path)], spec, image_fps)
    return PyAVSource(str(path), kind="file", connect_timeout=connect_timeout, read_timeout=read_timeout)
