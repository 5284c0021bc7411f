"""Ignore masks and the heatmap: the stages on synthetic detections (no model), ignore masks end to end
on the doorway footage (a masked door counts nobody), and the one-line errors of the new options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT

from detector.cli import main
from detector.settings.analytics import IgnoreSpec
from detector.stages.heatmap import HeatmapStage
from detector.stages.ignore import IgnoreStage
from detector.types import Detections, Frame

NAMES = {0: "person", 1: "car", 2: "tv"}


def dets(boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.array(classes, np.int64),
        names=NAMES,
    )


def frame(i: int, value: int = 90, size: tuple[int, int] = (400, 300)) -> Frame:
    return Frame(np.full((size[1], size[0], 3), value, np.uint8), index=i, pts=i / 10, capture_time=0.0)


# -- ignore masks ---------------------------------------------------------------------------------


def test_ignore_drops_by_anchor_and_class() -> None:
    tv = IgnoreSpec.model_validate(
        {"polygon": [[0.5, 0], [1, 0], [1, 0.5], [0.5, 0.5]], "classes": ["person"]}
    )
    anywhere = IgnoreSpec.model_validate(
        [[0, 200], [100, 200], [100, 300], [0, 300]]
    )  # a bare polygon, pixels
    stage = IgnoreStage([tv, anywhere], (400, 300), NAMES)
    boxes = [
        [250, 20, 300, 140],  # person, feet at (275, 140): inside the tv mask -> dropped
        [250, 20, 300, 140],  # car at the same place: the tv mask is for people only -> kept
        [250, 20, 300, 170],  # person, feet at (275, 170): below the mask -> kept
        [20, 150, 60, 250],  # car, feet at (40, 250): inside the bare mask (all classes) -> dropped
    ]
    kept = stage.update(frame(0), dets(boxes, [0, 1, 0, 1])).detections
    assert kept.xyxy.tolist() == [boxes[1], boxes[2]]
    assert stage.report() == {"ignored": {"person": 1, "car": 1}}


@pytest.mark.model
def test_an_ignored_doorway_counts_nobody(model_path: Path, videos_dir: Path, tmp_path: Path) -> None:
    """The doorway config counts a person leaving in its first 22 s; with the door area ignored, no one."""
    door = yaml.safe_load((ROOT / "configs" / "count-people-doorway.yaml").read_text())
    door["ignore"] = [{"name": "door", "polygon": [[0.72, 0.0], [1.0, 0.0], [1.0, 1.0], [0.72, 1.0]]}]
    config = tmp_path / "ignored.yaml"
    config.write_text(yaml.safe_dump(door))
    results = {}
    for name, cfg in (("plain", ROOT / "configs" / "count-people-doorway.yaml"), ("ignored", config)):
        js, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        argv = ["run", str(videos_dir / "one-by-one-person-detection.mp4"), "--model", str(model_path)]
        argv += [
            "--config",
            str(cfg),
            "--max-frames",
            "220",
            "--json",
            str(js),
            "--report",
            str(report),
            "-q",
        ]
        assert main(argv) == 0
        results[name] = ([json.loads(x) for x in js.read_text().splitlines()], json.loads(report.read_text()))
    plain, ignored = results["plain"], results["ignored"]
    assert plain[1]["lines"]["door"]["total"]["out"] >= 1, "without the mask someone walks out"
    assert ignored[1]["lines"]["door"]["total"] == {"in": 0, "out": 0}
    assert ignored[1]["ignored"].get("person", 0) > 0
    anchors_x = [
        (d["xyxy"][0] + d["xyxy"][2]) / 2 / 768
        for r in ignored[0]
        if "detections" in r
        for d in r["detections"]
    ]
    assert anchors_x and max(anchors_x) < 0.72, "no detection inside the mask reaches any output"


# -- heatmap --------------------------------------------------------------------------------------


def feed(stage: HeatmapStage, i: int, boxes: list[list[float]], classes: list[int], value: int = 90) -> None:
    f = frame(i, value)
    detections = dets(boxes, classes) if boxes else Detections.empty(NAMES)
    stage.update(f, detections)
    stage.annotate(f.image.copy(), detections)


def test_heatmap_is_hot_where_detections_were_and_the_scene_elsewhere() -> None:
    stage = HeatmapStage((400, 300), None, NAMES)
    for i in range(50):
        feed(stage, i, [[280, 60, 320, 100]] * 3 if i else [], [1, 1, 1] if i else [], value=90 + (i > 0))
    picture = stage.render()
    assert picture.shape == (300, 400, 3)
    b, _g, r = picture[80, 300].astype(int)
    assert r > 150 and r > b + 80, "the spot where every detection was is drawn red"
    assert (picture[250:, :100] == 90).all(), "far away: the background frame, untouched"
    assert stage.report() == {"heatmap": {"classes": None, "points": 147}}


def test_heatmap_background_is_the_emptiest_frame() -> None:
    stage = HeatmapStage((400, 300), None, NAMES)
    for i in range(
        40
    ):  # busy at first (value 30), empty from 2 s on (value 200): a later, emptier frame wins
        feed(
            stage, i, [[10, 10, 50, 50]] if i < 20 else [], [0] if i < 20 else [], value=30 if i < 20 else 200
        )
    assert stage.background is not None and int(stage.background[150, 200, 0]) == 200


def test_heatmap_classes_narrow_it() -> None:
    stage = HeatmapStage((400, 300), [1], NAMES)
    for i in range(10):
        feed(stage, i, [[280, 60, 320, 100], [20, 200, 60, 240]], [1, 0])
    picture = stage.render()
    assert picture[80, 300, 2] > 150 and (picture[220, 40] == 90).all(), "people are left out"


def test_live_heatmap_draws_into_the_video() -> None:
    stage = HeatmapStage((400, 300), None, NAMES, live=True)
    for i in range(20):
        feed(stage, i, [[280, 60, 320, 100]], [1])
    scene = frame(20).image.copy()
    stage.update(frame(20), dets([[280, 60, 320, 100]], [1]))
    stage.annotate(scene, Detections.empty(NAMES))
    assert scene[80, 300, 2] > 150 and (scene[250:, :100] == 90).all()


# -- errors: one line, exit 2, before anything runs -----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clip-on", "person"], "--clip-on needs --clips DIR or --events-db FILE"),
        (["--clips", "{tmp}/c", "--clip-on", "person"], "--clip-on needs track ids; add --track"),
        (["--clips", "{tmp}/file.txt"], "clips folder {tmp}/file.txt is a file"),
        (["--heatmap", "{tmp}/heat.txt"], "use a .png (or .jpg) name"),
        (["--blur", "persn"], "--blur: unknown class name 'persn'; did you mean 'person'?"),
        (["--clip-before", "-1"], "--clip-before should be greater than or equal to 0"),
    ],
)
def test_bad_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_clip: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "file.txt").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = main(["run", str(sample_clip), "--max-frames", "2", "-q", *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message.format(tmp=tmp_path) in err
    assert not (tmp_path / "c").exists()


def test_bad_privacy_mask_in_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_clip: Path
) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(
        yaml.safe_dump({"privacy_masks": [{"polygon": [[0, 0], [1, 0], [1, 1]], "cover": "smudge"}]})
    )
    assert main(["run", str(sample_clip), "--config", str(config), "-q"]) == 2
    err = capsys.readouterr().err
    assert "privacy_masks.cover" in err and "'blur', 'pixelate' or 'fill'" in err
