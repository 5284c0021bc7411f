"""Compare our ByteTrack with Ultralytics' on the same detections; not a test.

    PYTHONPATH=. python tests/measure_tracker.py CLIP [--config CFG] [--vid-stride N] [--max-frames N]
        [--rounds 3] [--frames-buffer] [--cache DETS.npz]

Runs the model over the clip once (with the config's classes, confidence and stride) and keeps each
frame's detections. Then, for each round, feeds them to both trackers, one frame each in turn, and
times every ``update`` (ms per frame, median and mean). Prints, per tracker, the distinct tracks per
class and, between the two, how many frames give the same boxes under one mapping of ids.
Needs Ultralytics (for its tracker).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from detector.backends import load_detector
from detector.backends.ultralytics import UltralyticsTracker
from detector.cli.common import setup_logging
from detector.settings import load_settings
from detector.sources import open_source
from detector.stages.classes import resolve_classes
from detector.tracking import ByteTrack
from detector.types import Detections


def detections(clip: str, config: str | None, stride: int, max_frames: int) -> tuple[list[Detections], Any]:
    """Every ``stride``-th frame's detections (class filter applied), and the source's fps."""
    settings = load_settings(config, {}, env={})
    detector = load_detector(settings)
    wanted = resolve_classes(settings.classes, detector.names)
    source = open_source(clip)
    found: list[Detections] = []
    index = 0
    while len(found) < max_frames and (frame := source.read()) is not None:
        index += 1
        if (index - 1) % stride:
            continue
        dets = detector.detect(frame.image)
        if wanted is not None:
            dets = dets[np.isin(dets.class_id, wanted)]
        found.append(dets)
    fps = source.info.fps
    source.close()
    return found, fps


def save(path: str, found: list[Detections], fps: Any) -> None:
    rows = [np.column_stack([d.xyxy, d.confidence, d.class_id]) for d in found]
    names = found[0].names if found else {}
    np.savez(path, *rows, fps=str(fps), names=np.array(list(names.items()), dtype=object))


def load(path: str) -> tuple[list[Detections], Any]:
    data = np.load(path, allow_pickle=True)
    names = {int(k): str(v) for k, v in data["names"]}
    rows = [data[f"arr_{i}"] for i in range(len(data.files) - 2)]
    return [Detections(r[:, :4], r[:, 4], r[:, 5], names=names) for r in rows], Fraction(str(data["fps"]))


def tally(outputs: list[Detections]) -> dict[str, int]:
    first: dict[int, str] = {}
    for d in outputs:
        assert d.tracker_id is not None
        for tid, cid in zip(d.tracker_id.tolist(), d.class_id.tolist(), strict=True):
            first.setdefault(tid, d.class_name(cid))
    return dict(Counter(first.values()))


def agreement(old: list[Detections], new: list[Detections]) -> tuple[int, int]:
    """Frames whose boxes are the same (within 0.01 px) under one id mapping, and frames in all."""
    mapping: dict[int, int] = {}
    same = 0
    for a, b in zip(old, new, strict=True):
        ok = len(a) == len(b)
        if ok:
            assert a.tracker_id is not None and b.tracker_id is not None
            by_id = {int(t): i for i, t in enumerate(b.tracker_id)}
            for i, tid in enumerate(a.tracker_id.tolist()):
                j = by_id.get(mapping.setdefault(tid, -1))
                if j is None:  # an id not mapped yet: the new box nearest this one
                    j = int(np.abs(b.xyxy - a.xyxy[i]).sum(axis=1).argmin())
                    mapping[tid] = int(b.tracker_id[j])
                ok = ok and bool(np.abs(b.xyxy[j] - a.xyxy[i]).max() < 0.01)
        same += ok
    return same, len(old)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip")
    parser.add_argument("--config")
    parser.add_argument("--vid-stride", type=int, default=1)
    parser.add_argument("--max-frames", type=int, default=10**9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--frames-buffer", action="store_true", help="keep lost tracks 30 frames (as Ultralytics), not 1 s"
    )
    parser.add_argument("--cache", help="an .npz that keeps the detections for the next call")
    args = parser.parse_args()
    setup_logging(quiet=True)
    if args.cache and Path(args.cache).is_file():
        found, fps = load(args.cache)
    else:
        found, fps = detections(args.clip, args.config, args.vid_stride, args.max_frames)
        if args.cache:
            save(args.cache, found, fps)
    rate = float(Fraction(fps) / args.vid_stride)
    print(f"{args.clip}: {len(found)} frames at {rate:.4g} fps, {sum(map(len, found))} detections")
    lost_s = 30 / rate if args.frames_buffer else 1.0
    times: dict[str, list[float]] = {"ultralytics": [], "ours": []}
    for _ in range(args.rounds):
        trackers = {"ultralytics": UltralyticsTracker("bytetrack"), "ours": ByteTrack(rate, lost_s=lost_s)}
        outputs: dict[str, list[Detections]] = {k: [] for k in trackers}
        image = np.zeros((8, 8, 3), np.uint8)
        for dets in found:
            for name, tracker in trackers.items():
                t = time.perf_counter()
                out = tracker.update(dets, image)
                times[name].append((time.perf_counter() - t) * 1e3)
                outputs[name].append(out)
    for name, ms in times.items():
        median, mean = statistics.median(ms), statistics.fmean(ms)
        print(f"  {name:12s} {median:.3f} ms median, {mean:.3f} ms mean per frame")
        print(f"  {'':12s} tracks {tally(outputs[name])}")
    same, total = agreement(outputs["ultralytics"], outputs["ours"])
    print(f"  same boxes and ids on {same} of {total} frames")


if __name__ == "__main__":
    main()
