"""Every bad input a user can give, through ``detector.cli.main``: exit 2, one line, no traceback, fast.

The error line is the last line on stderr (fd 2, so C libraries' noise would show too); INFO lines
about what was opened may come before it. Uses the real model (``--model``), so nothing downloads.
Runtime: ~45 s on 2 cores (the .pt/.yaml cases import torch).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import av
import pytest
from conftest import write_clip

from detector.cli import main

pytestmark = pytest.mark.model

NOISE = re.compile(r"^\[ ?(WARN|ERROR|INFO)|OpenCV\(|Exception from|^\s*File \"|^Traceback|^> ")


class Capture:
    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd

    def run(self, *argv: str | Path) -> tuple[int, list[str], float]:
        """``main(argv)`` -> (exit code, non-empty stderr lines, seconds)."""
        started = time.monotonic()
        code = main([str(a) for a in argv])
        seconds = time.monotonic() - started
        _, err = self.capfd.readouterr()
        return code, [line for line in err.splitlines() if line.strip()], seconds

    def error(self, *argv: str | Path, within: float = 20.0) -> str:
        """Run, assert the one-line user error contract, return the message (without the prefix)."""
        code, lines, seconds = self.run(*argv)
        text = "\n".join(lines)
        assert code == 2, text
        assert "Traceback" not in text
        errors = [line for line in lines if line.startswith("detector: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], text
        assert not [line for line in lines if NOISE.search(line)], f"library noise on stderr:\n{text}"
        assert seconds < within, f"took {seconds:.1f} s"
        print(f"TABLE | {' '.join(str(a) for a in argv[1:])} | {code} | {errors[0]}")  # for -rP
        return errors[0].removeprefix("detector: error: ")


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Capture:
    return Capture(capfd)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", frames=12)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DETECTOR_CACHE", str(tmp_path / "cache"))  # no exports left in ~/.cache
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DETECTOR_MODEL", raising=False)


def _frames_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if "frame" in json.loads(line))


# -- inputs ---------------------------------------------------------------------------------------------
def test_missing_file(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    msg = cli.error("run", tmp_path / "nope.mp4", "--model", model_path)
    assert msg == f"input {tmp_path / 'nope.mp4'} not found"


def test_empty_file(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    assert "is empty (0 bytes)" in cli.error("run", tmp_path / "empty.mp4", "--model", model_path)


def test_unreadable_file(cli: Capture, clip: Path, model_path: Path) -> None:
    clip.chmod(0)
    try:
        if os.access(clip, os.R_OK):
            pytest.skip("running as root: a chmod 000 file is still readable")
        assert "cannot be read (permission denied)" in cli.error("run", clip, "--model", model_path)
    finally:
        clip.chmod(0o644)


def test_text_file_named_mp4(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    msg = cli.error("run", fake, "--model", model_path)
    assert "is not a video FFmpeg can read" in msg and "not a video" in msg


def test_truncated_mp4_processes_what_decodes(
    cli: Capture, tmp_path: Path, model_path: Path, videos_dir: Path
) -> None:
    """Half of a real clip (header intact): the frames that decode are processed, exit 0, no hang."""
    data = (videos_dir / "one-by-one-person-detection.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    js = tmp_path / "half.jsonl"
    code, lines, seconds = cli.run("run", half, "--model", model_path, "--json", js, "--vid-stride", "10")
    text = "\n".join(lines)
    assert code == 0, text
    assert "Traceback" not in text and not [line for line in lines if NOISE.search(line)], text
    read = int(re.search(r"frames\s+read (\d+)", text).group(1))  # type: ignore[union-attr]
    assert 0.35 * 1394 < read < 0.65 * 1394, f"{read} of 1394 frames decoded from half the file"
    assert _frames_in(js) == -(-read // 10)
    assert seconds < 60


def test_header_only_mp4_is_refused_and_leaves_nothing(
    cli: Capture, tmp_path: Path, model_path: Path, videos_dir: Path
) -> None:
    """The first 30 kB of a real clip: a valid header, no frame data. Exit 2, and no empty outputs."""
    stub = tmp_path / "stub.mp4"
    stub.write_bytes((videos_dir / "one-by-one-person-detection.mp4").read_bytes()[:30_000])
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    msg = cli.error("run", stub, "--model", model_path, "--output", out, "--json", js)
    assert "gave no frames that decode" in msg
    assert not out.exists() and not js.exists()


@pytest.mark.parametrize(
    ("ext", "tag", "garbage"), [("mkv", b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ZZZ/ZZZ"), ("avi", b"H264", b"ZQX9")]
)
def test_unknown_codec(
    cli: Capture, tmp_path: Path, model_path: Path, ext: str, tag: bytes, garbage: bytes
) -> None:
    """A valid container whose codec id was patched to something FFmpeg has no decoder for."""
    good = write_clip(tmp_path / f"good.{ext}", frames=10)
    data = good.read_bytes()
    assert data.count(tag) >= 1
    bad = tmp_path / f"bad.{ext}"
    bad.write_bytes(data.replace(tag, garbage))
    assert "uses a video codec this FFmpeg cannot decode" in cli.error("run", bad, "--model", model_path)


def test_absent_camera(cli: Capture, model_path: Path) -> None:
    msg = cli.error("run", "99", "--model", model_path)
    assert msg.startswith("camera 99 not found") and "detector cameras" in msg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_url(cli: Capture, model_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x"
    msg = cli.error("run", url, "--model", model_path, within=10.0)  # the default connect timeout
    assert msg == f"could not connect to {url}: Connection refused"


def test_silent_server_times_out(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    """A server that accepts and never answers: refused after connect_timeout, not a hang."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("connect_timeout: 2\n")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/live"
        msg = cli.error("run", url, "--model", model_path, "--config", cfg, within=8.0)
    assert msg == f"could not connect to {url} within 2 s"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://bar", "URL scheme 'foo' is not supported; use one of http, https"),
        ("http://", "URL http:// has no host"),
    ],
)
def test_malformed_url(cli: Capture, model_path: Path, url: str, expected: str) -> None:
    assert expected in cli.error("run", url, "--model", model_path)


