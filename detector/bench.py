"""``detector bench``: our pipelined loop against a plain sequential loop, on the same frames, in one run.

Three modes over the first N frames of a file, alternating, each round:
- ``infer-only``: decode + detect, nothing drawn or saved (what a bare predict stream does);
- ``sequential``: decode -> detect -> draw -> H.264 encode, one after the other (the obvious loop);
- ``pipelined``: the same work through ``Pipeline`` (capture, inference, overlay+encode threads).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from detector.backends import Detector, load_detector
from detector.errors import UserError
from detector.pipeline.engine import Pipeline, PipelineOptions
from detector.settings import Settings
from detector.sinks.video import VideoWriterSink
from detector.sources import open_source
from detector.stages.overlay import OverlayStage, PanelInfo
from detector.stats import STAGES, StageTimer
from detector.types import FrameResult

log = logging.getLogger(__name__)
MODES = ("infer-only", "sequential", "pipelined")
SPREAD_WARN = 1.25  # a mode's fastest round this much faster than its slowest: the figures are noisy


def spread_warnings(runs: list[dict[str, Any]], limit: float = SPREAD_WARN) -> list[str]:
    """One line per mode whose rounds' fps differ by ``limit`` or more (fastest / slowest)."""
    out = []
    for mode in MODES:
        fps = [r["fps"] for r in runs if r["mode"] == mode]
        if len(fps) < 2 or min(fps) <= 0:
            continue
        spread = max(fps) / min(fps)
        if spread >= limit:
            out.append(
                f"{mode}: rounds differ {spread:.1f}x ({min(fps):.1f} to {max(fps):.1f} fps); the machine "
                "was probably busy: compare rounds, not single figures, or rerun with more --rounds"
            )
    return out


def _writer(settings: Settings, folder: Path, name: str, fps: Fraction) -> VideoWriterSink:
    return VideoWriterSink(folder / f"{name}.mp4", fps=fps, live=False, encoder=settings.encoder)


def _overlay() -> OverlayStage:
    return OverlayStage(status=lambda: PanelInfo(fps=None))


def _sequential(
    spec: str, detector: Detector, settings: Settings, frames: int, folder: Path, draw: bool
) -> dict:
    source = open_source(spec)
    if source.info.live:
        source.close()
        raise UserError("bench needs a video file or image folder, not a live source")
    timers = {s: StageTimer() for s in STAGES}
    overlay = _overlay()
    writer = _writer(settings, folder, "sequential", source.info.fps) if draw else None
    n = 0
    t0 = time.perf_counter()
    try:
        while n < frames:
            t = time.perf_counter()
            frame = source.read()
            t1 = time.perf_counter()
            if frame is None:
                break
            dets = detector.detect(frame.image)
            t2 = time.perf_counter()
            timers["decode"].add((t1 - t) * 1000)
            timers["inference"].add((t2 - t1) * 1000)
            if writer is not None:
                annotated = overlay.annotate(frame.image.copy(), dets)
                t3 = time.perf_counter()
                writer.write(FrameResult(frame, dets, annotated, 0.0))
                timers["stages"].add((t3 - t2) * 1000)
                timers["write"].add((time.perf_counter() - t3) * 1000)
            n += 1
        if writer is not None:
            writer.close()
    finally:
        source.close()
    wall = time.perf_counter() - t0
    return _result(n, wall, timers)


def _pipelined(spec: str, detector: Detector, settings: Settings, frames: int, folder: Path) -> dict:
    source = open_source(spec)
    writer = _writer(settings, folder, "pipelined", source.info.fps)
    options = PipelineOptions(max_frames=frames, queue_size=settings.queue_size)
    pipe = Pipeline.single(source, detector, [_overlay()], [writer], options)
    t0 = time.perf_counter()
    [stats] = pipe.run()
    return _result(stats.frames_processed, time.perf_counter() - t0, stats.stages)


def _result(n: int, wall: float, timers: dict[str, StageTimer]) -> dict[str, Any]:
    return {
        "frames": n,
        "wall_s": round(wall, 3),
        "fps": round(n / wall, 2) if wall > 0 else 0.0,
        "stage_ms": {
            k: {"mean": round(t.mean, 2), "p95": round(t.percentile(95), 2)}
            for k, t in timers.items()
            if t.count
        },
    }


def run_bench(spec: str, settings: Settings, *, frames: int = 300, rounds: int = 2) -> dict[str, Any]:
    t = time.perf_counter()
    detector = load_detector(settings)  # one request at a time: the fair setting for a plain loop
    load_s = time.perf_counter() - t
    piped = load_detector(settings, requests=2)  # as `detector run` uses for files
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="detector-bench-") as tmp:
        folder = Path(tmp)
        warm = open_source(spec)
        try:
            first = warm.read()
            if first is None:
                raise UserError(f"{spec} has no frames to benchmark")
            for d in (detector, piped):
                d.detect(first.image)  # warm-up: the first inference is slower
        finally:
            warm.close()
        for r in range(rounds):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                log.info("bench round %d/%d: %s", r + 1, rounds, mode)
                if mode == "pipelined":
                    res = _pipelined(spec, piped, settings, frames, folder)
                else:
                    res = _sequential(spec, detector, settings, frames, folder, draw=mode == "sequential")
                runs.append({"round": r + 1, "mode": mode, **res})
    ratios = []
    for r in range(1, rounds + 1):
        by = {x["mode"]: x for x in runs if x["round"] == r}
        ratios.append(
            {
                "round": r,
                "pipelined_vs_sequential": round(
                    by["pipelined"]["fps"] / max(by["sequential"]["fps"], 1e-9), 3
                ),
                "pipelined_vs_infer_only": round(
                    by["pipelined"]["fps"] / max(by["infer-only"]["fps"], 1e-9), 3
                ),
            }
        )
    enc = settings.encoder
    warnings = spread_warnings(runs)
    for line in warnings:
        log.warning("bench: %s", line)
    return {
        "source": spec,
        "model": detector.model_path,
        "backend": detector.backend,
        "encoder": f"libx264 {enc.preset} crf {enc.crf}",
        "model_load_s": round(load_s, 3),
        "runs": runs,
        "ratios": ratios,
        "warnings": warnings,
    }


def format_bench(result: dict[str, Any]) -> str:
    lines = [
        f"source   {result['source']}",
        f"model    {result['model']} ({result['backend']} backend, loaded in {result['model_load_s']:.2f} s)",
        f"encoder  {result['encoder']}",
        "",
        f"{'round':>5} {'mode':<11} {'frames':>6} {'fps':>7}  "
        + "  ".join(f"{s + ' ms':>17}" for s in STAGES),
        f"{'':>5} {'':<11} {'':>6} {'':>7}  " + "  ".join(f"{'mean / p95':>17}" for _ in STAGES),
    ]
    for run in result["runs"]:
        cells = []
        for s in STAGES:
            st = run["stage_ms"].get(s)
            cells.append(f"{st['mean']:>8.1f} / {st['p95']:>6.1f}" if st else f"{'-':>17}")
        lines.append(
            f"{run['round']:>5} {run['mode']:<11} {run['frames']:>6} {run['fps']:>7.1f}  " + "  ".join(cells)
        )
    lines.append("")
    for r in result["ratios"]:
        lines.append(
            f"round {r['round']}: pipelined {r['pipelined_vs_sequential']:.2f}x the sequential loop's fps, "
            f"{r['pipelined_vs_infer_only']:.0%} of inference-only fps"
        )
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def print_bench(result: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(result, indent=2) if as_json else format_bench(result))
