"""The real ``detector`` console script in a subprocess, watched from outside like a user would.

Shared by the live-stream and display tests: stderr goes to a file, the JSONL is read as it grows.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from detector.sinks.jsonl import read_jsonl


class DetectorProcess:
    def __init__(self, cmd: list[str], folder: Path, env: Mapping[str, str]) -> None:
        self.jsonl = folder / "out.jsonl"
        self.mp4 = folder / "out.mp4"
        self.err_path = folder / "stderr.txt"
        self.started = time.monotonic()
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=dict(env),
                # a process started from a script inherits SIGINT ignored: give Ctrl-C back
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.jsonl) if self.jsonl.exists() else []

    def frames(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if "event" not in r]

    def wait_until(self, what: str, ready: Callable[[], object], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"detector exited ({self.proc.returncode}) before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:g} s:\n{self.stderr}")
            time.sleep(0.02)

    def finish(self, timeout: float) -> int:
        """Wait for the exit (killing it after ``timeout``, which fails the test); returns the code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"detector still running after {timeout:g} s:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


P = TypeVar("P", bound=DetectorProcess)


def launched(make: Callable[..., P]) -> Iterator[Callable[..., P]]:
    """For a fixture: a function that starts processes with ``make``; they are killed at teardown."""
    started: list[P] = []

    def launch(*args: Any, **kwargs: Any) -> P:
        started.append(make(*args, **kwargs))
        return started[-1]

    yield launch
    for run in started:
        run.kill()
