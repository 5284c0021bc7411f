from pathlib import Path

import pytest

from detector.errors import UserError
from detector.settings import DEFAULT_MODEL, load_settings

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_match_ultralytics():
    s = load_settings(env={})
    assert (s.conf, s.iou, s.imgsz, s.device, s.half) == (0.25, 0.7, 640, "cpu", False)
    assert s.resolved_model() == DEFAULT_MODEL


def test_precedence_defaults_yaml_env_flags(tmp_path):
    cfg = write(tmp_path, "conf: 0.4\niou: 0.5\nmodel: from-config.pt\nencoder:\n  crf: 30\n")
    s = load_settings(cfg, {}, env={})
    assert (s.conf, s.iou, s.model, s.encoder.crf, s.encoder.preset) == (
        0.4,
        0.5,
        "from-config.pt",
        30,
        "ultrafast",
    )
    s = load_settings(cfg, {}, env={"DETECTOR_MODEL": "from-env.pt"})
    assert s.model == "from-env.pt"
    s = load_settings(
        cfg,
        {"conf": 0.6, "model": "flag.pt", "encoder": {"preset": "veryfast"}},
        env={"DETECTOR_MODEL": "from-env.pt"},
    )
    assert (s.conf, s.iou, s.model, s.encoder.crf, s.encoder.preset) == (0.6, 0.5, "flag.pt", 30, "veryfast")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cnof: 0.3\n", "key 'cnof' is unknown; did you mean 'conf'?"),
        ("encoder:\n  prest: fast\n", "key 'encoder.prest' is unknown; did you mean 'preset'?"),
        ("conf: [1\n", "is not valid YAML at line 2"),
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("conf: high\n", "key 'conf' should be a valid number"),
        ("conf: 3\n", "key 'conf' should be less than or equal to 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("encoder:\n  preset: warp\n", "key 'encoder.preset' should be"),
        ("sources: true\n", "key 'sources' should be a valid list"),  # found by tests/test_fuzz.py
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        load_settings(write(tmp_path, text), env={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_flag_errors_name_the_flag():
    with pytest.raises(UserError, match=r"^--conf should be less than or equal to 1 \(got 1.5\)$"):
        load_settings(None, {"conf": 1.5}, env={})
    with pytest.raises(UserError, match="--imgsz should be greater than 0"):
        load_settings(None, {"imgsz": 0}, env={})


def test_nested_flag_errors_name_the_flag_the_user_typed():
    with pytest.raises(UserError, match=r"^--crf should be less than or equal to 51 \(got 99\)$"):
        load_settings(None, {"encoder": {"crf": 99}}, env={})
    with pytest.raises(UserError, match=r"^--preset should be"):
        load_settings(None, {"encoder": {"preset": "warp"}}, env={})


def test_imgsz_warning_once_with_config_and_flags(tmp_path, caplog):
    s = load_settings(write(tmp_path, "imgsz: 100\n"), {"conf": 0.5}, env={})
    assert s.imgsz == 128
    assert caplog.text.count("not a multiple of 32") == 1


def test_imgsz_rounds_up_to_stride(caplog):
    s = load_settings(None, {"imgsz": 100}, env={})
    assert s.imgsz == 128
    assert "not a multiple of 32; using 128" in caplog.text


def test_classes_accept_names_ids_and_commas():
    assert load_settings(None, {"classes": ["person,2", "car"]}, env={}).classes == ["person", 2, "car"]


SHIPPED = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


def test_every_use_case_has_a_config():
    assert set(SHIPPED) >= {"default.yaml", "webcam.yaml", "video-file.yaml", "count-people-doorway.yaml",
                            "traffic-zones.yaml"}  # fmt: skip


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name):
    s = load_settings(ROOT / "configs" / name, env={})
    assert 0 < s.conf <= 1
    if name == "count-people-doorway.yaml":
        assert s.tracker == "bytetrack" and [line.name for line in s.lines] == ["door"]
    if name == "traffic-zones.yaml":
        assert [z.name for z in s.zones] == ["lot", "driveway"] and s.trails is not None


def test_duplicate_line_names_are_rejected(tmp_path):
    text = "lines:\n  - {name: a, start: [0, 0], end: [1, 1]}\n  - {name: a, start: [0, 1], end: [1, 0]}\n"
    with pytest.raises(UserError, match="line names must be unique; 'a' is used twice"):
        load_settings(write(tmp_path, text), env={})
