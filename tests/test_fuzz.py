"""Property tests: the config loader, the flag parser and JSONL event lines never fail with anything
but a one-line ``UserError``. Frame records' JSONL round trip is fuzzed in test_sinks.py already.

Runtime: ~10 s.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.cli import build_parser
from detector.cli.common import error_line
from detector.errors import UserError
from detector.events import LineCross
from detector.settings import EncoderSettings, OverlaySettings, Settings, load_settings
from detector.settings.flags import setting_overrides
from detector.sinks.jsonl import JsonLinesSink, read_jsonl

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOP_KEYS = [f.alias or name for name, f in Settings.model_fields.items()]
SUB_KEYS = {"encoder": list(EncoderSettings.model_fields), "overlay": list(OverlaySettings.model_fields)}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(-5, 700)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(0, 2)
    | st.text(max_size=20)
    | st.sampled_from(["0.5", "640", "person,car", "1280x720", "cpu", "fast", "yes", "", "²", "1e999"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _key(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.sampled_from(keys) | st.text(max_size=10) | st.integers(-3, 3) | st.none() | st.booleans()


@st.composite
def config_docs(draw: st.DrawFn) -> dict[Any, Any]:
    doc: dict[Any, Any] = {}
    for key in draw(st.lists(_key(TOP_KEYS), max_size=6)):
        if key in SUB_KEYS and draw(st.booleans()):
            doc[key] = draw(st.dictionaries(_key(SUB_KEYS[key]), values, max_size=4))
        else:
            doc[key] = draw(values)
    return doc


NOISE = ("Traceback", "validation error for", "For further information", "<unicode string>", "Error(")


def _strings(value: Any) -> list[str]:
    """Every string in a (nested) value: the user text an error message may quote."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _strings(v)]
    return []


def assert_one_line(exc: UserError, user_text: list[str]) -> None:
    """The message itself is one line: a line break may only come from text the user gave (a key, a
    flag value), which ``main`` escapes when it prints. No library message leaks through."""
    msg = str(exc)
    assert msg.strip(), "empty message"
    own = msg
    for text in sorted((t for t in user_text if "\n" in t or "\r" in t), key=len, reverse=True):
        own = own.replace(text, "")
    assert "\n" not in own and "\r" not in own, f"a line break of our own: {msg!r}"
    assert not [n for n in NOISE if n in own], f"library text in the message: {msg!r}"
    assert "\n" not in error_line(exc) and "\r" not in error_line(exc)


def _parsed(text: str | bytes) -> Any:
    """What PyYAML makes of the file, independently of our loader (``INVALID`` if nothing)."""
    try:
        raw = text if isinstance(text, str) else text.decode("utf-8")
        if "\0" in raw:
            return INVALID
        return yaml.safe_load(raw)
    except (UnicodeError, yaml.YAMLError):
        return INVALID


INVALID = object()


def _load(text: str | bytes) -> Settings | None:
    """load_settings on a file holding ``text``: Settings, or None after a one-line UserError. A file
    that PyYAML does not read as a mapping of known keys is refused; one that loads keeps
    the confidence it names."""
    doc = _parsed(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            s = load_settings(path, env={})
        except UserError as exc:
            assert_one_line(exc, _strings(doc) if doc is not INVALID else [])
            return None
    assert isinstance(doc, dict) and set(doc) <= set(TOP_KEYS), f"accepted {text!r}"
    if isinstance(doc.get("conf"), (int, float)) and not isinstance(doc["conf"], bool):
        assert s.conf == doc["conf"]
    return s


@FUZZ
@given(doc=config_docs())
def test_config_documents(doc: dict[Any, Any]) -> None:
    s = _load(yaml.safe_dump(doc, allow_unicode=True))
    if s is not None:
        assert 0 < s.conf <= 1 and s.imgsz % 32 == 0 and 0 < s.imgsz <= 8192
        assert set(doc) <= set(TOP_KEYS), "an unknown key was accepted"


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=100))
def test_config_random_text(text: str | bytes) -> None:
    _load(text)


@FUZZ
@given(
    text=st.lists(
        st.sampled_from(
            [
                "conf:",
                " 0.5",
                "\n",
                "encoder:",
                "\n  crf: ",
                "[",
                "]",
                "{",
                "- ",
                "&a ",
                "*a",
                "!!python/object:os.system",
                "'",
                '"',
                ": ",
                "#",
                "\t",
                "---",
                "...",
            ]
        ),
        max_size=25,
    ).map("".join)
)
def test_config_yaml_fragments(text: str) -> None:
    _load(text)


