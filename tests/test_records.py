"""Events as records, one source identity, and runs that lose no file (issue "Events you can build on").

Real runs of the bundled model on the sample clip (people in every frame), files decoded back:
* every event is one finished record, the same (id, source, clip, snapshot) in ``--json`` and in the
  clips folder's ``events.jsonl``, also with several sources and one shared folder;
* two sources with the same file stem keep their own clips and snapshots;
* a clip never replaces a file: an earlier run's clips, or an ``--output`` named like one;
* a run that fails to start leaves every old output byte for byte, and never touches a device;
* a stream's password appears in no file, log line or web view answer;
* on a full disk the real error is the one reported, and the summary says the video is incomplete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import subprocess
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import ROOT
from streaming import StreamServer, ffmpeg_exe
from user_errors import Capture

from detector.cli import main
from detector.events import (
    KINDS,
    Gap,
    LineCross,
    StorageFull,
    TrackNew,
    ZoneEnter,
    ZoneExit,
    from_dict,
    new_id,
    stamp,
)
from detector.sinks.jsonl import read_jsonl

pytestmark = pytest.mark.model


def run_ok(*argv: str | Path) -> None:
    assert main([str(a) for a in argv]) == 0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def events_of(path: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(path) if "event" in r]


def frames_of(path: Path) -> int:
    """Frames that decode (a file cut short by a full disk ends in a torn packet: skipped)."""
    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            if not packet.is_corrupt:
                n += len(stream.decode(packet))
    return n


# -- the records themselves ---------------------------------------------------------------------------
def test_records_are_immutable_identified_and_round_trip() -> None:
    draft = LineCross(line="door", direction="in", track_id=3, class_name="person", frame=7, pts=0.7,
                      confidence=0.81234, xyxy=(1.0, 2.0, 3.0, 4.0))  # fmt: skip
    record = stamp(draft, "door-cam", 1_800_000_000.25)
    assert draft.id == "" and record.id and record.source == "door-cam"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.line = "other"  # type: ignore[misc]
    assert uuid.UUID(record.id).version == 7
    when = datetime.fromisoformat(record.wall_time)
    assert when.utcoffset() is not None and when.timestamp() == pytest.approx(1_800_000_000.25, abs=1e-3)
    data = record.to_dict()
    assert list(data)[:4] == ["event", "id", "source", "wall_time"] and data["event"] == "line_cross"
    assert "clip" not in data, "attachments only when a clip was made"
    assert from_dict(json.loads(json.dumps(data))) == record
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == 2000 and ids == sorted(ids), "unique, and in time order"


def test_the_readme_documents_every_kind_and_field() -> None:
    """The README's event table lists each kind with exactly the fields its JSON form has."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- event records -->")[1].split("<!-- end of event records -->")[0]
    documented = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] not in ("kind", "---"):
            fields = re.sub(r"\([^)]*\)", "", cells[1])  # the notes in brackets name values, not fields
            documented[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", fields))
    samples = {
        "line_cross": LineCross(line="l", direction="in"),
        "zone_enter": ZoneEnter(zone="z"),
        "zone_exit": ZoneExit(zone="z", dwell_s=1.0, reason="lost"),
        "track_new": TrackNew(),
        "gap": Gap(after_frame=1, from_pts=0.1, to_pts=2.0, seconds=1.9, attempts=1),
        "storage_full": StorageFull(output="/rec/a.mp4", error="No space left on device", free_bytes=0),
    }
    assert set(samples) == set(KINDS), "a kind without a README row"
    common = documented.pop("every event")
    for kind, record in samples.items():
        full = dataclasses.replace(record, clip="c.mp4", clip_offset_s=1.0, snapshot="s.jpg")
        assert set(full.to_dict()) - {"event"} == common | documented[kind], kind


# -- clips: one source identity, never a replaced file ------------------------------------------------
@pytest.fixture(scope="module")
def mirrored(sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample clip mirrored left to right: the same people, other pixels."""
    out = tmp_path_factory.mktemp("mirror") / "door.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(sample_clip), "-t", "5", "-vf", "hflip", "-c:v", "libx264",
         "-preset", "ultrafast", "-an", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(c.streams.video[0])).to_ndarray(format="bgr24")


def frame_at(path: Path, pts: float) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            if float(f.time) >= pts - 0.02:
                return f.to_ndarray(format="bgr24")
    raise AssertionError(f"{path} has no frame at {pts}")


def test_same_stem_sources_share_a_folder_and_keep_their_own_clips(
    sample_clip: Path, mirrored: Path, model_path: Path, tmp_path: Path
) -> None:
    """``a/door.mp4 b/door.mp4 --clips DIR`` (the README's layout): both make clips, named after their
    own unique names; each clip shows its own source; ``--json`` and ``events.jsonl`` hold the same
    finished records."""
    a, b = tmp_path / "a" / "door.mp4", tmp_path / "b" / "door.mp4"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_bytes(sample_clip.read_bytes())
    b.write_bytes(mirrored.read_bytes())
    clips, shared = tmp_path / "clips", tmp_path / "all.jsonl"
    run_ok("run", a, b, "--model", model_path, "--track", "--clip-on", "person", "--clips", clips,
           "--clip-before", "1", "--clip-after", "1", "--json", shared, "--max-frames", "90",
           "-q")  # fmt: skip
    indexed = read_jsonl(clips / "events.jsonl")
    assert {r["source"] for r in indexed} == {"door", "door-2"}, "both sources made clips"
    for record in indexed:
        own = a if record["source"] == "door" else b
        other = b if own is a else a
        assert record["clip"].startswith(f"{record['source']}-clip-")
        assert record["snapshot"].startswith(f"{record['source']}-event-")
        clip = clips / record["clip"]
        assert frames_of(clip) >= 10 and (clips / record["snapshot"]).stat().st_size > 1000
        start = record["pts"] - record["clip_offset_s"]
        shown = first_frame(clip).astype(int)
        near, far = (np.abs(shown - frame_at(src, start).astype(int)).mean() for src in (own, other))
        assert near < far / 2, f"{record['clip']} shows {record['source']}'s video ({near:.1f} vs {far:.1f})"
    in_json = [r for r in events_of(shared) if r.get("clip")]
    key = ("id", "source", "clip", "clip_offset_s", "snapshot")
    assert sorted(tuple(r[k] for k in key) for r in in_json) == sorted(
        tuple(r[k] for k in key) for r in indexed
    )
    every = events_of(shared)
    assert len({r["id"] for r in every}) == len(every) and all(r["wall_time"] for r in every)


def test_a_clip_never_replaces_a_file(sample_clip: Path, model_path: Path, tmp_path: Path) -> None:
    """An ``--output`` named like the first clip keeps its whole video; a second run into the same
    folder leaves the first run's clips and snapshots byte for byte and numbers its own after them."""
    clips = tmp_path / "clips"
    clips.mkdir()
    output = clips / "sample-clip-0001.mp4"
    args = ["--model", model_path, "--track", "--clip-on", "person", "--clips", clips, "--max-frames", "60"]
    run_ok("run", sample_clip, *args, "--output", output, "-q")
    assert frames_of(output) == 60, "the --output holds the run's video, not a clip"
    first = {p.name: digest(p) for p in clips.iterdir()}
    indexes = ("events.jsonl", "events.db")  # appended to by each run
    made = sorted(n for n in first if n != output.name and n not in indexes)
    assert made and "sample-clip-0002.mp4" in made
    run_ok("run", sample_clip, *args, "-q")
    after = {p.name: digest(p) for p in clips.iterdir()}
    assert all(after[n] == h for n, h in first.items() if n not in indexes), "an old file changed"
    new = sorted(set(after) - set(first))

    def numbers(names: list[str], kind: str) -> list[int]:
        return [int(n.split("-")[-1].split(".")[0]) for n in names if f"-{kind}-" in n]

    for kind in ("clip", "event"):
        assert numbers(new, kind) and min(numbers(new, kind)) > max(numbers(made, kind)), (kind, new)
    lines = read_jsonl(clips / "events.jsonl")
    assert {r["snapshot"] for r in lines} == {n for n in after if "-event-" in n}, "both runs indexed"
    assert len({r["id"] for r in lines}) == len(lines)


# -- a run removes only what it made ----------------------------------------------------------------------
OUTPUT_FLAGS = {"--output": "mp4", "--json": "jsonl", "--csv": "csv", "--report": "json"}


@pytest.mark.parametrize("failure", ["bad class", "source cannot be opened"])
def test_failed_start_leaves_old_outputs_byte_identical(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path, failure: str
) -> None:
    """Old outputs, ``--overwrite``, and a start that fails (a misspelt class; a second source that
    cannot be opened): every old file is as it was."""
    if failure == "bad class":
        sources, stems, extra = [sample_clip], ["old"], ["--classes", "persn"]
    else:
        sources, stems, extra = [sample_clip, tmp_path / "missing.mp4"], ["sample-out", "missing-out"], []
    template = "old" if failure == "bad class" else "{name}-out"
    flags = [x for flag, ext in OUTPUT_FLAGS.items() for x in (flag, str(tmp_path / f"{template}.{ext}"))]
    olds = [tmp_path / f"{stem}.{ext}" for stem in stems for ext in OUTPUT_FLAGS.values()]
    for k, path in enumerate(olds):
        path.write_bytes(os.urandom(1000 + k))
    before = {p: digest(p) for p in olds}
    msg = cli.error("run", *sources, "--model", model_path, *flags, "--overwrite", *extra)
    assert ("unknown class name 'persn'" if failure == "bad class" else "missing.mp4 not found") in msg
    assert {p: digest(p) for p in olds} == before, "an old output changed"


def test_failed_start_never_touches_a_device_or_a_pipe(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path
) -> None:
    """``--json /dev/full --overwrite`` with a failing start: the node stays (a device made here like
    /dev/full, char 1:7, where allowed; a FIFO always). New regular files of the run are removed."""
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    targets = [("--csv", fifo)]
    device = tmp_path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        targets.append(("--json", device))
    except PermissionError:
        pass
    fresh = tmp_path / "fresh.mp4"
    flags = [x for flag, p in targets for x in (flag, p)]
    msg = cli.error("run", sample_clip, "--model", model_path, *flags, "--output", fresh, "--overwrite",
                    "--classes", "persn")  # fmt: skip
    assert "persn" in msg
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if device.exists():
        assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert not fresh.exists(), "what the failed run made is gone"


# -- credentials never leave the process -----------------------------------------------------------------
def test_a_stream_password_never_leaves_the_process(
    sample_clip: Path, model_path: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "S3cretPW"
    out = tmp_path / "out"
    out.mkdir()
    with StreamServer(sample_clip, duration=4) as server:
        url = server.url.replace("http://", f"http://alice:{secret}@") + "/live?token=T0kenXYZ"
        argv = ["run", url, "--model", model_path, "--track", "--clip-on", "person", "--clips", out / "clips",
                "--json", out / "d.jsonl", "--report", out / "r.html", "--output", out / "v.mp4",
                "--max-frames", "40"]  # fmt: skip
        code = main([str(a) for a in argv])
    err = capfd.readouterr().err
    assert code == 0, err
    assert secret not in err and "T0kenXYZ" not in err
    assert "***@127.0.0.1" in err, "the URL is shown, without its credentials"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mp4" for p in files) and (out / "clips" / "events.jsonl").exists()
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data and b"T0kenXYZ" not in data, path
        assert b"alice" not in data, path


# -- ids people can read ----------------------------------------------------------------------------------
def test_track_ids_count_from_one_in_the_order_tracks_appear(
    videos_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    """The street GIF: ids in JSONL and MOT are 1, 2, 3... in order of first sight, as many as the
    report's tracks (Ultralytics' own counter, which also counts tentative tracks, reaches 22 here)."""
    out = {"json": tmp_path / "s.jsonl", "mot": tmp_path / "s.txt", "report": tmp_path / "s.json"}
    run_ok("run", videos_dir / "person-bicycle-car-detection.gif", "--model", model_path, "--track", "-q",
           *(x for k, p in out.items() for x in (f"--{k}", p)))  # fmt: skip
    first_seen: list[int] = []
    for line in read_jsonl(out["json"]):
        for det in line.get("detections", []):
            if det["track_id"] not in first_seen:
                first_seen.append(det["track_id"])
    tracks = sum(json.loads(out["report"].read_text())["tracks_per_class"].values())
    assert len(first_seen) == tracks >= 5
    assert first_seen == list(range(1, tracks + 1))
    mot_ids = {int(row.split(",")[1]) for row in out["mot"].read_text().splitlines()}
    assert mot_ids == set(first_seen)


# -- a full disk: the real error is the one reported --------------------------------------------------------
def test_full_disk_reports_the_video_error_and_marks_it_incomplete(
    cli: Capture, small_disk: Callable[[str], Path], sample_clip: Path, model_path: Path
) -> None:
    disk = small_disk("300k")
    video, report = disk / "out.mp4", disk / "report.json"
    code, lines, _ = cli.run("run", sample_clip, "--model", model_path, "--output", video, "--report", report)
    assert code == 4, "the run ends with an output incomplete"
    assert (
        lines[-1]
        == f"detector: error: writing {video} failed: No space left on device; the video up to here is kept"
    )
    [outputs] = [line for line in lines if line.startswith("outputs")]
    assert f"{video} (incomplete: No space left on device)" in outputs and str(report) in outputs
    # The report fits in what the cut-back video left free, or its own failure is logged (which one
    # depends on how the frames compress): never a report cut short.
    if not any(f"writing report {report} failed" in line for line in lines[:-1]):
        assert json.loads(report.read_text())["frames"]["processed"] > 0, "the report is whole"
    assert frames_of(video) >= 10, "what was written still plays"


def test_summary_lists_every_output_with_the_mode_others_get(
    cli: Capture, sample_clip: Path, model_path: Path, tmp_path: Path
) -> None:
    """The summary's outputs line names the report and a shared --json too; the report is 0644 under
    umask 022 like every other output."""
    old = os.umask(0o022)
    try:
        shared, report = tmp_path / "all.jsonl", tmp_path / "{name}.html"
        code, lines, _ = cli.run("run", sample_clip, sample_clip, "--model", model_path, "--json", shared,
                                 "--report", report, "--max-frames", "5")  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0
    outputs = [line for line in lines if line.startswith("outputs")]
    assert len(outputs) == 2 and all(str(shared) in line for line in outputs)
    assert str(tmp_path / "sample.html") in outputs[0] and str(tmp_path / "sample-2.html") in outputs[1]
    for path in (tmp_path / "sample.html", shared):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
