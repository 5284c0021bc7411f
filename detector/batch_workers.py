"""Where batch files are processed: a worker that keeps one model loaded, and two pools of them.

- ``WorkerCore`` loads the model once, then runs ``app.run`` on each file with that model.
- ``LocalPool``: worker processes on this machine (spawn), one task queue each.
- ``RayPool``: one Ray actor per worker, on a local Ray runtime or an existing cluster.

Both pools give the dispatcher in ``batch.py`` the same interface: ``start(n) -> n``,
``submit(slot, task)``, ``wait(timeout) -> [(slot, result)]``, ``abort() -> [(slot, result)]``
(stop what runs, keep what finished) and ``close()``.
"""

from __future__ import annotations

import _thread
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from detector.config import Settings
from detector.errors import UserError
from detector.stats import RunStats

log = logging.getLogger(__name__)

THREADS_ENV = "DETECTOR_INFERENCE_THREADS"  # read by detect_openvino when it compiles the model
RAY_MISSING = "ray is not installed; pip install -e '.[ray]'"
Result = dict[str, Any]  # status, error, frames, fps, wall_s, outputs
PER_RUN_OUTPUTS = ("output", "json_path", "csv", "mot", "report")  # Settings fields naming one run's files


@dataclass(frozen=True)
class Task:
    input: str
    video: str
    json: str
    report: str | None = None


def failed(error: str, frames: int = 0, wall_s: float = 0.0) -> Result:
    return {"status": "failed", "error": error, "frames": frames, "fps": 0.0, "wall_s": round(wall_s, 3)}


def first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:1000] if lines else type(exc).__name__