FLAGS: dict[str, st.SearchStrategy[str] | None] = {
    "--conf": st.sampled_from(["0.25", "1", "1.5", "0", "-1", "nan", "inf", "abc", "1e-9", ""]),
    "--iou": st.sampled_from(["0.7", "0", "2", "nan"]),
    "--imgsz": st.sampled_from(["640", "100", "0", "-32", "8192", "9000", "x", "3.5"]),
    "--classes": st.sampled_from(["person", "0,2", "car bus", "²", ",", "1,,2", "-1"]),
    "--device": st.sampled_from(["cpu", "cuda:0", ""]),
    "--backend": st.sampled_from(["auto", "torch", "openvino", "onnx", "tensorrt"]),
    "--max-det": st.sampled_from(["1", "0", "300", "100000"]),
    "--max-frames": st.sampled_from(["1", "0", "-5", "10"]),
    "--vid-stride": st.sampled_from(["1", "0", "3", "1001"]),
    "--image-fps": st.sampled_from(["30", "0", "1e9", "nan"]),
    "--stall-timeout": st.sampled_from(["5", "0", "inf", "-1"]),
    "--reconnect-max": st.sampled_from(["0", "5", "-1"]),
    "--camera-size": st.sampled_from(["1280x720", "720p", "0x0", "x"]),
    "--camera-fps": st.sampled_from(["30", "0", "nan"]),
    "--preset": st.sampled_from(["superfast", "warp", ""]),
    "--crf": st.sampled_from(["23", "52", "-1"]),
    "--output": st.sampled_from(["out.mp4", "out.txt", ""]),
    "--json": st.sampled_from(["out.jsonl", "-"]),
    "--model": st.sampled_from(["yolo11n.pt", "some/folder"]),
    "--config": st.sampled_from(["/nonexistent/config.yaml"]),
    "--overwrite": None,
    "--show": None,
    "--no-show": None,
    "--half": None,
    "--no-panel": None,
    "--quiet": None,
    "--bogus": None,
}


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    argv: list[str] = ["run"] if draw(st.integers(0, 9)) else []
    if draw(st.integers(0, 9)):
        argv.append(draw(st.sampled_from(["clip.mp4", "0", "rtsp://cam/1", "-"])))
    for flag in draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=6)):
        argv.append(flag)
        value = FLAGS[flag]
        if value is not None and draw(st.integers(0, 9)):  # sometimes the value is missing
            argv.append(draw(value))
    if draw(st.integers(0, 5)) == 0:
        argv.append(draw(st.text(max_size=6)))
    return argv


@FUZZ
@given(argv=argvs())
def test_cli_parse_to_settings(argv: list[str]) -> None:
    """Parsing + settings (what main does before opening anything): a valid config or a UserError."""
    try:
        args = build_parser().parse_args(argv)
        if args.command != "run":
            return
        s = load_settings(args.config, setting_overrides(args), env={})
    except UserError as exc:
        assert_one_line(exc, argv)
        return
    assert 0 < s.conf <= 1 and 0 < s.iou <= 1 and s.imgsz % 32 == 0
    assert s.vid_stride >= 1 and (s.max_frames is None or s.max_frames >= 1)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["\ud800 lone surrogate", "two\nlines", "\u2028", 'q"uote', "😀"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


def _cleaned(value: Any) -> Any:
    """What a JSON reader should get back: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


texts = st.text(max_size=10) | st.sampled_from(
    ["\ud800 lone surrogate", "two\nlines", "\u2028", 'q"uote', "😀"]
)


@FUZZ
@given(
    fields=st.lists(
        st.tuples(texts, texts, texts, st.floats(), st.floats(), st.integers(0, 2**40)),
        min_size=1,
        max_size=4,
    ),
    np_value=st.integers(-1000, 1000),
)
def test_jsonl_event_lines_round_trip(
    fields: list[tuple[str, str, str, float, float, int]], np_value: int
) -> None:
    """Event records (any names, NaN and huge numbers, numpy scalars, lone surrogates): one line each,
    read back as they were (non-finite numbers as null)."""
    records = [
        LineCross(
            line=line,
            direction=direction,
            class_name=cls,
            confidence=conf,
            pts=pts,
            frame=frame,
            track_id=np.int32(np_value),
            id="x",
            source="cam",
        )
        for line, direction, cls, conf, pts, frame in fields
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        sink = JsonLinesSink(path)
        for record in records:
            sink.event(record)
        sink.close()
        assert path.read_bytes().count(b"\n") == len(records)
        back = read_jsonl(path)
    expected = [_cleaned({**r.to_dict(), "track_id": np_value}) for r in records]
    for got, want in zip(back, expected, strict=True):
        for key in ("line", "direction", "class_name"):  # a lone surrogate cannot be UTF-8: escaped as ASCII
            assert got[key] == want[key] or "\ud800" in want[key]
        assert {k: v for k, v in got.items() if k not in ("line", "direction", "class_name")} == {
            k: v for k, v in want.items() if k not in ("line", "direction", "class_name")
        }
