"""The one-line user error contract, shared by the bad-input tests (test_bad_inputs, test_bad_models).

``detector.cli.main`` runs in-process (``Capture``) or, where file permissions must bite also for
root, in a subprocess (``unprivileged_error``). Either way: exit 2, the error is the last line on
stderr, one line, no traceback, no library noise. Each error is printed as a ``TABLE |`` line, so
``pytest -rP`` lists every command with its message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

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


# -- where file permissions apply, also when the suite runs as root (CI) ------------------------------
# Root passes every permission check through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH. Without them it is
# bound by the mode bits of its own files like any user, and it still reaches this interpreter (under
# /root, mode 700 here, which is why ``setpriv --reuid=65534`` could not even start Python).
DROP_DAC = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
)
_unprivileged: tuple[str, ...] | str | None = None  # the prefix once probed, or why there is none


def unprivileged_prefix() -> tuple[str, ...]:
    """A command prefix under which file mode bits apply: none for a normal user; for root, ``setpriv``
    dropping the two DAC capabilities. Skips, saying what is missing, where that does not work."""
    global _unprivileged
    if os.geteuid() != 0:
        return ()
    if _unprivileged is None:
        with tempfile.NamedTemporaryFile() as locked:
            os.chmod(locked.name, 0)
            probe = "import detector.cli, sys\ntry: open(sys.argv[1])\nexcept PermissionError: print('ok')"
            try:
                cmd = [*DROP_DAC, sys.executable, "-c", probe, locked.name]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                ok = out.stdout.strip() == "ok"
                why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
            except OSError as exc:
                ok, why = False, str(exc)
        _unprivileged = (
            DROP_DAC if ok else f"running as root, and setpriv cannot drop CAP_DAC_OVERRIDE here: {why}"
        )
    if isinstance(_unprivileged, str):
        pytest.skip(_unprivileged)
    return _unprivileged


def run_unprivileged(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m detector ARGV`` where file permissions apply (see ``unprivileged_prefix``)."""
    cmd = [*unprivileged_prefix(), sys.executable, "-m", "detector", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def unprivileged_error(*argv: str | Path) -> str:
    """``detector ARGV`` in a subprocess where file permissions apply; the user error's message."""
    proc = run_unprivileged(*argv)
    return user_error(proc.returncode, [x for x in proc.stderr.splitlines() if x.strip()], argv)
