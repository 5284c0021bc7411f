"""Every bad input a user can give, through ``detector.cli.main``: exit 2, one line, no traceback.

The error line is the last line on stderr (fd 2, so C libraries' noise would show too); INFO lines
about what was opened may come before it. Uses the real model (``--model``), so nothing downloads.
Inputs, models, configs and every output path; what needs file permissions to bite runs in a
subprocess where they apply, also as root (``user_errors.run_unprivileged``).
Runtime: ~45 s on 2 cores (the .pt/.yaml cases import torch).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from conftest import write_clip
from user_errors import NOISE, Capture, unprivileged_error

from detector.cli import main

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("user_error_env")]


def _frames_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if "event" not in json.loads(line))


# -- inputs ---------------------------------------------------------------------------------------------
def test_missing_file(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    msg = cli.error("run", tmp_path / "nope.mp4", "--model", model_path)
    assert msg == f"input {tmp_path / 'nope.mp4'} not found"


def test_empty_file(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    assert "is empty (0 bytes)" in cli.error("run", tmp_path / "empty.mp4", "--model", model_path)


def test_unreadable_file(clip: Path, model_path: Path) -> None:
    clip.chmod(0)
    msg = unprivileged_error("run", clip, "--model", model_path)
    assert msg == f"input {clip} cannot be read (permission denied)"


def test_text_file_named_mp4(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    msg = cli.error("run", fake, "--model", model_path)
    assert "is not a video FFmpeg can read" in msg and "not a video" in msg


def test_truncated_mp4_processes_what_decodes(
    cli: Capture, tmp_path: Path, model_path: Path, sample_clip: Path
) -> None:
    """The first half of the sample clip (header intact): the frames whose data is all there are
    processed (FFmpeg's own index of the whole file says which), exit 0, no hang."""
    data = sample_clip.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with av.open(str(sample_clip)) as c:
        complete = sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.pos + p.size <= len(data) // 2)
    js = tmp_path / "half.jsonl"
    code, lines, _ = cli.run("run", half, "--model", model_path, "--json", js, "--vid-stride", "10")
    text = "\n".join(lines)
    assert code == 0, text
    assert "Traceback" not in text and not [line for line in lines if NOISE.search(line)], text
    read = int(re.search(r"frames\s+read (\d+)", text).group(1))  # type: ignore[union-attr]
    # all of them but the 2 or so still inside the decoder's frame threads when the data stops
    assert complete - 3 <= read <= complete < 240, f"{read} frames read, {complete} complete in the file"
    assert _frames_in(js) == -(-read // 10)
    assert f"ended after {read} of the 240 frames its header declares (truncated?)" in text


def test_header_only_mp4_is_refused_and_leaves_nothing(
    cli: Capture, tmp_path: Path, model_path: Path, sample_clip: Path
) -> None:
    """The first 12 kB of the sample clip: its whole header (moov, 3.5 kB), not one whole frame (the
    first is 26 kB). Exit 2, and no empty outputs."""
    stub = tmp_path / "stub.mp4"
    stub.write_bytes(sample_clip.read_bytes()[:12_000])
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    msg = cli.error("run", stub, "--model", model_path, "--output", out, "--json", js)
    assert msg == f"input {stub} gave no frames that decode (truncated or corrupt?)"
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
    """Nothing listens: refused at once, one line, no reconnect attempts (they would log lines)."""
    url = f"http://127.0.0.1:{_closed_port()}/x"
    msg = cli.error("run", url, "--model", model_path)
    assert msg == f"could not connect to {url}: Connection refused"


def test_silent_server_times_out(cli: Capture, tmp_path: Path, model_path: Path) -> None:
    """A server that accepts and never answers: refused after connect_timeout, not a hang. Timed from
    the accepted connection to the exit, for timeouts of 1 and 2 s: each waits at least its timeout,
    and the second one second longer (a paired difference, whatever the machine's speed)."""
    accepted: list[float] = []
    held: list[socket.socket] = []
    waited = {}
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(30)

        def accept() -> None:
            with contextlib.suppress(OSError):
                while len(held) < 2:
                    held.append(server.accept()[0])  # kept open, never answered
                    accepted.append(time.monotonic())

        listener = threading.Thread(target=accept, daemon=True)
        listener.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/live"
        for n, timeout in enumerate((1.0, 2.0)):
            cfg = tmp_path / f"c{timeout:g}.yaml"
            cfg.write_text(f"connect_timeout: {timeout:g}\n")
            msg = cli.error("run", url, "--model", model_path, "--config", cfg)
            assert msg == f"could not connect to {url} within {timeout:g} s"
            assert len(accepted) == n + 1, "connected once, not retried"
            waited[timeout] = time.monotonic() - accepted[n]
        listener.join(5)
    for conn in held:
        conn.close()
    assert waited[1.0] >= 0.95 and waited[2.0] >= 1.95, f"gave up before the timeout: {waited}"
    assert waited[2.0] - waited[1.0] == pytest.approx(1.0, abs=0.4), waited


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://bar", "URL scheme 'foo' is not supported; use one of http, https"),
        ("http://", "URL http:// has no host"),
    ],
)
def test_malformed_url(cli: Capture, model_path: Path, url: str, expected: str) -> None:
    assert expected in cli.error("run", url, "--model", model_path)


