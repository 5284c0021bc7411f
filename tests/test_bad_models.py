"""Every ``--model`` and ``--config`` that cannot be loaded: exit 2 and one line naming the path and the
problem (``user_errors``), before any output is created.

The OpenVINO cases are the bundled model's own files, linked into folders with one part missing or
changed. Runtime: ~15 s on 2 cores (the .pt/.yaml cases import torch and build random models).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from user_errors import Capture, unprivileged_error

from detector.settings import BUNDLED_MODEL

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("user_error_env")]

HINT = "pass --model PATH to a YOLO detection model (.pt, .onnx, .yaml or an OpenVINO folder)"
REEXPORT = "re-export it with `yolo export format=openvino`"


def openvino_copy(name: str, *, without: str = "", metadata: str | None = None) -> str:
    """The bundled model's files linked into ``name``, without the one ending in ``without``."""
    folder = Path(name)
    folder.mkdir()
    for f in BUNDLED_MODEL.iterdir():
        if not (without and f.name.endswith(without)):
            (folder / f.name).symlink_to(f)
    if metadata is not None:
        (folder / "metadata.yaml").unlink()
        (folder / "metadata.yaml").write_text(metadata)
    return name


def with_task(task: str) -> str:
    return (BUNDLED_MODEL / "metadata.yaml").read_text().replace("task: detect", f"task: {task}")


def write(name: str, data: str | bytes) -> str:
    Path(name).write_bytes(data.encode() if isinstance(data, str) else data)
    return name


def folder_of(name: str, files: dict[str, str]) -> str:
    Path(name).mkdir()
    for f, text in files.items():
        (Path(name) / f).write_text(text)
    return name


ONNX_RUNTIME = importlib.util.find_spec("onnxruntime") is not None
MODELS: dict[str, tuple[Callable[[], str], str]] = {  # case: (make it, the message)
    "missing path": (lambda: "models/yolo11n_openvino_model", "model {m} not found; {hint}"),
    "missing, no extension": (lambda: "yolo-detector", "model {m} not found; {hint}"),
    "empty folder": (lambda: folder_of("empty", {}), "model folder {m} is empty; {hint}"),
    "unrelated files": (
        lambda: folder_of("photos", {"README.txt": "my holiday", "list.csv": "a,b\n"}),
        "model folder {m} holds no model (no OpenVINO .xml, .bin and metadata.yaml); {hint}",
    ),
    "OpenVINO without .bin": (
        lambda: openvino_copy("nobin_openvino_model", without=".bin"),
        "OpenVINO model {m}/yolo11n.xml has no weights file yolo11n.bin beside it; {reexport}",
    ),
    "OpenVINO without .xml": (
        lambda: openvino_copy("noxml_openvino_model", without=".xml"),
        "OpenVINO model folder {m} has no .xml file (the network); {reexport}",
    ),
    "OpenVINO without metadata": (
        lambda: openvino_copy("nometa_openvino_model", without="metadata.yaml"),
        "OpenVINO model {m} has no metadata.yaml (class names and task); {reexport}",
    ),
    "OpenVINO metadata not YAML": (
        lambda: openvino_copy("badmeta_openvino_model", metadata="names: {0: person\n"),
        "{m}/metadata.yaml is not valid YAML (while parsing a flow mapping); {reexport}",
    ),
    "the .xml alone": (
        lambda: write("yolo11n.xml", (BUNDLED_MODEL / "yolo11n.xml").read_bytes()),
        "OpenVINO model {m} has no weights file yolo11n.bin beside it; {reexport}",
    ),
    "text named .pt": (
        lambda: write("notes.pt", "my notes\n"),
        "model {m} is not a PyTorch checkpoint (torch.save writes a zip); {hint}",
    ),
    "text named .onnx": (lambda: write("notes.onnx", "my notes\n"), "model {m} is not an ONNX model; {hint}"),
    "text named .xml": (
        lambda: write("notes.xml", "my notes\n"),
        "model {m} is not an OpenVINO IR (.xml) file; {hint}",
    ),
    "text named .yaml": (
        lambda: write("notes.yaml", "shopping: [milk, eggs]\n"),
        "model {m} is not a YOLO model definition (no backbone and head); {hint}",
    ),
    "empty .pt": (lambda: write("empty.pt", b""), "model {m} is empty (0 bytes); {hint}"),
    "a video": (
        lambda: write("clip2.mp4", b"\0" * 64),
        "model {m}: '.mp4' is not a model format detector can load; {hint}",
    ),
    "a device": (lambda: "/dev/null", "model {m} is not a file or a folder; {hint}"),
    "segment OpenVINO export": (
        lambda: openvino_copy("seg_openvino_model", metadata=with_task("segment")),
        "model {m} is a segment model; detector needs a detection model (task 'detect')",
    ),
    "classify OpenVINO export": (
        lambda: openvino_copy("cls_openvino_model", metadata=with_task("classify")),
        "model {m} is a classify model; detector needs a detection model (task 'detect')",
    ),
    "pose OpenVINO export": (
        lambda: openvino_copy("pose_openvino_model", metadata=with_task("pose")),
        "model {m} is a pose model; detector needs a detection model (task 'detect')",
    ),
}
if not ONNX_RUNTIME:
    MODELS["ONNX without onnxruntime"] = (
        lambda: write("model.onnx", b"\x08\x07" + os.urandom(64)),
        "model {m} needs onnxruntime, which is not installed: pip install onnxruntime "
        "(or export the model to OpenVINO)",
    )


