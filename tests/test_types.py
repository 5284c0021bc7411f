import numpy as np
import pytest

from detector.types import Detections, Frame


def make(n: int = 3) -> Detections:
    return Detections(
        xyxy=np.arange(n * 4, dtype=np.float64).reshape(n, 4),
        confidence=np.linspace(0.3, 0.9, n),
        class_id=np.array([0, 2, 0][:n]),
        names={0: "person", 2: "car"},
    )


def test_detections_coerce_dtypes_and_len():
    d = make()
    assert len(d) == 3
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (3, 4)
    assert d.confidence.dtype == np.float32
    assert d.class_id.dtype == np.int64


def test_detections_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="confidence has 2 entries, xyxy has 3"):
        Detections(xyxy=np.zeros((3, 4)), confidence=np.zeros(2), class_id=np.zeros(3))
    with pytest.raises(ValueError, match="tracker_id"):
        Detections(
            xyxy=np.zeros((1, 4)), confidence=np.zeros(1), class_id=np.zeros(1), tracker_id=np.zeros(2)
        )


def test_boolean_mask_filters_every_array():
    d = make()
    d.tracker_id = np.array([7, 8, 9])
    people = d[d.class_id == 0]
    assert len(people) == 2
    assert people.tracker_id.tolist() == [7, 9]
    assert people.confidence.tolist() == pytest.approx([0.3, 0.9])
    with pytest.raises(IndexError):
        d[np.array([True, False])]


def test_counts_and_records():
    d = make()
    assert d.counts() == {"person": 2, "car": 1}
    rec = d.to_records()[1]
    assert rec == {
        "class_id": 2,
        "class_name": "car",
        "confidence": 0.6,
        "xyxy": [4.0, 5.0, 6.0, 7.0],
        "track_id": None,
    }
    assert Detections.empty().to_records() == []
    assert Detections.empty().counts() == {}


def test_frame_requires_bgr_uint8():
    Frame(np.zeros((4, 6, 3), np.uint8), 0, 0.0, 0.0)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        Frame(np.zeros((4, 6), np.uint8), 0, 0.0, 0.0)
    with pytest.raises(ValueError):
        Frame(np.zeros((4, 6, 3), np.float32), 0, 0.0, 0.0)
    f = Frame(np.zeros((4, 6, 3), np.uint8), 5, 0.2, 1.0)
    assert (f.width, f.height) == (6, 4)
