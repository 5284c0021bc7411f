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
def random_pt(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> Path:
    """YOLO11n with random weights whose BatchNorm statistics come from one real image, so that it
    finds boxes: with plain random weights the activations fade layer by layer and nothing passes
    even conf 0.001, and two empty results would compare equal."""
    import cv2
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolo11n.yaml")
    net = yolo.model
    assert isinstance(net, torch.nn.Module)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # running statistics := those of the next batch
    image = cv2.resize(cv2.imread(str(assets_dir / "bus.jpg")), (640, 640))
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255)
    net.eval()
    path = tmp_path_factory.mktemp("pt") / "rand11n.pt"
    yolo.save(str(path))
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
    assert len(a) > 0, "the model finds boxes, so equal results mean something"
    assert len(a) == len(b) and np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.class_id, b.class_id)
    assert np.array_equal(a.confidence, b.confidence), "the reused export is the same network"

    forced = load_detector(load_settings(None, {"model": str(random_pt), "backend": "torch"}, env={}))
    assert forced.backend == "torch"


@pytest.mark.model
def test_pipeline_boxes_equal_ultralytics_predict(capsys, model_path, sample_clip, tmp_path):
    """Per-frame boxes of `detector run` (every 3rd frame of the sample clip) match
    YOLO(model).predict on the same frames (>= 98% both ways)."""
    from ultralytics import YOLO

    out = tmp_path / "sample.jsonl"
    argv = ["run", str(sample_clip), "--model", str(model_path), "--json", str(out), "--vid-stride", "3"]
    assert main(argv) == 0
    ours = {r["frame"]: r for r in map(json.loads, out.read_text().splitlines())}
    model = YOLO(str(model_path), task="detect")
    total = hits = ours_total = ours_hits = 0
    with av.open(str(sample_clip)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i % 3:
                continue
            r = model.predict(vf.to_ndarray(format="bgr24"), verbose=False)[0]
            theirs = [(int(k), b) for k, b in zip(r.boxes.cls.tolist(), r.boxes.xyxy.numpy(), strict=True)]
            mine = [(d["class_id"], np.array(d["xyxy"])) for d in ours[i]["detections"]]
            total += len(theirs)
            hits += matched(mine, theirs)
            ours_total += len(mine)
            ours_hits += matched(theirs, mine)
    assert sorted(ours) == list(range(0, 240, 3))
    assert total > 160, "the sample clip has people in every frame"
    assert hits / total >= 0.98, f"{hits}/{total} of Ultralytics' boxes found"
    assert ours_hits / ours_total >= 0.98, f"{ours_hits}/{ours_total} of our boxes confirmed"


@pytest.mark.model
def test_bench_reports_ratios_as_json(capsys, model_path, sample_clip):
    """The figures hang together: each fps is its frames over its wall time, each ratio the quotient
    of two runs of its round, and in the one-thing-after-another loops the per-stage times add up to
    the wall time (paired, so whatever the machine's speed)."""
    code = main(
        [
            "bench",
            str(sample_clip),
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
    stages = {"infer-only": {"decode", "inference"}, "sequential": {"decode", "inference", "stages", "write"}}
    for run in result["runs"]:
        assert run["frames"] == 20
        assert run["fps"] == pytest.approx(20 / run["wall_s"], rel=0.01), run
        if run["mode"] in stages:
            assert set(run["stage_ms"]) == stages[run["mode"]], run
            spent = sum(s["mean"] for s in run["stage_ms"].values()) * run["frames"] / 1000
            assert 0.6 * run["wall_s"] <= spent <= 1.01 * run["wall_s"], (
                f"stages add up to {spent:.3f} s: {run}"
            )
        else:
            assert {"decode", "inference", "stages", "write"} <= set(run["stage_ms"])
    assert [r["round"] for r in result["ratios"]] == [1, 2]
    for ratio in result["ratios"]:
        fps = {r["mode"]: r["fps"] for r in result["runs"] if r["round"] == ratio["round"]}
        assert ratio["pipelined_vs_sequential"] == pytest.approx(
            fps["pipelined"] / fps["sequential"], abs=2e-3
        )
        assert ratio["pipelined_vs_infer_only"] == pytest.approx(
            fps["pipelined"] / fps["infer-only"], abs=2e-3
        )
    assert result["backend"] == "openvino" and "ultrafast" in result["encoder"]