@pytest.mark.parametrize("case", list(MODELS))
def test_model_that_cannot_load(cli: Capture, clip: Path, tmp_path: Path, case: str) -> None:
    make, expected = MODELS[case]
    model = make()
    out = tmp_path / "out.mp4"
    msg = cli.error("run", clip, "--model", model, "--output", out)
    assert msg == expected.format(m=model, hint=HINT, reexport=REEXPORT)
    assert not out.exists()


def test_missing_model_name_does_not_download(cli: Capture, clip: Path) -> None:
    """A bare Ultralytics-style name that is not on disk: YOLO_OFFLINE is set, so no download."""
    msg = cli.error("run", clip, "--model", "yolo11n-nonexistent.pt")
    assert msg == f"model yolo11n-nonexistent.pt not found; {HINT}"


def test_corrupt_openvino_folder(cli: Capture, clip: Path) -> None:
    """Every file in place, but the network is not one: OpenVINO's own reason, on one line."""
    folder = openvino_copy("broken_openvino_model", without=".xml")
    Path(folder, "yolo11n.xml").write_text("<net garbage")
    msg = cli.error("run", clip, "--model", folder)
    assert msg.startswith(f"model {folder}/yolo11n.xml cannot be loaded (")
    assert "Unable to read the model" in msg and msg.endswith("or pass --model PATH to a valid model")


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_corrupt_pt(cli: Capture, clip: Path, tmp_path: Path, backend: str) -> None:
    """A zip archive, as a checkpoint is, but cut short: torch's reason, the name as given."""
    pt = write("cut.pt", b"PK\x03\x04" + os.urandom(200))
    msg = cli.error("run", clip, "--model", pt, "--backend", backend)
    assert msg.startswith(f"model {pt} cannot be loaded (it is not a loadable checkpoint") and msg.endswith(
        HINT
    )
    assert str(tmp_path) not in msg, "the path as the user gave it"
    exports = tmp_path / "cache" / "exports"
    assert not exports.exists() or not any(exports.iterdir()), "no half export cached"


@pytest.mark.parametrize(
    ("yaml_name", "task"),
    [("yolo11n-seg.yaml", "segment"), ("yolo11n-cls.yaml", "classify"), ("yolo11n-pose.yaml", "pose")],
)
def test_wrong_task_model(cli: Capture, clip: Path, yaml_name: str, task: str) -> None:
    """Ultralytics builds these offline with random weights; they are not detection models."""
    msg = cli.error("run", clip, "--model", yaml_name)
    assert msg == f"model {yaml_name} is a {task} model; detector needs a detection model (task 'detect')"


def test_segment_checkpoint(cli: Capture, clip: Path) -> None:
    """A real segmentation .pt (random weights), on the export path (auto) and on torch."""
    from ultralytics import YOLO

    YOLO("yolo11n-seg.yaml").save("seg.pt")
    for backend in ("auto", "torch"):
        msg = cli.error("run", clip, "--model", "seg.pt", "--backend", backend)
        assert msg == "model seg.pt is a segment model; detector needs a detection model (task 'detect')"


def test_unreadable_model(clip: Path) -> None:
    """A model folder this user may not list (mode 000; also when the suite runs as root)."""
    folder = openvino_copy("locked_openvino_model")
    Path(folder).chmod(0)
    try:
        msg = unprivileged_error("run", clip, "--model", folder)
    finally:
        Path(folder).chmod(0o755)
    assert msg == f"model folder {folder} cannot be read (permission denied); {HINT}"


# -- config file ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cnof: 0.3\n", "key 'cnof' is unknown; did you mean 'conf'?"),
        ("conf: high\n", "key 'conf' should be a valid number"),
        ("imgsz: 99999\n", "key 'imgsz' should be less than or equal to 8192 (got 99999)"),
        ("conf: [1\n", "is not valid YAML at line 2"),
        ("", "is empty; put at least one setting in it"),
        ("- conf: 0.3\n", "must be a mapping of keys to values, got list"),
        ("model: models/none_openvino_model\n", "model models/none_openvino_model not found"),
    ],
)
def test_bad_config(cli: Capture, clip: Path, tmp_path: Path, text: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    msg = cli.error("run", clip, "--config", cfg)
    assert expected in msg and (str(cfg) in msg or "model " in msg)


CONFIGS: dict[str, tuple[Callable[[], str], str]] = {
    "missing": (lambda: "nope.yaml", "config file {c} not found"),
    "a folder": (
        lambda: folder_of("configs", {}),
        "config file {c} is a folder; give a YAML file (see configs/default.yaml)",
    ),
    "binary": (
        lambda: write("photo.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        "config file {c} is not a text file (binary data); give a YAML file",
    ),
    "not UTF-8": (
        lambda: write("latin1.yaml", "name: caf\xe9\n".encode("latin-1")),
        "config file {c} is not UTF-8 text (invalid continuation byte at byte 9)",
    ),
    "a device": (lambda: "/dev/null", "config file {c} is not a regular file; give a YAML file"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_config_that_cannot_be_read(cli: Capture, clip: Path, case: str) -> None:
    make, expected = CONFIGS[case]
    config = make()
    assert cli.error("run", clip, "--config", config) == expected.format(c=config)


def test_unreadable_config(clip: Path) -> None:
    Path("locked.yaml").write_text("conf: 0.5\n")
    Path("locked.yaml").chmod(0)
    msg = unprivileged_error("run", clip, "--config", "locked.yaml")
    assert msg == "config file locked.yaml cannot be read (permission denied)"