def configure_threads(n: int) -> None:
    """Size every thread pool of this process to ``n`` (OpenVINO, torch/OpenMP, OpenCV)."""
    import cv2

    os.environ[THREADS_ENV] = str(n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    cv2.setNumThreads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


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
    handler.setFormatter(logging.Formatter(f"[{label}] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("detector").setLevel(level)


class WorkerCore:
    """One worker: the model loaded once, then one ``app.run`` per file. Also the Ray actor class."""

    def __init__(self, settings: Settings, threads: int, label: str, log_level: int) -> None:
        configure_threads(threads)
        configure_worker_logging(label, log_level)
        from detector.detection import load_detector

        self.label = label
        self.settings = settings
        self.detector = load_detector(settings, requests=2)
        self.busy_since: float | None = None
        log.info("ready: %s (%s backend), %d threads", settings.model, self.detector.backend, threads)

    def process(self, task: Task) -> Result:
        from detector.app import run

        t0 = time.monotonic()
        per_file = {"output": task.video, "json_path": task.json, "report": task.report}
        # other per-run output paths (a config's csv/mot) would collide between files: off in batch
        off = {k: None for k in PER_RUN_OUTPUTS if k in Settings.model_fields and k not in per_file}
        settings = self.settings.model_copy(update={**per_file, **off, "overwrite": True, "show": False})
        holder: list[RunStats] = []
        log.info("start %s", task.input)
        try:
            self.detector.reset()
            run(task.input, settings, stats_out=holder, detector=self.detector)
            error = None
        except KeyboardInterrupt:
            error = "interrupted"
        except UserError as exc:
            error = str(exc)
        except Exception as exc:
            log.debug("%s failed", task.input, exc_info=True)
            error = f"{type(exc).__name__}: {first_line(exc)}"
        stats = holder[0] if holder else RunStats()
        wall = time.monotonic() - t0
        if error is None and stats.frames_processed == 0:
            error = "no frame could be decoded"
        if error is not None:
            return failed(error, stats.frames_processed, wall)
        fps = round(stats.fps, 2)
        return {
            "status": "done",
            "error": None,
            "frames": stats.frames_processed,
            "fps": fps,
            "wall_s": round(wall, 3),
        }


# -- local worker processes -------------------------------------------------------------------------


class _Interrupts:
    """SIGINT in a worker: interrupt the file in progress; while idle, just remember it."""

    def __init__(self) -> None:
        self.busy = False
        self.interrupted = False

    def handler(self, signum: int, frame: object) -> None:
        self.interrupted = True
        if self.busy:
            raise KeyboardInterrupt

    def watch(self, stop: Any) -> None:
        """Parent asked to stop (it may have got the only SIGINT): interrupt the file in progress."""
        stop.wait()
        if self.busy and not self.interrupted and signal.getsignal(signal.SIGINT) == self.handler:
            self.interrupted = True
            _thread.interrupt_main(signal.SIGINT)


def _local_worker(
    slot: int, tasks: Any, results: Any, stop: Any, settings: Settings, threads: int, level: int
) -> None:
    irq = _Interrupts()
    signal.signal(signal.SIGINT, irq.handler)
    parent = os.getppid()
    try:
        core = WorkerCore(settings, threads, f"w{slot + 1}", level)
    except BaseException as exc:
        results.put(("init_error", slot, f"worker w{slot + 1} could not load the model: {first_line(exc)}"))
        return
    threading.Thread(target=irq.watch, args=(stop,), daemon=True, name="stop-watch").start()
    while not stop.is_set():
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the batch died without telling us
                return
            continue
        if task is None or stop.is_set():
            return
        irq.busy, irq.interrupted = True, False
        try:
            result = core.process(task)
        except KeyboardInterrupt:
            result = failed("interrupted")
        finally:
            irq.busy = False
            signal.signal(signal.SIGINT, irq.handler)  # ours again, whatever ran in between
        results.put(("result", slot, result))


class LocalPool:
    """``n`` worker processes on this machine; a dead worker fails its file and is replaced."""

    def __init__(self, settings: Settings, threads: int, log_level: int) -> None:
        self.settings, self.threads, self.log_level = settings, threads, log_level
        self._ctx = mp.get_context("spawn")
        self._results: Any = None
        self._stop: Any = None
        self._procs: list[Any] = []
        self._queues: list[Any] = []
        self._busy: list[bool] = []
        self._closing = False

    def start(self, n: int) -> int:
        self._results, self._stop = self._ctx.Queue(), self._ctx.Event()
        self._procs, self._queues, self._busy = [None] * n, [None] * n, [False] * n
        for slot in range(n):
            self._spawn(slot)
        return n

    def _spawn(self, slot: int) -> None:
        q = self._ctx.Queue()
        args = (slot, q, self._results, self._stop, self.settings, self.threads, self.log_level)
        p = self._ctx.Process(
            target=_local_worker, args=args, name=f"detector-batch-w{slot + 1}", daemon=True
        )
        p.start()
        self._procs[slot], self._queues[slot] = p, q

    def submit(self, slot: int, task: Task) -> None:
        self._busy[slot] = True
        self._queues[slot].put(task)

    def wait(self, timeout: float) -> list[tuple[int, Result]]:
        out: list[tuple[int, Result]] = []
        try:
            msg = self._results.get(timeout=timeout)
            while True:
                kind, slot, payload = msg
                if kind == "init_error":
                    raise UserError(payload)
                self._busy[slot] = False
                out.append((slot, payload))
                msg = self._results.get_nowait()
        except queue.Empty:
            pass
        for slot, p in enumerate(self._procs):
            if self._busy[slot] and not p.is_alive():
                self._busy[slot] = False
                out.append((slot, failed(f"worker process died (exit code {p.exitcode})")))
                if not self._closing:
                    log.warning("worker w%d died (exit code %s); starting a new one", slot + 1, p.exitcode)
                    self._spawn(slot)
        return out

    def abort(self, grace: float = 20.0) -> list[tuple[int, Result]]:
        """Interrupt the files in progress; collect their results (closed outputs) for ``grace`` s."""
        self._closing = True
        out: list[tuple[int, Result]] = []
        if self._stop is None:
            return out
        self._stop.set()
        deadline = time.monotonic() + grace
        while any(self._busy) and time.monotonic() < deadline:
            out += self.wait(0.2)
        return out

    def close(self) -> None:
        self._closing = True
        if self._stop is not None:
            self._stop.set()
        for q in self._queues:
            if q is not None:
                q.put(None)
        deadline = time.monotonic() + 10.0
        for p in self._procs:
            if p is None:
                continue
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for q in [*self._queues, self._results]:
            if q is not None:
                q.cancel_join_thread()
                q.close()


# -- Ray ----------------------------------------------------------------------------------------------


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


class RayPool:
    """One Ray actor per worker, each reserving ``num_cpus`` (and ``num_gpus``) and keeping the model."""

    def __init__(
        self,
        settings: Settings,
        threads: int,
        log_level: int,
        *,
        address: str | None,
        num_gpus: float | None,
        local_cpus: int,
    ) -> None:
        self.settings, self.threads, self.log_level = settings, threads, log_level
        self.address, self.num_gpus, self.local_cpus = address, num_gpus, local_cpus
        self._ray: Any = None
        self._owns_runtime = False
        self._actors: list[Any] = []
        self._refs: dict[Any, int] = {}
        self._worked: set[int] = set()

    def start(self, n: int) -> int:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            kw: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING}
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:
                    self._owns_runtime = True
                    cpus = max(self.local_cpus, n * self.threads)
                    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=128 << 20, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(
                    f"cannot start Ray (address {self.address or 'local'}): {first_line(exc)}"
                ) from exc
        n = self._fit(n)
        self._actors = [self._spawn(slot) for slot in range(n)]
        return n

    def _fit(self, n: int) -> int:
        """How many actors the cluster can hold at once; never queue actors that cannot be placed."""
        cpus, gpus = self.threads, self.num_gpus or 0
        fits = 0
        for node in self._ray.nodes():
            if node.get("Alive"):
                res = node.get("Resources", {})
                k = int(res.get("CPU", 0) // cpus)
                fits += min(k, int(res.get("GPU", 0) // gpus)) if gpus else k
        if fits == 0:
            need = f"{cpus} CPUs" + (f" and {gpus:g} GPUs" if gpus else "")
            raise UserError(f"no Ray node has {need}; lower --num-cpus/--num-gpus")
        if fits < n:
            log.warning("the Ray cluster holds only %d workers of %d CPUs now; using %d", fits, cpus, fits)
        return min(n, fits)

    def _spawn(self, slot: int) -> Any:
        actor = self._ray.remote(WorkerCore).options(num_cpus=self.threads, num_gpus=self.num_gpus or 0)
        return actor.remote(self.settings, self.threads, f"w{slot + 1}", self.log_level)

    def submit(self, slot: int, task: Task) -> None:
        self._refs[self._actors[slot].process.remote(task)] = slot

    def wait(self, timeout: float) -> list[tuple[int, Result]]:
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out: list[tuple[int, Result]] = []
        for ref in ready:
            slot = self._refs.pop(ref)
            try:
                out.append((slot, ray.get(ref)))
                self._worked.add(slot)
            except ray.exceptions.RayActorError as exc:
                if slot not in self._worked:
                    raise UserError(f"Ray worker w{slot + 1} could not start: {_ray_cause(exc)}") from None
                log.warning("Ray worker w%d died; starting a new one", slot + 1)
                out.append((slot, failed(f"worker died: {_ray_cause(exc)}")))
                self._actors[slot] = self._spawn(slot)
            except ray.exceptions.RayError as exc:
                out.append((slot, failed(f"Ray error: {_ray_cause(exc)}")))
        return out

    def abort(self) -> list[tuple[int, Result]]:
        """Ray cannot interrupt a running actor method: finished results are kept, the rest killed."""
        out: list[tuple[int, Result]] = []
        if self._ray is None or not self._refs:
            return out
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        for ref in ready:
            slot = self._refs.pop(ref)
            try:
                out.append((slot, self._ray.get(ref)))
            except Exception as exc:
                out.append((slot, failed(f"Ray error: {_ray_cause(exc)}")))
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._refs = [], {}
        return out

    def close(self) -> None:
        if self._ray is None:
            return
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception as exc:
                log.debug("killing a Ray actor failed: %s", exc)
        self._actors, self._refs = [], {}
        if self._owns_runtime:
            self._ray.shutdown()


def _ray_cause(exc: BaseException) -> str:
    """The user-facing line of a Ray error: the innermost ``SomethingError: message`` it quotes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if "Error:" in line and not line.startswith(("ray.", "The actor"))]
    return (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:300]


def default_cores() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