# -- outputs --------------------------------------------------------------------------------------------
def test_output_folder_missing(cli: Capture, clip: Path, tmp_path: Path, model_path: Path) -> None:
    msg = cli.error("run", clip, "--model", model_path, "--output", tmp_path / "nope" / "out.mp4")
    assert msg == f"video output folder {tmp_path / 'nope'} does not exist; create it or choose another path"


def test_output_folder_read_only(cli: Capture, clip: Path, tmp_path: Path, model_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    if os.access(ro, os.W_OK):
        pytest.skip("running as root: a read-only folder is still writable")
    msg = cli.error("run", clip, "--model", model_path, "--output", ro / "out.mp4")
    assert "is not writable; choose another path" in msg


def test_output_not_a_video_container(cli: Capture, clip: Path, model_path: Path) -> None:
    msg = cli.error("run", clip, "--model", model_path, "--output", "out.txt")
    assert msg == "video output out.txt: '.txt' is not a video container; use a .mp4, .m4v or .mov name"


@pytest.mark.parametrize(
    ("flag", "name", "what"),
    [("--output", "old.mp4", "video output"), ("--json", "old.jsonl", "JSON output")],
)
def test_existing_output_needs_overwrite(
    cli: Capture, clip: Path, tmp_path: Path, model_path: Path, flag: str, name: str, what: str
) -> None:
    (tmp_path / name).write_text("precious")
    msg = cli.error("run", clip, "--model", model_path, flag, name)
    assert msg == f"{what} {name} exists; pass --overwrite to replace it"
    assert (tmp_path / name).read_text() == "precious"


def test_disk_full(cli: Capture, tmp_path: Path, model_path: Path, sample_clip: Path) -> None:
    """The output folder is a 300 kB tmpfs: one line, exit 2, and the part written still plays."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(full)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = full / "out.mp4"
        msg = cli.error("run", sample_clip, "--model", model_path, "--output", out, within=60)
        assert msg == f"writing {out} failed: No space left on device; the video up to here is kept"
        frames = 0
        with av.open(str(out)) as c:
            try:
                for packet in c.demux(c.streams.video[0]):
                    frames += len(packet.decode())
            except av.error.FFmpegError:
                pass  # the last, torn fragment
        assert frames >= 1, "nothing of the partial video decodes"
        assert not [p.name for p in full.iterdir() if p.name != "out.mp4"], "no temp files left"
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)


# -- models ---------------------------------------------------------------------------------------------
def test_missing_model_path(cli: Capture, clip: Path, tmp_path: Path) -> None:
    missing = tmp_path / "models" / "yolo11n_openvino_model"
    msg = cli.error("run", clip, "--model", missing)
    assert msg.startswith(f"model {missing} not found; pass --model PATH")


def test_missing_model_name_does_not_download(cli: Capture, clip: Path) -> None:
    """A bare name that is not on disk: YOLO_OFFLINE is set, so no download, a clear error."""
    msg = cli.error("run", clip, "--model", "yolo11n-nonexistent.pt")
    assert "yolo11n-nonexistent.pt" in msg and "--model PATH" in msg


def test_corrupt_openvino_folder(cli: Capture, clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken_openvino_model"
    folder.mkdir()
    (folder / "model.xml").write_text("<net garbage")
    (folder / "model.bin").write_bytes(os.urandom(256))
    msg = cli.error("run", clip, "--model", folder)
    assert "cannot be loaded" in msg and "Unable to read the model" in msg and "--model PATH" in msg


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_corrupt_pt(cli: Capture, clip: Path, tmp_path: Path, backend: str) -> None:
    pt = tmp_path / "garbage.pt"
    pt.write_bytes(b"garbage, not a checkpoint\n" * 10)
    msg = cli.error("run", clip, "--model", pt, "--backend", backend, within=40)
    assert "garbage.pt cannot be loaded" in msg and "pass --model PATH to a valid YOLO model" in msg
    assert not (tmp_path / "cache" / "exports").exists() or not any(
        (tmp_path / "cache" / "exports").iterdir()
    )


@pytest.mark.parametrize(
    ("yaml_name", "task"), [("yolo11n-seg.yaml", "segment"), ("yolo11n-cls.yaml", "classify")]
)
def test_wrong_task_model(cli: Capture, clip: Path, yaml_name: str, task: str) -> None:
    """Ultralytics builds these offline with random weights; they are not detection models."""
    msg = cli.error("run", clip, "--model", yaml_name, within=40)
    assert msg == f"model {yaml_name} is a {task} model; detector needs a detection model (task 'detect')"


# -- config file ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cnof: 0.3\n", "key 'cnof' is unknown; did you mean 'conf'?"),
        ("conf: high\n", "key 'conf' should be a valid number"),
        ("imgsz: 99999\n", "key 'imgsz' should be less than or equal to 8192 (got 99999)"),
        ("conf: [1\n", "is not valid YAML at line 2"),
        ("", "is empty; put at least one setting in it"),
    ],
)
def test_bad_config(
    cli: Capture, clip: Path, tmp_path: Path, model_path: Path, text: str, expected: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    msg = cli.error("run", clip, "--model", model_path, "--config", cfg)
    assert expected in msg and str(cfg) in msg


# -- flags ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--conf", "1.5"], "--conf should be less than or equal to 1 (got 1.5)"),
        (["--conf", "0"], "--conf should be greater than 0 (got 0)"),
        (["--imgsz", "0"], "--imgsz should be greater than 0 (got 0)"),
        (["--imgsz", "-32"], "--imgsz should be greater than 0 (got -32)"),
        (["--conf", "abc"], "--conf should be a valid number, unable to parse string as a number (got abc)"),
        (["--bogus"], "unrecognized arguments: --bogus (see `detector --help`)"),
    ],
)
def test_bad_flags(cli: Capture, clip: Path, model_path: Path, flags: list[str], expected: str) -> None:
    assert cli.error("run", clip, "--model", model_path, *flags) == expected


def test_imgsz_not_multiple_of_32_rounds_up_and_runs(cli: Capture, clip: Path, model_path: Path) -> None:
    code, lines, _ = cli.run("run", clip, "--model", model_path, "--imgsz", "100", "--max-frames", "2")
    text = "\n".join(lines)
    assert code == 0, text
    assert "imgsz 100 is not a multiple of 32; using 128" in text
    assert "processed 2," in text


def test_unknown_class_lists_names_and_leaves_no_files(
    cli: Capture, clip: Path, tmp_path: Path, model_path: Path
) -> None:
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    msg = cli.error("run", clip, "--model", model_path, "--classes", "persn", "--output", out, "--json", js)
    assert msg.startswith(
        "unknown class name 'persn'; did you mean 'person'? valid names: person, bicycle, car"
    )
    assert msg.endswith("toothbrush")
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["clip.mp4"], "no partial outputs"


# -- outputs that would clobber the input or each other ------------------------------------


def test_output_equal_to_input_is_refused_and_input_kept(capfd, model_path, tmp_path):
    from conftest import write_clip

    clip = write_clip(tmp_path / "in.mp4", frames=10)
    before = clip.read_bytes()
    code = main(["run", str(clip), "--model", str(model_path), "-o", str(clip), "--overwrite"])
    err = capfd.readouterr().err
    assert code == 2 and "--output" in err and "is the input file" in err
    assert clip.read_bytes() == before


def test_two_outputs_on_one_file_are_refused(capfd, model_path, tmp_path):
    from conftest import write_clip

    clip = write_clip(tmp_path / "in.mp4", frames=5)
    same = tmp_path / "a.jsonl"
    code = main(["run", str(clip), "--model", str(model_path), "--json", str(same), "--csv", str(same)])
    err = capfd.readouterr().err
    assert code == 2 and "--json and --csv both write" in err
    assert not same.exists(), "nothing is created by a refused start"


def test_csv_and_mot_name_themselves_in_errors(capfd, model_path, tmp_path):
    from conftest import write_clip

    clip = write_clip(tmp_path / "in.mp4", frames=5)
    (tmp_path / "x.csv").write_text("old")
    code = main(["run", str(clip), "--model", str(model_path), "--csv", str(tmp_path / "x.csv")])
    assert code == 2 and "CSV output" in capfd.readouterr().err
