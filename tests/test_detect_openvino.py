"""Tests for the torch-free OpenVINO backend (``detector.backends.openvino``).

The real model comes from ``DETECTOR_TEST_MODEL`` (an Ultralytics OpenVINO export folder) and the
clips from ``DETECTOR_TEST_VIDEOS``; tests that need them are skipped when those are unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
from conftest import default_model

from detector.backends.loading import is_openvino_dir
from detector.backends.openvino import OpenVINODetector
from detector.errors import ModelError
from detector.stages.classes import ClassFilter
from detector.types import Detections, Frame

os.environ.setdefault("YOLO_OFFLINE", "1")

EQUIV_VIDEOS = ("one-by-one-person-detection.mp4", "bottle-detection.mp4")
FRAMES_PER_VIDEO = 14  # per clip: the sample clip, and the two real ones where given


def _model_dir() -> Path:
    path = default_model()
    if not is_openvino_dir(path):
        pytest.skip(f"DETECTOR_TEST_MODEL={path} is not an OpenVINO model folder")
    return path


def _videos_dir() -> Path:
    value = os.environ.get("DETECTOR_TEST_VIDEOS")
    if not value:
        pytest.skip("DETECTOR_TEST_VIDEOS is unset (folder with the test clips)")
    return Path(value)


def _imread(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, f"cannot read {path}"
    return img


def _assets() -> Path:
    ultralytics = pytest.importorskip("ultralytics")
    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ov_cache")


@pytest.fixture(scope="module")
def det(cache_dir: Path) -> OpenVINODetector:
    return OpenVINODetector(_model_dir(), cache=cache_dir)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between xyxy boxes a (N, 4) and b (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _match(ours: Detections, xyxy: np.ndarray, cls: np.ndarray, thr: float = 0.9) -> int:
    """Greedy one-to-one matches of the same class with IoU >= thr."""
    iou = _iou(ours.xyxy.astype(np.float64), xyxy.astype(np.float64))
    iou[ours.class_id[:, None] != cls[None, :]] = 0.0
    matched = 0
    while iou.size and iou.max() >= thr:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        iou[i, :] = 0.0
        iou[:, j] = 0.0
        matched += 1
    return matched


def _sample_frames(path: Path, count: int) -> Iterator[np.ndarray]:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    for i in np.linspace(0, len(frames) - 1, count).round().astype(int):
        yield frames[i]


# --- needs no model -------------------------------------------------------------------------------


def test_is_openvino_dir(tmp_path: Path) -> None:
    assert not is_openvino_dir(tmp_path / "missing")
    assert not is_openvino_dir(tmp_path)
    (tmp_path / "m.xml").write_text("<net/>")
    assert not is_openvino_dir(tmp_path)  # no weights
    (tmp_path / "m.bin").write_bytes(b"")
    assert is_openvino_dir(tmp_path)
    assert not is_openvino_dir(tmp_path / "m.xml")  # a file, not a folder


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        OpenVINODetector(tmp_path / "nope_openvino_model", cache=tmp_path / "c")


def test_folder_without_xml(tmp_path: Path) -> None:
    (tmp_path / "metadata.yaml").write_text("task: detect\n")
    with pytest.raises(ModelError, match=r"no \.xml"):
        OpenVINODetector(tmp_path, cache=tmp_path / "c")


def test_corrupt_ir(tmp_path: Path) -> None:
    (tmp_path / "m.xml").write_text("<net> this is not an IR")
    (tmp_path / "m.bin").write_bytes(b"\0" * 16)
    (tmp_path / "metadata.yaml").write_text("task: detect\n")
    with pytest.raises(ModelError, match="cannot be loaded") as exc:
        OpenVINODetector(tmp_path, cache=tmp_path / "c")
    assert "\n" not in str(exc.value)


def test_unavailable_device(tmp_path: Path) -> None:
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"")
    (tmp_path / "metadata.yaml").write_text("task: detect\n")
    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an OpenVINO GPU")
    with pytest.raises(ModelError, match=r"OpenVINO device GPU .* not available"):
        OpenVINODetector(tmp_path, device="cuda:0", cache=tmp_path / "c")


def test_module_imports_neither_torch_nor_ultralytics() -> None:
    code = (
        "import sys, detector.backends.openvino; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- real model ------------------------------------------------------------------------------------


def _linked_copy(src: Path, dst: Path, metadata: str) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.suffix in (".xml", ".bin"):
            (dst / f.name).symlink_to(f.resolve())
    (dst / "metadata.yaml").write_text(metadata)
    return dst


@pytest.mark.model
def test_segment_model_rejected(tmp_path: Path) -> None:
    src = _model_dir()
    text = (src / "metadata.yaml").read_text().replace("task: detect", "task: segment")
    seg = _linked_copy(src, tmp_path / "seg_openvino_model", text)
    with pytest.raises(ModelError, match="is a segment model; detector needs a detection model"):
        OpenVINODetector(seg, cache=tmp_path / "c")


@pytest.mark.model
def test_output_shape_mismatch(tmp_path: Path) -> None:
    src = _model_dir()
    bad = _linked_copy(src, tmp_path / "three_openvino_model", "task: detect\nnames: {0: a, 1: b, 2: c}\n")
    with pytest.raises(ModelError, match=r"output shape .* is not \[1, 7, N\]"):
        OpenVINODetector(bad, cache=tmp_path / "c")


@pytest.mark.model
def test_bus_and_zidane(det: OpenVINODetector) -> None:
    assets = _assets()
    bus = det.detect(_imread(assets / "bus.jpg"))
    counts = bus.counts()
    assert counts.get("person", 0) >= 3, counts
    assert counts.get("bus", 0) >= 1, counts
    zidane = det.detect(_imread(assets / "zidane.jpg"))
    assert zidane.counts().get("person", 0) == 2, zidane.counts()
    # sorted by confidence, inside the image, consistent dtypes
    assert np.all(np.diff(bus.confidence) <= 0)
    h, w = 1080, 810
    assert bus.xyxy.dtype == np.float32 and bus.class_id.dtype == np.int64
    assert (bus.xyxy[:, [0, 2]] >= 0).all() and (bus.xyxy[:, [0, 2]] <= w).all()
    assert (bus.xyxy[:, [1, 3]] >= 0).all() and (bus.xyxy[:, [1, 3]] <= h).all()
    assert det.names[0] == "person" and det.backend == "openvino"


@pytest.mark.model
def test_classes_and_max_det(cache_dir: Path) -> None:
    bus = _imread(_assets() / "bus.jpg")
    everything = OpenVINODetector(_model_dir(), cache=cache_dir).detect(bus)
    only_bus = ClassFilter([5]).update(Frame(bus, 0, 0.0, 0.0), everything).detections
    assert len(only_bus) >= 1 and set(only_bus.class_id.tolist()) == {5} and len(everything) > len(only_bus)
    two = OpenVINODetector(_model_dir(), max_det=2, cache=cache_dir).detect(bus)
    assert len(two) == 2
    nothing = OpenVINODetector(_model_dir(), conf=0.999, cache=cache_dir).detect(bus)
    assert len(nothing) == 0 and nothing.xyxy.shape == (0, 4)


@pytest.mark.model
def test_odd_sizes(det: OpenVINODetector) -> None:
    """Extreme shapes made of real pictures go through letterbox and back: the boxes are
    Ultralytics' own on the same image, one for one, inside the frame, and every tiled copy of the
    picture gets its objects where that copy is (so the scale back covers the whole frame)."""
    yolo = pytest.importorskip("ultralytics").YOLO(str(_model_dir()), task="detect")
    bus, zidane = _imread(_assets() / "bus.jpg"), _imread(_assets() / "zidane.jpg")  # 810x1080, 1280x720
    cases = {
        "three buses stacked, 810x3240": (np.vstack([bus] * 3), "bus", "y"),
        "three zidanes side by side, 3840x720": (np.hstack([zidane] * 3), "person", "x"),
        "the input size exactly, 640x640": (cv2.resize(bus, (640, 640)), "bus", None),
        "odd sides, 641x479": (np.ascontiguousarray(bus[:479, :641]), "bus", None),
        "a strip, 120x1080": (np.ascontiguousarray(bus[:, 300:420]), "bus", None),
    }
    for name, (img, cls, tiled_axis) in cases.items():
        h, w = img.shape[:2]
        ours = det.detect(img)
        boxes = yolo.predict(img, verbose=False)[0].boxes
        theirs, their_cls = boxes.xyxy.cpu().numpy(), boxes.cls.cpu().numpy().astype(np.int64)
        assert len(theirs) > 0 and _match(ours, theirs, their_cls) == len(ours) == len(theirs), name
        assert (
            (ours.xyxy >= 0).all() and (ours.xyxy[:, [0, 2]] <= w).all() and (ours.xyxy[:, [1, 3]] <= h).all()
        )
        found = ours[ours.class_id == next(k for k, v in det.names.items() if v == cls)]
        assert len(found) > 0, f"{name}: no {cls}"
        if tiled_axis is not None:  # the centre of some box of that class in each third of the image
            i, size = (1, h) if tiled_axis == "y" else (0, w)
            centres = (found.xyxy[:, i] + found.xyxy[:, i + 2]) / 2
            assert {int(c * 3 // size) for c in centres} == {0, 1, 2}, f"{name}: {centres}"
    tiny = det.detect(cv2.resize(zidane, (7, 3)))  # 3x7: no object is that small; no error either
    assert len(tiny) == 0 and tiny.xyxy.shape == (0, 4)


@pytest.mark.model
def test_matches_ultralytics(det: OpenVINODetector, sample_clip: Path) -> None:
    """Sampled frames of the sample clip, and of two real clips where DETECTOR_TEST_VIDEOS is set."""
    clips = [sample_clip]
    if os.environ.get("DETECTOR_TEST_VIDEOS"):
        videos = _videos_dir()
        missing = [v for v in EQUIV_VIDEOS if not (videos / v).is_file()]
        assert not missing, f"clips missing from {videos}: {missing}"
        clips += [videos / v for v in EQUIV_VIDEOS]
    yolo_cls = pytest.importorskip("ultralytics").YOLO
    model_dir = str(_model_dir())
    yolo = yolo_cls(model_dir, task="detect")
    theirs_total = ours_total = matched = 0
    for video in clips:
        for frame in _sample_frames(video, FRAMES_PER_VIDEO):
            ours = det.detect(frame)
            boxes = yolo.predict(frame, verbose=False, conf=0.25, iou=0.7, max_det=300)[0].boxes
            xyxy, cls = boxes.xyxy.cpu().numpy(), boxes.cls.cpu().numpy().astype(np.int64)
            matched += _match(ours, xyxy, cls)
            theirs_total += len(xyxy)
            ours_total += len(ours)
    assert theirs_total > 0, "Ultralytics found nothing on the sampled frames"
    ratio_theirs = matched / theirs_total
    ratio_ours = matched / max(ours_total, 1)
    print(
        f"match ratio: {ratio_theirs:.4f} of Ultralytics' {theirs_total} boxes, "
        f"{ratio_ours:.4f} of our {ours_total} boxes"
    )
    assert ratio_theirs >= 0.98, (matched, theirs_total)
    assert ratio_ours >= 0.98, (matched, ours_total)


@pytest.mark.model
def test_cache_dir_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OpenVINODetector(_model_dir(), cache=cache)
    assert cache.is_dir() and any(cache.iterdir())
    shutil.rmtree(cache)
