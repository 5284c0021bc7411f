"""The one-line user error contract, shared by the bad-input tests (test_bad_inputs, test_bad_models).

``detector.cli.main`` runs in-process (``Capture``) or, where file permissions must bite also for
root, in a subprocess (``unprivileged_error``). Either way: exit 2, the error is the last line on
stderr, one line, no traceback, no library noise. Each error is printed as a ``TABLE |`` line, so
``pytest -rP`` lists every command with its message.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from conftest import run_unprivileged

from detector.cli import main

NOISE = re.compile(r"^\[ ?(WARN|ERROR|INFO)|OpenCV\(|Exception from|^\s*File \"|^Traceback|^> ")


def user_error(code: int, lines: list[str], argv: tuple[str | Path, ...]) -> str:
    """Assert the contract on an exit code and the non-empty stderr lines; return the message."""
    text = "\n".join(lines)
    assert code == 2, text
    assert "Traceback" not in text
    errors = [line for line in lines if line.startswith("detector: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], text
    assert not [line for line in lines if NOISE.search(line)], f"library noise on stderr:\n{text}"
    print(f"TABLE | {' '.join(str(a) for a in argv)} | {code} | {errors[0]}")  # for -rP
    return errors[0].removeprefix("detector: error: ")


class Capture:
    """``main(argv)`` in this process, stderr read from fd 2 (C libraries' noise would show too)."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd
        self.seconds = 0.0

    def run(self, *argv: str | Path) -> tuple[int, list[str], float]:
        """``main(argv)`` -> (exit code, non-empty stderr lines, seconds)."""
        started = time.monotonic()
        code = main([str(a) for a in argv])
        self.seconds = time.monotonic() - started
        out, err = self.capfd.readouterr()
        sys.stdout.write(out)  # back into the capture: earlier TABLE lines stay for -rP
        return code, [line for line in err.splitlines() if line.strip()], self.seconds

    def error(self, *argv: str | Path) -> str:
        """Run, assert the one-line user error contract, return the message (without the prefix)."""
        code, lines, _ = self.run(*argv)
        return user_error(code, lines, argv)


def unprivileged_error(*argv: str | Path) -> str:
    """``detector ARGV`` in a subprocess where file permissions apply; the user error's message."""
    proc = run_unprivileged(*argv)
    return user_error(proc.returncode, [x for x in proc.stderr.splitlines() if x.strip()], argv)
