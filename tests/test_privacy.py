"""Privacy, measured on what is written: the real model on real footage, the output video decoded back.

Detail is the variance of the Laplacian. Inside the people's boxes it must drop to at most 30% of the
same run without covering; outside them (and the masks) the video must be the same. Masks are covered
in every frame, detected or not, and so is everything made from the annotated frame: event snapshots
and the heatmap's background.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import yaml

from detector.cli import main

pytestmark = pytest.mark.model

CLIP = "one-by-one-person-detection.mp4"  # 768x432, a person walks in from 6 s
FRAMES = 110
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "privacy.yaml"
MASK = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.45], [0.0, 0.45]]  # its mask: the dark frame on the left wall


def detail(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]


def boxes_by_frame(path: Path) -> dict[int, list[list[float]]]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return {r["frame"]: [d["xyxy"] for d in r["detections"]] for r in lines if "detections" in r}


@pytest.fixture(scope="module")
def runs(model_path: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 110 frames four times: plain, --blur person, --pixelate person, and configs/privacy.yaml
    (people blurred, a mask) with --clips (snapshots) and --heatmap. Tracked people only, no panel."""
    out = tmp_path_factory.mktemp("privacy")
    assert yaml.safe_load(CONFIG.read_text())["privacy_masks"][0]["polygon"] == MASK
    # Only people are drawn, so no other box's outline lies over a covered person.
    common = ["--model", str(model_path), "--max-frames", str(FRAMES), "--no-panel", "--track", "-q"]
    common += ["--classes", "person"]
    variants: dict[str, list[str]] = {
        "plain": [],
        "blur": ["--blur", "person"],
        "pixelate": ["--pixelate", "person"],
        "masked": ["--config", str(CONFIG), "--clips", str(out / "clips"),
                   "--clip-on", "person", "--heatmap", str(out / "heat.png")],
    }  # fmt: skip
    for name, extra in variants.items():
        argv = ["run", str(videos_dir / CLIP), *common, *extra]
        assert main([*argv, "--output", str(out / f"{name}.mp4"), "--json", str(out / f"{name}.jsonl")]) == 0
    return {"folder": out, **{name: out / f"{name}.mp4" for name in variants}}


def shrink(box: list[float], fx: float, fy_top: float, fy_bottom: float) -> tuple[slice, slice]:
    """The inside of a box, away from its outline and label."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return slice(int(y1 + fy_top * h), int(y2 - fy_bottom * h)), slice(int(x1 + fx * w), int(x2 - fx * w))


def outside(shape: tuple[int, ...], boxes: list[list[float]]) -> np.ndarray:
    """Pixels well away from every box (its padding, outline and label)."""
    keep = np.ones(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        mx, my = 0.15 * (x2 - x1) + 12, 0.15 * (y2 - y1) + 12
        keep[max(0, int(y1 - my - 30)) : int(y2 + my), max(0, int(x1 - mx)) : int(x2 + mx)] = False
    return keep


def ratios(runs: dict[str, Path], variant: str) -> tuple[float, float, float]:
    """(detail inside the boxes, detail outside, mean pixel change outside) of ``variant`` vs plain."""
    boxes = boxes_by_frame(runs["folder"] / "plain.jsonl")
    assert boxes_by_frame(runs["folder"] / f"{variant}.jsonl") == boxes, "covering never changes detection"
    plain, covered = frames_of(runs["plain"]), frames_of(runs[variant])
    inside_plain = inside_cov = out_plain = out_cov = change = 0.0
    people = [i for i, b in boxes.items() if b]
    assert len(people) >= 20, "a person is in view in many frames"
    for i in people:
        for box in boxes[i]:
            rows, cols = shrink(box, 0.15, 0.2, 0.1)
            inside_plain += detail(plain[i][rows, cols])
            inside_cov += detail(covered[i][rows, cols])
        keep = outside(plain[i].shape, boxes[i])
        gray_p = cv2.Laplacian(cv2.cvtColor(plain[i], cv2.COLOR_BGR2GRAY), cv2.CV_64F)[keep]
        gray_c = cv2.Laplacian(cv2.cvtColor(covered[i], cv2.COLOR_BGR2GRAY), cv2.CV_64F)[keep]
        out_plain, out_cov = out_plain + gray_p.var(), out_cov + gray_c.var()
        change += np.abs(plain[i][keep].astype(int) - covered[i][keep].astype(int)).mean()
    return inside_cov / inside_plain, out_cov / out_plain, change / len(people)


@pytest.mark.parametrize("variant", ["blur", "pixelate"])
def test_covered_people_lose_their_detail_and_nothing_else_changes(
    runs: dict[str, Path], variant: str
) -> None:
    inside, outside_ratio, change = ratios(runs, variant)
    assert inside <= 0.30, f"detail inside the boxes is {inside:.0%} of the uncovered run"
    assert 0.95 <= outside_ratio <= 1.05, f"detail outside the boxes changed to {outside_ratio:.0%}"
    assert change < 1.5, f"pixels outside the boxes changed by {change:.2f} levels on average"


def _mask_pixels(shape: tuple[int, ...]) -> tuple[slice, slice]:
    h, w = shape[:2]
    (x0, y0), (x1, y1) = MASK[0], MASK[2]
    return slice(int(y0 * h) + 4, int(y1 * h) - 4), slice(int(x0 * w) + 4, int(x1 * w) - 4)


def test_masks_are_covered_in_every_frame_and_everything_made_from_it(runs: dict[str, Path]) -> None:
    plain, masked = frames_of(runs["plain"]), frames_of(runs["masked"])
    area = _mask_pixels(plain[0].shape)
    boxes = boxes_by_frame(runs["folder"] / "masked.jsonl")
    people_in_view = 0
    for i, (p, m) in enumerate(zip(plain, masked, strict=True)):
        assert outside(p.shape, boxes[i])[area].all(), "nobody comes near the mask in these frames"
        ratio = detail(m[area]) / detail(p[area])
        assert ratio <= 0.30, f"frame {i}: the mask is covered in every frame, anyone in view or not"
        people_in_view += bool(boxes[i])
    assert people_in_view >= 20
    reference = detail(plain[0][area])
    heat = cv2.imread(str(runs["folder"] / "heat.png"))
    assert detail(heat[area]) <= 0.30 * reference, "the heatmap's background is covered too"
    records: list[dict[str, Any]] = [
        json.loads(x) for x in (runs["folder"] / "clips" / "events.jsonl").read_text().splitlines()
    ]
    assert records, "a new person made an event"
    for record in records:
        snapshot = cv2.imread(str(runs["folder"] / "clips" / record["snapshot"]))
        assert detail(snapshot[area]) <= 0.30 * reference, "snapshots are covered"
        box = boxes_by_frame(runs["folder"] / "masked.jsonl")[record["frame"]][0]
        rows, cols = shrink(box, 0.15, 0.2, 0.1)
        plain_detail = detail(plain[record["frame"]][rows, cols])
        assert detail(snapshot[rows, cols]) <= 0.30 * plain_detail, "so is the person in a snapshot"
