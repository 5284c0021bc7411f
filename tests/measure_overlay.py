"""What the overlay costs and what its labels cover; not a test (speed never decides a test).

    PYTHONPATH=. python tests/measure_overlay.py [--rounds 5] [--tree PATH] [--skip-privacy]

Speed: 20 random boxes with labels and the panel on a 1080p frame, and a crowd of 60 people, drawn
and then encoded (libx264 ultrafast, one thread) in the same loop, so each round gives a paired
ratio (drawing / encoding) that the machine's load moves less than either time. Prints ms per frame
of each part (boxes, labels, panel) and the ratio, median over ``--rounds``.

Privacy under labels (issue 29): a 1080p crowd made from ``videos/sample.mp4`` (a 3x3 grid of it, each
tile a few frames apart: about 20 people and 9 buses a frame), run with the real model four ways: no
labels, labels, ``--blur person`` without labels and with them (``--track``, no panel). Prints the
detail (variance of the Laplacian) left inside the people's boxes, away from their own outline, as a
share of the run without labels or blur: what blur leaves, and what labels bring back on top of it.
``--tree PATH`` runs the ``detector`` of another checkout (e.g. a ``git worktree`` of an older commit)
for a before/after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np

from detector.drawing import style_for
from detector.stages.overlay import OverlayStage, PanelInfo
from detector.types import Detections

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "videos" / "sample.mp4"
NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 4: "airplane", 5: "bus"}
FRAMES = 30


def random_boxes(n: int, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (n, 2)) * [1700, 900]
    return Detections(
        xyxy=np.hstack([xy, xy + rng.uniform(50, 300, (n, 2))]),
        confidence=rng.uniform(0.3, 1, n),
        class_id=rng.integers(0, 6, n),
        tracker_id=np.arange(1, n + 1),
        names=NAMES,
    )


def crowd(n: int = 60, seed: int = 1) -> Detections:
    rng = np.random.default_rng(seed)
    h = rng.uniform(80, 400, n)  # people near and far
    x, y = rng.uniform(0, 1860, n), rng.uniform(100, 1000, n) - h
    xyxy = np.stack([x, y, x + h * 0.4, y + h], axis=1)
    return Detections(xyxy, rng.uniform(0.3, 1, n), np.zeros(n, np.int64), np.arange(1, n + 1), NAMES)


def time_drawing(name: str, d: Detections, rounds: int) -> None:
    img = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 255, (1080, 1920, 3), np.uint8), (9, 9), 0)
    info = PanelInfo(29.9, 33.0)
    parts = {
        "boxes": OverlayStage(panel=False, labels=False),
        "boxes+panel": OverlayStage(labels=False, status=lambda: info),
        "all": OverlayStage(status=lambda: info),
    }
    ms: dict[str, list[float]] = {k: [] for k in (*parts, "encode")}
    ratios = []
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(rounds + 2):
            took = {}
            for part, stage in parts.items():
                scene = img.copy()
                t0 = time.perf_counter()
                stage.annotate(scene, d)
                took[part] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for packet in stream.encode(av.VideoFrame.from_ndarray(scene, format="bgr24")):
                out.mux(packet)
            took["encode"] = time.perf_counter() - t0
            if i >= 2:  # the encoder's first frames set it up
                for k, v in took.items():
                    ms[k].append(v * 1e3)
                ratios.append(took["all"] / took["encode"])
    med = {k: statistics.median(v) for k, v in ms.items()}
    print(
        f"{name}: boxes {med['boxes']:.2f} ms, panel {med['boxes+panel'] - med['boxes']:.2f} ms, "
        f"labels {med['all'] - med['boxes+panel']:.2f} ms, all {med['all']:.2f} ms; "
        f"encode {med['encode']:.1f} ms; drawing/encoding {statistics.median(ratios):.3f} "
        f"(median of {rounds})"
    )


def make_crowd(folder: Path) -> Path:
    """A 1920x1080 3x3 grid of the sample clip, each tile 0.1 s later than the last."""
    clip = folder / "crowd.mp4"
    inputs = [a for k in range(9) for a in ("-ss", f"0.{k}", "-t", "2", "-i", str(SAMPLE))]
    layout = "|".join(f"{x}_{y}" for y in ("0", "h0", "h0+h1") for x in ("0", "w0", "w0+w1"))
    graph = "".join(f"[{k}:v]" for k in range(9)) + f"xstack=inputs=9:layout={layout},format=yuv420p"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [
        ffmpeg,
        "-y",
        "-loglevel",
        "error",
        *inputs,
        "-filter_complex",
        graph,
        "-c:v",
        "libx264",
        str(clip),
    ]
    subprocess.run(cmd, check=True)
    return clip


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]


def detail(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def privacy(tree: Path, folder: Path) -> None:
    clip = make_crowd(folder)
    no_labels = folder / "no-labels.yaml"
    no_labels.write_text("overlay: {labels: false}\n")
    variants = {
        "plain": ["--config", str(no_labels)],
        "labels": [],
        "blur": ["--blur", "person", "--config", str(no_labels)],
        "blur+labels": ["--blur", "person"],
    }
    env = {**os.environ, "PYTHONPATH": str(tree)}  # and run in ``tree``: ``-m`` puts the cwd first
    for name, extra in variants.items():
        cmd = [sys.executable, "-m", "detector", "run", str(clip), "--max-frames", str(FRAMES), "--no-panel",
               "--track", "-q", "--overwrite", "--output", str(folder / f"{name}.mp4"),
               "--json", str(folder / f"{name}.jsonl"), *extra]  # fmt: skip
        subprocess.run(cmd, check=True, env=env, cwd=tree)
    records = [json.loads(x) for x in (folder / "plain.jsonl").read_text().splitlines()]
    people = {
        r["frame"]: [d["xyxy"] for d in r["detections"] if d["class_name"] == "person"]
        for r in records
        if "detections" in r
    }
    inset = style_for(1080, 1920).line_width + 2  # away from the box's own outline
    frames = {name: frames_of(folder / f"{name}.mp4") for name in variants}
    totals = dict.fromkeys(variants, 0.0)
    n = 0
    for i, boxes in people.items():
        for x1, y1, x2, y2 in boxes:
            rows = slice(int(y1) + inset, int(y2) - inset)
            cols = slice(int(x1) + inset, int(x2) - inset)
            if rows.stop - rows.start < 8 or cols.stop - cols.start < 8:
                continue
            n += 1
            for name in variants:
                totals[name] += detail(frames[name][i][rows, cols])
    print(
        f"privacy ({tree}): {n} person boxes in {len(people)} frames; "
        "detail inside them vs no labels, no blur:"
    )
    for name in variants:
        print(f"  {name:12s} {totals[name] / totals['plain']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="checkout whose detector the privacy runs use"
    )
    parser.add_argument("--skip-privacy", action="store_true")
    args = parser.parse_args()
    time_drawing("20 random boxes, 1080p", random_boxes(20), args.rounds)
    time_drawing("a crowd of 60, 1080p", crowd(), args.rounds)
    if not args.skip_privacy:
        with tempfile.TemporaryDirectory() as tmp:
            privacy(args.tree.resolve(), Path(tmp))


if __name__ == "__main__":
    main()
