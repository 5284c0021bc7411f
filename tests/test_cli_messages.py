"""What a newcomer reads (issue 19): -q is quiet, --help lists every exit code (item 10), errors say
what to do instead (item 11), and a misspelt key gets a "did you mean" (item 12)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from user_errors import Capture

from detector.cli import main


def run_help(capsys: pytest.CaptureFixture[str], command: str = "run") -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_run_help_lists_every_exit_code_the_readme_lists(capsys: pytest.CaptureFixture[str]) -> None:
    section = ROOT.joinpath("README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| (\d+) \|", section, flags=re.M)
    assert sorted(codes, key=int) == ["0", "1", "2", "3", "4", "130", "143"]
    exits = run_help(capsys).split("Exit codes:", 1)[1]
    for code in codes:
        assert re.search(rf"(^|, ) ?{code} [a-z]", exits), f"exit code {code} is not in run --help: {exits}"


@pytest.mark.model
def test_quiet_prints_no_summary(
    capfd: pytest.CaptureFixture[str], model_path: Path, clip: Path, tmp_path: Path
):
    argv = ["run", str(clip), "--model", str(model_path), "--json", str(tmp_path / "d.jsonl")]
    assert main(argv) == 0
    loud = capfd.readouterr().err
    assert "frames     read 12, processed 12" in loud and "source " in loud
    assert main([*argv, "--overwrite", "-q"]) == 0
    assert capfd.readouterr().err == "", "-q: only warnings and errors"


@pytest.mark.model
def test_a_file_run_that_saves_nothing_says_so_in_one_line(
    capfd: pytest.CaptureFixture[str], model_path: Path, clip: Path, tmp_path: Path
) -> None:
    assert main(["run", str(clip), "--model", str(model_path), "--no-show"]) == 0
    said = [line for line in capfd.readouterr().err.splitlines() if "nothing is saved" in line]
    assert said == [
        "nothing is saved: add --output FILE.mp4 (annotated video) or --json FILE.jsonl (detections)"
    ]
    for flag, path in (
        ("--json", "-"),
        ("--csv", str(tmp_path / "x.csv")),
        ("--report", str(tmp_path / "r.json")),
    ):
        assert main(["run", str(clip), "--model", str(model_path), flag, path]) == 0
        assert "nothing is saved" not in capfd.readouterr().err, flag


def test_a_folder_of_videos_points_to_batch(cli: Capture, clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "footage"
    folder.mkdir()
    shutil.copy(clip, folder / "a.mp4")
    shutil.copy(clip, folder / "b.mkv")
    msg = cli.error("run", folder)
    assert msg == (
        f"folder {folder} holds 2 videos and no images: `detector batch {folder} --output-dir out/` "
        "runs each video (a folder SOURCE of `detector run` is an image sequence)"
    )
    (folder / "a.mp4").unlink()
    (folder / "b.mkv").unlink()
    assert cli.error("run", folder).startswith(f"folder {folder} has no images (")


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "lines:\n  - name: door\n    strat: [0.1, 0.5]\n    end: [0.9, 0.5]\n",
            "key 'lines.strat' is unknown; did you mean 'start'?",
        ),
        (
            "zones:\n  - name: z\n    polygn: [[0, 0], [1, 0], [1, 1]]\n",
            "key 'zones.polygn' is unknown; did you mean 'polygon'?",
        ),
        ("sources:\n  - sorce: a.mp4\n", "key 'sources.sorce' is unknown; did you mean 'source'?"),
        (
            "ignore:\n  - polgon: [[0, 0], [1, 0], [1, 1]]\n",
            "key 'ignore.polgon' is unknown; did you mean 'polygon'?",
        ),
        ("trails:\n  lenght: 3\n", "key 'trails.lenght' is unknown; did you mean 'length'?"),
    ],
)
def test_a_misspelt_required_key_gets_did_you_mean(
    cli: Capture, tmp_path: Path, yaml: str, expected: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    assert cli.error("run", "clip.mp4", "--config", config) == f"config {config}: {expected}"
