"""What a ``--model`` value must be before anything loads it.

Cheap checks on the path alone (no torch, no OpenVINO), run before any output is created; each
failure is one ``ModelError`` line naming the path and the problem:

- an OpenVINO folder holds an ``.xml``, its ``.bin`` and Ultralytics' ``metadata.yaml`` (class
  names, task ``detect``); its ``.xml`` may be given instead of the folder;
- a ``.pt`` is a PyTorch checkpoint (a zip archive, or a legacy pickle); an ``.onnx`` an ONNX
  protobuf, with ``onnxruntime`` installed; a ``.yaml`` a YOLO definition (random weights);
- other Ultralytics export formats (``.engine``, ``.torchscript``...) go to Ultralytics as they are;
- a bare name that is not on disk (``yolo11n.pt``, ``yolo11n-seg.yaml``) is Ultralytics' to
  download or build.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import yaml

from detector.errors import ModelError
from detector.text import first_line

HINT = "pass --model PATH to a YOLO detection model (.pt, .onnx, .yaml or an OpenVINO folder)"
REEXPORT = "re-export it with `yolo export format=openvino`"
METADATA = "metadata.yaml"
BY_NAME = (".pt", ".yaml", ".yml")  # Ultralytics downloads or builds these by name
PYTORCH = (".pt", ".pth")
YAML = (".yaml", ".yml")
OTHER_FORMATS = (".engine", ".torchscript", ".tflite", ".pb", ".mnn", ".rknn", ".mlpackage", ".mlmodel")


def looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith(".")


def is_openvino_dir(path: str | Path) -> bool:
    """True if ``path`` is a folder holding an OpenVINO IR (an ``.xml`` with its ``.bin``)."""
    p = Path(path)
    return p.is_dir() and any(x.with_suffix(".bin").is_file() for x in p.glob("*.xml"))


def is_openvino(model: str) -> bool:
    """An OpenVINO model: a folder (``check_model`` has seen that it holds an IR) or an ``.xml`` file."""
    p = Path(model).expanduser()
    return p.is_dir() or (p.is_file() and p.suffix.lower() == ".xml")


def not_detect(model: str, task: str) -> ModelError:
    article = "an" if task[:1].lower() in "aeiou" else "a"
    return ModelError(
        f"model {model} is {article} {task} model; detector needs a detection model (task 'detect')"
    )


def _unreadable(what: str, exc: OSError) -> ModelError:
    reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
    return ModelError(f"{what} cannot be read ({reason}); {HINT}")


def _head(path: Path, what: str, n: int = 64) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise _unreadable(what, exc) from exc


def read_metadata(path: Path) -> dict[str, Any]:
    """An OpenVINO export's ``metadata.yaml`` as a mapping; its task must be ``detect``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"OpenVINO model {path.parent} has no {METADATA} (class names and task); {REEXPORT}"
        ) from None
    except OSError as exc:
        raise _unreadable(str(path), exc) from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path} is not UTF-8 text; {REEXPORT}") from exc
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"{path} is not valid YAML ({first_line(exc, 120)}); {REEXPORT}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{path} is not a YAML mapping of names, task...; {REEXPORT}")
    task = str(meta.get("task", "detect"))
    if task != "detect":
        raise not_detect(str(path.parent), task)
    return meta


def openvino_ir(path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """(``.xml``, ``.bin``, metadata) of an OpenVINO model folder or ``.xml``; ``ModelError`` if one is
    missing or unreadable."""
    if path.is_file():
        xml, folder = path, path.parent
    else:
        folder = path
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            raise _unreadable(f"model folder {folder}", exc) from exc
        if not names:
            raise ModelError(f"model folder {folder} is empty; {HINT}")
        xmls = [folder / n for n in names if n.lower().endswith(".xml")]
        if not xmls:
            if any(n.lower().endswith(".bin") for n in names) or METADATA in names:
                raise ModelError(f"OpenVINO model folder {folder} has no .xml file (the network); {REEXPORT}")
            raise ModelError(
                f"model folder {folder} holds no model (no OpenVINO .xml, .bin and {METADATA}); {HINT}"
            )
        xml = xmls[0]
    if not _head(xml, f"model {xml}").lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise ModelError(f"model {xml} is not an OpenVINO IR (.xml) file; {HINT}")
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise ModelError(f"OpenVINO model {xml} has no weights file {weights.name} beside it; {REEXPORT}")
    _head(weights, f"model weights {weights}", 1)
    return xml, weights, read_metadata(folder / METADATA)


def _check_file(model: str, p: Path, size: int) -> None:
    suffix = p.suffix.lower()
    if size == 0:
        raise ModelError(f"model {model} is empty (0 bytes); {HINT}")
    head = _head(p, f"model {model}")
    if suffix == ".xml":
        openvino_ir(p)
    elif suffix in PYTORCH:
        if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
            raise ModelError(f"model {model} is not a PyTorch checkpoint (torch.save writes a zip); {HINT}")
    elif suffix == ".onnx":
        if not head.startswith(b"\x08"):  # field 1 (ir_version) opens every serialized ModelProto
            raise ModelError(f"model {model} is not an ONNX model; {HINT}")
        if importlib.util.find_spec("onnxruntime") is None:
            raise ModelError(
                f"model {model} needs onnxruntime, which is not installed: pip install onnxruntime "
                "(or export the model to OpenVINO)"
            )
    elif suffix in YAML:
        try:
            spec = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ModelError(f"model {model} is not valid YAML ({first_line(exc, 120)}); {HINT}") from exc
        if not (isinstance(spec, dict) and "backbone" in spec and "head" in spec):
            raise ModelError(f"model {model} is not a YOLO model definition (no backbone and head); {HINT}")
    elif suffix not in OTHER_FORMATS:
        kind = f"'{p.suffix}'" if p.suffix else "a file without extension"
        raise ModelError(f"model {model}: {kind} is not a model format detector can load; {HINT}")


def check_model(model: str) -> None:
    """Fail fast, before any output is created, on a model that cannot be a loadable detection model."""
    p = Path(model).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        if looks_like_path(model) or p.suffix.lower() not in BY_NAME:
            raise ModelError(f"model {model} not found; {HINT}") from None
        return  # an Ultralytics name: downloaded (where there is network) or built by Ultralytics
    except OSError as exc:
        raise _unreadable(f"model {model}", exc) from exc
    if p.is_dir():
        openvino_ir(p)
    elif p.is_file():
        _check_file(model, p, st.st_size)
    else:
        raise ModelError(f"model {model} is not a file or a folder; {HINT}")
