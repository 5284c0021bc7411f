"""Figures that must not mislead (issue 19, item 9): a source's fps is over its own active time, the
batch's overall fps counts the file in progress, and `detector bench` warns about a spread between
rounds."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import FakeDetector, write_clip

from detector.batch import Job
from detector.batch.dispatch import _Batch
from detector.bench import format_bench, spread_warnings
from detector.compose.run import Run
from detector.report import format_summary
from detector.settings import Settings


def test_a_source_that_ends_early_is_timed_over_its_own_run(tmp_path: Path, no_display: None) -> None:
    """Two sources through one model: the short one's fps and seconds are its own, not the run's
    (before: "2.8 fps over 8.2 s" for a GIF whose panel showed about 20 fps)."""
    short = write_clip(tmp_path / "short.mp4", frames=10)
    long = write_clip(tmp_path / "long.mp4", frames=100)
    settings = Settings(output=str(tmp_path / "out" / "{name}.mp4"))
    run = Run(settings, [str(short), str(long)], detector=FakeDetector(delay=0.01))  # type: ignore[arg-type]
    a, b = run.execute()
    assert (a.frames_processed, b.frames_processed) == (10, 100)
    assert a.wall_seconds < 0.6 * b.wall_seconds, (a.wall_seconds, b.wall_seconds)
    assert a.fps == pytest.approx(10 / a.wall_seconds)
    assert a.fps > 1.5 * 10 / b.wall_seconds, "the short source's fps is not spread over the whole run"
    summaries = {r["name"]: format_summary(r) for r in run.reports}
    seconds = {
        name: float(re.search(r"fps over ([\d.]+) s", text).group(1))  # type: ignore[union-attr]
        for name, text in summaries.items()
    }
    assert seconds["short"] < seconds["long"], summaries


def test_batch_overall_fps_counts_the_file_in_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that writes 9 frames a second keeps the overall figure at 9 fps while it runs (before:
    9.1, then 4.2, then 2.2: only finished files counted)."""
    batch = _Batch(tmp_path, Settings(), log_interval=10.0)
    now = [0.0]
    batch.clock = lambda: now[0]
    batch.t0 = 0.0
    job = Job(
        input=tmp_path / "long.mp4",
        name="long",
        video=tmp_path / "long.out.mp4",
        json=tmp_path / "long.jsonl",
    )
    batch.summary.total = 1
    batch.start(job)
    frame = json.dumps({"frame": 0, "pts": 0.0, "detections": []})
    event = json.dumps({"event": "line_cross", "line": "door", "frame": 0})
    with job.json.open("a") as f, caplog.at_level(logging.INFO, logger="detector"):
        for second in range(1, 4):
            f.write("\n".join([frame] * 9) + "\n" + event[:10])  # 9 frames, an event half written
            f.flush()
            now[0] = float(second)
            batch.heartbeat()
            f.write(event[10:] + "\n")  # the event line completes
            f.flush()
    figures = [re.search(r"(\d+) frames, ([\d.]+) fps overall", r.getMessage()) for r in caplog.records]
    got = [(int(m.group(1)), float(m.group(2))) for m in figures if m]
    assert got == [(9, 9.0), (18, 9.0), (27, 9.0)], got


def _runs(fps: dict[str, list[float]]) -> list[dict]:
    return [
        {"round": k + 1, "mode": mode, "frames": 100, "fps": value, "stage_ms": {}}
        for mode, values in fps.items()
        for k, value in enumerate(values)
    ]


def test_bench_warns_when_rounds_differ() -> None:
    runs = _runs({"infer-only": [20.0, 21.0], "sequential": [9.1, 18.4], "pipelined": [25.0, 24.0]})
    (warning,) = spread_warnings(runs)
    assert warning.startswith("sequential: rounds differ 2.0x (9.1 to 18.4 fps)")
    result = {
        "source": "s.mp4", "model": "m", "backend": "openvino", "model_load_s": 0.1, "encoder": "x",
        "runs": runs, "ratios": [], "warnings": [warning],
    }  # fmt: skip
    assert format_bench(result).splitlines()[-1] == f"warning: {warning}"


def test_bench_keeps_quiet_when_rounds_agree() -> None:
    assert (
        spread_warnings(_runs({"infer-only": [20.0, 21.5], "sequential": [9.1, 9.9], "pipelined": [25.0]}))
        == []
    )
