"""Speed work must not change results: auto OpenVINO export is cached and reused, and the pipeline's
boxes equal Ultralytics' own predict on the same frames. Also `detector bench` runs and reports ratios."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from detector.backends import load_detector
from detector.cli import main
from detector.settings import load_settings


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched(ours: list[tuple[int, np.ndarray]], theirs: list[tuple[int, np.ndarray]]) -> int:
    used: set[int] = set()
    n = 0
    for cls, box in theirs:
        for j, (c2, b2) in enumerate(ours):
            if j not in used and c2 == cls and iou(box, b2) >= 0.9:
                used.add(j)
                n += 1
                break
    return n


@pytest.fixture(scope="module")
def random_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("pt") / "rand11n.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path


@pytest.mark.slow
def test_auto_backend_exports_pt_once_and_reuses_it(random_pt, tmp_path, monkeypatch, caplog, assets_dir):
    import cv2

    monkeypatch.setenv("DETECTOR_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="detector")
    settings = load_settings(None, {"model": str(random_pt), "conf": 0.01}, env={})
    image = cv2.imread(str(assets_dir / "bus.jpg"))

    first = load_detector(settings)
    assert first.backend == "openvino", "a .pt on CPU runs through the OpenVINO export by itself"
    assert "exporting" in caplog.text and "to OpenVINO once" in caplog.text
    exports = list((tmp_path / "cache" / "exports").iterdir())
    assert len(exports) == 1 and exports[0].name.endswith("-640_openvino_model")
    stamp = exports[0].stat().st_mtime_ns
    a = first.detect(image)

    caplog.clear()
    second = load_detector(settings)
    assert "exporting" not in caplog.text and "using the OpenVINO export" in caplog.text
    assert exports[0].stat().st_mtime_ns == stamp and len(list(exports[0].parent.iterdir())) == 1
    b = second.detect(image)
    assert len(a) == len(b) and np.allclose(a.xyxy, b.xyxy) and (a.class_id == b.class_id).all()

    forced = load_detector(load_settings(None, {"model": str(random_pt), "backend": "torch"}, env={}))
    assert forced.backend == "torch"


@pytest.mark.model
def test_pipeline_boxes_equal_ultralytics_predict(capsys, model_path, videos_dir, tmp_path):
    """Per-frame boxes of `detector run` match YOLO(model).predict on the same frames (>= 98%)."""
    from ultralytics import YOLO

    clip = videos_dir / "book.mkv"
    out = tmp_path / "book.jsonl"
    assert main(["run", str(clip), "--model", str(model_path), "--json", str(out)]) == 0
    ours = [json.loads(line) for line in out.read_text().splitlines()]
    model = YOLO(str(model_path), task="detect")
    total = hits = ours_total = ours_hits = 0
    with av.open(str(clip)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            r = model.predict(vf.to_ndarray(format="bgr24"), verbose=False)[0]
            theirs = [(int(k), b) for k, b in zip(r.boxes.cls.tolist(), r.boxes.xyxy.numpy(), strict=True)]
            mine = [(d["class_id"], np.array(d["xyxy"])) for d in ours[i]["detections"]]
            total += len(theirs)
            hits += matched(mine, theirs)
            ours_total += len(mine)
            ours_hits += matched(theirs, mine)
    assert i + 1 == len(ours) == 109
    assert total > 100, "book.mkv has a person and a monitor in every frame"
    assert hits / total >= 0.98, f"{hits}/{total} of Ultralytics' boxes found"
    assert ours_hits / ours_total >= 0.98, f"{ours_hits}/{ours_total} of our boxes confirmed"


@pytest.mark.model
def test_bench_reports_ratios_as_json(capsys, model_path, videos_dir):
    code = main(
        [
            "bench",
            str(videos_dir / "person-bicycle-car-detection.gif"),
            "--model",
            str(model_path),
            "--frames",
            "20",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    modes = [(r["round"], r["mode"]) for r in result["runs"]]
    assert modes == [
        (1, "infer-only"),
        (1, "sequential"),
        (1, "pipelined"),
        (2, "pipelined"),
        (2, "sequential"),
        (2, "infer-only"),
    ], "alternating order"
    assert all(r["frames"] == 20 and r["fps"] > 0 for r in result["runs"])
    assert {"decode", "inference", "stages", "write"} <= set(result["runs"][2]["stage_ms"])
    assert [r["round"] for r in result["ratios"]] == [1, 2]
    assert all(r["pipelined_vs_sequential"] > 0 for r in result["ratios"])
    assert result["backend"] == "openvino" and "ultrafast" in result["encoder"]
