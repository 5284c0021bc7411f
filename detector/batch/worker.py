"""A batch worker: the model loaded once, then one ``Run`` per input with that model.

``Worker`` is also the Ray actor class. In local worker processes, ``init_process`` (the pool's
initializer) loads the ``Worker`` and wires Ctrl-C: a signal, or the parent setting the shared
``stop`` event, asks the run in progress to stop at a frame boundary (``detector.signals``), so
its outputs are closed and its result says ``interrupted``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

from detector.batch.jobs import Job, JobResult, failed
from detector.errors import Interrupted, UserError
from detector.machine import limit_threads
from detector.redact import Redacting
from detector.settings import Settings
from detector.signals import interrupts
from detector.text import first_line

log = logging.getLogger(__name__)


class _NotATerminal:
    """stderr that is no terminal: progress comes as log lines, never as rich bars from N processes."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def configure_worker_logging(label: str, level: int) -> None:
    if not isinstance(sys.stderr, _NotATerminal):
        sys.stderr = _NotATerminal(sys.stderr)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Redacting(f"[{label}] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("detector").setLevel(level)


class Worker:
    """One worker: the model loaded once, then ``process(job)`` per input."""

    def __init__(self, settings: Settings, threads: int, label: str, log_level: int) -> None:
        limit_threads(threads)
        configure_worker_logging(label, log_level)
        from detector.backends import load_detector

        self.label = label
        self.settings = settings
        self.detector = load_detector(settings, requests=2)
        log.info(
            "ready: %s (%s backend), %d threads", settings.resolved_model(), self.detector.backend, threads
        )

    def process(self, job: Job) -> JobResult:
        from detector.compose.run import Run

        t0 = time.monotonic()
        log.info("start %s", job.input)
        run = Run(job.settings(self.settings), [str(job.input)], detector=self.detector)
        try:
            run.execute()
            error = None
        except Interrupted:
            error = "interrupted"
        except UserError as exc:
            error = str(exc)
        except Exception as exc:
            log.debug("%s failed", job.input, exc_info=True)
            error = f"{type(exc).__name__}: {first_line(exc, 1000)}"
        frames = run.stats.frames_processed if run.stats else 0
        wall = time.monotonic() - t0
        if error is None and frames == 0:
            error = "no frame could be decoded"
        if error is not None:
            return failed(error, frames, wall, self.label, str(job.input))
        fps = run.stats.fps if run.stats else 0.0
        return JobResult("done", None, frames, round(fps, 2), round(wall, 3), self.label, str(job.input))


# -- local worker processes (the pool's initializer and task) --------------------------------------------

_worker: Worker | None = None
_init_error: str | None = None
_stop: Any = None  # the parent's stop event


class WorkerInitError(Exception):
    """The worker could not load the model: every job would fail the same way."""


def init_process(settings: Settings, threads: int, log_level: int, stop: Any, counter: Any) -> None:
    """Runs once in each new worker process: signals, then the model."""
    global _worker, _init_error, _stop
    with counter.get_lock():
        counter.value += 1
        label = f"w{counter.value}"
    _stop = stop
    signals = interrupts()
    signals.install()
    signals.always_defer()  # for the worker's whole life: a signal stops the run in progress
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True, name="stop-watch").start()
    try:
        _worker = Worker(settings, threads, label, log_level)
    except BaseException as exc:
        _init_error = f"worker {label} could not load the model: {first_line(exc, 1000)}"


def _watch_parent(stop: Any) -> None:
    stop.wait()
    interrupts().request(signal.SIGINT)


def process_job(job: Job) -> JobResult:
    """The pool's task: one input, in the worker process."""
    if _init_error is not None or _worker is None:
        raise WorkerInitError(_init_error or "the worker did not start")
    if _stop is not None and _stop.is_set():
        return failed("interrupted", worker=_worker.label)
    interrupts().reset()  # a signal that ended an earlier input does not end this one
    return _worker.process(job)
