"""Flags and SOURCEs in any order (issue 19, item 2), never abbreviated, and a "did you mean" for a typo
(item 11). Every list flag and every flag with an optional value, of every command, is tried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.cli import build_parser, main
from detector.errors import UserError
from detector.settings.base import BATCH, BENCH, RUN, walk
from detector.settings.flags import setting_overrides
from detector.settings.model import Settings

# Each command's positionals and where argparse puts them.
POSITIONAL = {RUN: "sources", BATCH: "inputs", BENCH: "source"}
NEEDS = {BATCH: ["--output-dir", "out"]}  # required flags besides the ones tried


def flags_of(command: str, *, lists: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(flag, settings path) of every list setting (``lists``) or optional-value setting a command offers."""
    found = []
    for info in walk(Settings):
        flag = info.flag(command)
        if flag is None:
            continue
        is_list = "list" in str(info.field.annotation) and info.cli.get("const") is None
        is_list = is_list and not info.cli.get("repeat")  # one value per flag (test_repeated_flag...)
        if (lists and is_list) or (not lists and info.cli.get("const") is not None):
            found.append((flag, info.path))
    return found


LIST_FLAGS = [(c, f, p) for c in POSITIONAL for f, p in flags_of(c, lists=True)]
VALUE_FLAGS = [(c, f, p) for c in POSITIONAL for f, p in flags_of(c, lists=False)]


def test_the_flags_tried_are_the_ones_declared() -> None:
    assert {f for c, f, _ in LIST_FLAGS if c == RUN} == {
        "--classes", "--clip-on", "--heatmap-classes", "--blur", "--pixelate",
    }  # fmt: skip
    assert {f for c, f, _ in VALUE_FLAGS} == {"--track"}


def parse(command: str, *argv: str) -> tuple[dict, object]:
    args = build_parser().parse_args([command, *NEEDS.get(command, []), *argv])
    return setting_overrides(args), getattr(args, POSITIONAL[command])


def value(over: dict, path: tuple[str, ...]) -> object:
    for part in path:
        over = over[part]
    return over


def sources(command: str, *names: str) -> object:
    return names[0] if command == BENCH else list(names)


@pytest.mark.parametrize(("command", "flag", "path"), LIST_FLAGS)
def test_list_flag_before_the_source(command: str, flag: str, path: tuple[str, ...]) -> None:
    over, positional = parse(command, flag, "person", "car", "clip.mp4")
    assert value(over, path) == ["person", "car"]
    assert positional == sources(command, "clip.mp4")


@pytest.mark.parametrize(("command", "flag", "path"), LIST_FLAGS)
def test_list_flag_ends_at_a_url_a_folder_or_a_glob(
    command: str, flag: str, path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "footage").mkdir()  # a folder named without a '/' or an extension: it exists
    for src in ("footage", "rtsp://127.0.0.1:8554/cam", "imgs/*.jpg", "clip"):
        if src == "clip":
            (tmp_path / "clip").write_bytes(b"x")  # a file without an extension
        over, positional = parse(command, flag, "person", src)
        assert value(over, path) == ["person"], src
        assert positional == sources(command, src)


@pytest.mark.parametrize(("command", "flag", "path"), LIST_FLAGS)
def test_list_flag_commas_repeats_and_double_dash(command: str, flag: str, path: tuple[str, ...]) -> None:
    over, positional = parse(command, flag, "person,car", "clip.mp4", flag, "bus")
    assert value(over, path) == ["person,car", "bus"]  # Settings splits the commas
    assert positional == sources(command, "clip.mp4")
    over, positional = parse(command, flag, "person", "--", "0")  # camera 0 after a list of classes
    assert value(over, path) == ["person"] and positional == sources(command, "0")


def test_list_values_reach_settings_split() -> None:
    from detector.settings import load_settings

    over, _ = parse(RUN, "--classes", "person,2", "car", "clip.mp4", "--classes", "bus")
    assert load_settings(None, over, env={}).classes == ["person", 2, "car", "bus"]


def test_repeated_flag_takes_one_url_each_time_anywhere() -> None:
    """``--notify URL`` takes exactly the next word (a URL, which would end a list flag's values), and
    each repeat adds one; the SOURCEs around it stay SOURCEs."""
    over, positional = parse(
        RUN, "--notify", "json://127.0.0.1:8080/a", "a.mp4", "--notify", "ntfy://ntfy.sh/b", "rtsp://cam/1"
    )
    assert over == {"notify": {"urls": ["json://127.0.0.1:8080/a", "ntfy://ntfy.sh/b"]}}
    assert positional == ["a.mp4", "rtsp://cam/1"]
    from detector.settings import load_settings

    assert load_settings(None, over, env={}).notify.urls == ["json://127.0.0.1:8080/a", "ntfy://ntfy.sh/b"]


def test_sources_and_flags_intermixed() -> None:
    argv = ("a.mp4", "--track", "b.mp4", "-o", "out/{name}.mp4", "c.mp4", "--blur", "person")
    over, positional = parse(RUN, *argv)
    assert positional == ["a.mp4", "b.mp4", "c.mp4"]
    assert over == {"tracker": "bytetrack", "output": "out/{name}.mp4", "blur": ["person"]}


@pytest.mark.parametrize(("command", "flag", "path"), VALUE_FLAGS)
def test_bare_optional_value_flag_never_takes_the_next_word(
    command: str, flag: str, path: tuple[str, ...]
) -> None:
    for argv in ([flag, "clip.mp4"], ["clip.mp4", flag]):
        over, positional = parse(command, *argv)
        assert value(over, path) == "bytetrack" and positional == sources(command, "clip.mp4")
    over, positional = parse(command, f"{flag}=botsort", "clip.mp4")
    assert value(over, path) == "botsort" and positional == sources(command, "clip.mp4")
    with pytest.raises(UserError, match=f"a bare {flag} never takes the next word .* write {flag}=botsort"):
        parse(command, flag, "botsort", "clip.mp4")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("--ouptut", "unknown flag --ouptut; did you mean --output?"),
        ("--out", "unknown flag --out (flags are not abbreviated); did you mean --output?"),
        ("--clas", "unknown flag --clas (flags are not abbreviated); did you mean --classes?"),
        ("--bogus", "unknown flag --bogus"),
    ],
)
def test_unknown_flags_get_a_suggestion_and_no_abbreviation(typed: str, expected: str) -> None:
    with pytest.raises(UserError) as err:
        parse(RUN, "clip.mp4", typed, "x.mp4")
    assert str(err.value) == f"{expected} (see `detector run --help`)"


def test_help_states_the_order_rule(capsys: pytest.CaptureFixture[str]) -> None:
    for command in POSITIONAL:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "Flags and SOURCEs go in any order" in text and "--track=botsort picks botsort" in text


@pytest.mark.model
def test_options_first_runs_the_real_model(
    capsys: pytest.CaptureFixture[str], model_path: Path, sample_clip: Path, tmp_path: Path
) -> None:
    """`detector run ... --classes person --track clip.mp4`, as a user of yolo or ffmpeg types it."""
    js = tmp_path / "d.jsonl"
    argv = ["run", "--max-frames", "20", "--model", str(model_path), "--json", str(js)]
    code = main([*argv, "--classes", "person", "--track", str(sample_clip)])
    err = capsys.readouterr().err
    assert code == 0, err
    records = [json.loads(line) for line in js.read_text().splitlines()]
    boxes = [d for r in records for d in r["detections"]]
    assert len(records) == 20 and boxes
    assert {d["class_name"] for d in boxes} == {"person"}
    assert all(d["track_id"] is not None for d in boxes)