# -- outputs: every output flag, every way its path can be wrong; all checked before anything runs -----
OUTPUTS = {  # flag: (what the message calls it, a file name it accepts)
    "--output": ("video output", "out.mp4"),
    "--json": ("JSON output", "out.jsonl"),
    "--csv": ("CSV output", "out.csv"),
    "--mot": ("MOT output", "out.txt"),
    "--report": ("report", "report.json"),
}
TOO_LONG = "x" * 300  # over the 255 bytes a file name may have


@pytest.mark.parametrize("flag", list(OUTPUTS))
@pytest.mark.parametrize(
    ("case", "path", "expected"),
    [
        ("parent is a file", "clip.mp4/{name}", "{what} folder clip.mp4 is not a folder; {choose}"),
        ("a file above", "clip.mp4/sub/{name}", "{what} folder clip.mp4 is not a folder; {choose}"),
        ("a folder name", "{name}/", "{what} {path} is a folder; give a file name"),
        ("long, in a missing folder", "nope/{long}{ext}",
         "{what} {path} cannot be created (File name too long); {choose}"),
        ("a folder", "taken{ext}", "{what} taken{ext} is a folder; give a file name"),
        ("exists", "old{ext}", "{what} old{ext} exists; pass --overwrite to replace it"),
        ("name too long", "{long}{ext}", "{what} {path} cannot be created (File name too long); {choose}"),
        ("the input", "clip.mp4", "{flag} clip.mp4 is the input file; choose another output path"),
    ],
)  # fmt: skip
def test_bad_output_path(
    cli: Capture, clip: Path, tmp_path: Path, model_path: Path, flag: str, case: str, path: str, expected: str
) -> None:
    """Refused with one line before anything runs: nothing created, nothing replaced."""
    what, name = OUTPUTS[flag]
    ext = Path(name).suffix
    (tmp_path / f"taken{ext}").mkdir()
    (tmp_path / f"old{ext}").write_text("precious")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    path = path.format(name=name, ext=ext, long=TOO_LONG)
    overwrite = ["--overwrite"] if case == "the input" else []
    msg = cli.error("run", clip, "--model", model_path, flag, path, *overwrite)
    assert msg == expected.format(what=what, ext=ext, path=path, flag=flag, choose="choose another path")
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before, "a file was created or changed"


@pytest.mark.parametrize("flag", list(OUTPUTS))
def test_output_cannot_be_written(
    cli: Capture, clip: Path, model_path: Path, read_only_dir: Path, read_only_file: Path, flag: str
) -> None:
    """A folder this process cannot write into, and an existing file it cannot replace, even with
    --overwrite (read-only mounts when running as root, where mode bits do not bind)."""
    what, name = OUTPUTS[flag]
    msg = cli.error("run", clip, "--model", model_path, flag, read_only_dir / name)
    assert msg == f"{what} folder {read_only_dir} is not writable; choose another path"
    msg = cli.error("run", clip, "--model", model_path, flag, read_only_dir / "sub" / name)
    expected = f"{what} folder {read_only_dir / 'sub'} cannot be made: {read_only_dir} is not writable"
    assert msg == f"{expected}; choose another path"
    msg = cli.error("run", clip, "--model", model_path, flag, read_only_file, "--overwrite")
    assert msg == f"{what} {read_only_file} exists and is not writable; choose another path"
    assert read_only_file.read_text() == "old"


BATCH_DIR_ERRORS = {  # case: what may follow "--output-dir PATH"
    "a file": ["is a file; give a folder"],
    "name too long": ["is not writable: File name too long"],
    "read-only": [
        "is not writable: Read-only file system",
        "is not writable: Permission denied",
    ],  # root / user
}


