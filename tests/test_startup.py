"""Start-up stays lean: a plain one-frame run loads none of the parts only other options use (issue 29:
the event store, notifications, the tracker, motion gating, recording and clips had come onto the
start path and made a one-frame run 0.12 s slower). What it costs is measured by
tests/measure_startup.py, not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = """
import runpy, sys
sys.argv = ["detector", "run", sys.argv[1], "--max-frames", "1", "-q", "--json", sys.argv[2]]
try:
    runpy.run_module("detector", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(code, " ".join(sorted(sys.modules)), file=sys.stderr)
"""
ONLY_WHEN_ASKED = {
    "sqlite3": "the event store (--events-db, --clips)",
    "detector.eventstore.writer": "the event store",
    "detector.notify.worker": "--notify",
    "detector.tracking": "--track",
    "lap": "--track",
    "detector.motion": "motion gating",
    "detector.storage.recorder": "--record",
    "detector.storage.raw": "--record --record-mode raw",
    "detector.storage.clips": "--clips",
    "detector.reviews": "review items (clips, the event store, MQTT, notifications)",
    "torch": "a .pt model",
}


def test_a_plain_run_loads_only_what_it_uses(sample_clip: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(sample_clip), str(tmp_path / "one.jsonl")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    code, modules = done.stderr.strip().splitlines()[-1].split(" ", 1)
    assert code == "0", done.stderr[-2000:]
    assert len((tmp_path / "one.jsonl").read_text().splitlines()) >= 1  # it did run the frame
    loaded = {m: why for m, why in ONLY_WHEN_ASKED.items() if m in modules.split()}
    assert loaded == {}, "a plain run loaded what only these options need"
