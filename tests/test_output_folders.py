"""One rule for output folders (issue 19, item 6): a missing folder is made when its output is first
opened, never by the checks, so a run that fails to start leaves no folder behind; the checks stay
honest about folders that cannot be made."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from user_errors import Capture

from detector.cli import main

pytestmark = pytest.mark.model

EVERY_OUTPUT = {  # flag: a file (or, for --clips and --record, a folder) in its own missing folders
    "--output": "a/b/video.mp4",
    "--json": "c/d/frames.jsonl",
    "--csv": "e/rows.csv",
    "--mot": "f/mot.txt",
    "--report": "g/h/report.html",
    "--heatmap": "i/heat.png",
    "--clips": "j/k/clips",
    "--record": "l/m/rec",
}


def test_every_output_makes_its_missing_folders(
    capsys: pytest.CaptureFixture[str],
    model_path: Path,
    sample_clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", str(sample_clip), "--model", str(model_path), "--max-frames", "45", "-q"]
    argv += ["--track", "--clip-on", "person", "--clip-before", "0.5", "--clip-after", "0.5"]
    code = main([*argv, *(x for flag, path in EVERY_OUTPUT.items() for x in (flag, path))])
    assert code == 0, capsys.readouterr().err
    with av.open(EVERY_OUTPUT["--output"]) as c:
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 45
    assert len(Path(EVERY_OUTPUT["--json"]).read_text().splitlines()) >= 45
    for flag in ("--csv", "--mot", "--heatmap"):
        assert Path(EVERY_OUTPUT[flag]).stat().st_size > 0, flag
    assert "<html" in Path(EVERY_OUTPUT["--report"]).read_text()
    events = Path(EVERY_OUTPUT["--clips"], "events.jsonl").read_text().splitlines()
    assert events and json.loads(events[0])["clip"].endswith(".mp4")
    assert list(Path(EVERY_OUTPUT["--record"]).glob("sample/*/*.mp4")), "a recording segment"


def test_several_sources_fill_name_templates_in_missing_folders(
    capsys: pytest.CaptureFixture[str], model_path: Path, sample_clip: Path, tmp_path: Path
) -> None:
    """The README's `--output 'out/{name}.mp4'`, in a fresh folder."""
    second = tmp_path / "second.mp4"
    second.symlink_to(sample_clip)
    out = tmp_path / "out"
    argv = ["run", str(sample_clip), str(second), "--model", str(model_path), "--max-frames", "5", "-q"]
    code = main([*argv, "--output", f"{out}/{{name}}.mp4", "--json", f"{out}/all/frames.jsonl"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["all", "sample.mp4", "second.mp4"]


@pytest.mark.parametrize("flag", list(EVERY_OUTPUT))
@pytest.mark.parametrize("why", ["missing source", "missing model"])
def test_a_run_that_fails_to_start_makes_no_folder(
    cli: Capture, model_path: Path, sample_clip: Path, tmp_path: Path, flag: str, why: str
) -> None:
    source = str(tmp_path / "nope.mp4") if why == "missing source" else str(sample_clip)
    model = str(tmp_path / "nope_openvino_model") if why == "missing model" else str(model_path)
    cli.error("run", source, "--model", model, flag, tmp_path / "new" / EVERY_OUTPUT[flag])
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("flag", list(EVERY_OUTPUT))
def test_a_folder_that_cannot_be_made_is_refused_up_front(
    cli: Capture, clip: Path, model_path: Path, read_only_dir: Path, tmp_path: Path, flag: str
) -> None:
    target = read_only_dir / "new" / EVERY_OUTPUT[flag]
    msg = cli.error("run", clip, "--model", model_path, flag, target)
    assert f"cannot be made: {read_only_dir} is not writable; choose another path" in msg
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    msg = cli.error("run", clip, "--model", model_path, flag, blocker / EVERY_OUTPUT[flag])
    assert msg.endswith(f"folder {blocker} is not a folder; choose another path")
    assert "folder folder" not in msg