@pytest.mark.parametrize("case", list(BATCH_DIR_ERRORS))
def test_bad_batch_output_dir(
    cli: Capture, clip: Path, model_path: Path, read_only_dir: Path, case: str
) -> None:
    """detector batch's --output-dir, checked (and created) before any input is opened."""
    folder = {"a file": clip, "name too long": Path(TOO_LONG), "read-only": read_only_dir / "out"}[case]
    msg = cli.error("batch", clip, "--model", model_path, "--output-dir", folder)
    assert msg in [f"--output-dir {folder} {end}" for end in BATCH_DIR_ERRORS[case]]


def test_output_folder_read_only(clip: Path, tmp_path: Path, model_path: Path) -> None:
    """A folder of mode 555, in a process bound by mode bits (also when the suite runs as root)."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    msg = unprivileged_error("run", clip, "--model", model_path, "--output", ro / "out.mp4")
    assert msg == f"video output folder {ro} is not writable; choose another path"


def test_output_not_a_video_container(cli: Capture, clip: Path, model_path: Path) -> None:
    msg = cli.error("run", clip, "--model", model_path, "--output", "out.mkv")
    assert msg == (
        "video output out.mkv: a '.mkv' name, but the video is written as H.264 in MP4; "
        "use a .mp4, .m4v or .mov name, e.g. out.mp4"
    )


@pytest.mark.parametrize("name", ["out/", "videos"])
def test_video_output_naming_a_folder_says_so(
    cli: Capture, clip: Path, model_path: Path, tmp_path: Path, name: str
) -> None:
    (tmp_path / "videos").mkdir()
    msg = cli.error("run", clip, "--model", model_path, "-o", name)
    assert msg == f"video output {name} is a folder; give a file name"


def test_disk_full(
    cli: Capture, small_disk: Callable[[str], Path], model_path: Path, sample_clip: Path, tmp_path: Path
) -> None:
    """The output folder is a 300 kB tmpfs: the run goes on to the end of the input (the JSONL on
    another disk holds every frame and a ``storage_full`` event), then one line and exit 4 (an output
    is incomplete); what was written still plays: every packet in the file but the one being written
    when the disk filled, as the first frames in order."""
    full = small_disk("300k")
    out, js = full / "out.mp4", tmp_path / "out.jsonl"
    code, lines, _ = cli.run("run", sample_clip, "--model", model_path, "--output", out, "--json", js)
    assert code == 4, lines
    errors = [line for line in lines if line.startswith("detector: error: ")]
    assert errors == [lines[-1]] and "Traceback" not in "\n".join(lines)
    msg = lines[-1].removeprefix("detector: error: ")
    assert msg == f"writing {out} failed: No space left on device; the video up to here is kept"
    records = [json.loads(line) for line in js.read_text().splitlines()]
    assert len([r for r in records if "event" not in r]) == 240, "detection went on to the end"
    [event] = [r for r in records if r.get("event") == "storage_full"]
    assert event["output"] == str(out) and event["error"] == "No space left on device"
    torn: list[bool] = []
    times: list[float] = []
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            if packet.size:
                torn.append(packet.is_corrupt)  # FFmpeg's demuxer: data cut short by the end of file
                if not packet.is_corrupt:
                    times += [float(f.time) for f in stream.decode(packet)]
        times += [float(f.time) for f in stream.decode(None)]
    complete = torn.count(False)
    assert complete >= 10 and torn in ([False] * complete, [False] * complete + [True]), torn
    assert len(times) == complete, f"{complete} whole packets, {len(times)} frames decode"
    assert times == pytest.approx([i / 30 for i in range(complete)], abs=1e-3), "not the first frames"
    assert not [p.name for p in full.iterdir() if p.name != "out.mp4"], "no temp files left"


# -- flags ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--conf", "1.5"], "--conf should be less than or equal to 1 (got 1.5)"),
        (["--conf", "0"], "--conf should be greater than 0 (got 0)"),
        (["--imgsz", "0"], "--imgsz should be greater than 0 (got 0)"),
        (["--imgsz", "-32"], "--imgsz should be greater than 0 (got -32)"),
        (["--conf", "abc"], "--conf should be a valid number, unable to parse string as a number (got abc)"),
        (["--bogus"], "unknown flag --bogus (see `detector run --help`)"),
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
