"""Where batch inputs run: worker processes on this machine, or Ray actors, each keeping one model.

Both pools give the dispatcher the same calls: ``start(wanted) -> workers``, ``submit(job)``,
``wait(timeout) -> [(job, result)]``, ``abort() -> [(job, result)]`` (stop what runs, keep what
finished) and ``close()``.

- ``LocalPool``: ``concurrent.futures.ProcessPoolExecutor`` (spawn), whose initializer loads the
  model once per worker. A worker that dies breaks that executor: its files fail, a new one starts.
- ``RayPool``: ``ray.util.ActorPool`` of ``Worker`` actors, each reserving ``num_cpus`` (and GPUs);
  a dead actor fails its file and is replaced.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from detector.batch.jobs import Job, JobResult, failed
from detector.batch.worker import Worker, WorkerInitError, init_process, process_job
from detector.errors import UserError
from detector.settings import Settings
from detector.text import first_line

log = logging.getLogger(__name__)

RAY_MISSING = "ray is not installed; pip install -e '.[ray]'"


class Pool(Protocol):
    def start(self, wanted: int | None) -> int: ...

    def submit(self, job: Job) -> None: ...

    def wait(self, timeout: float) -> list[tuple[Job, JobResult]]: ...

    def abort(self) -> list[tuple[Job, JobResult]]: ...

    def close(self) -> None: ...


class LocalPool:
    """Worker processes on this machine (spawn), each loading the model once."""

    def __init__(self, settings: Settings, threads: int, log_level: int) -> None:
        self.settings, self.threads, self.log_level = settings, threads, log_level
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._counter = self._ctx.Value("i", 0)
        self._executor: cf.ProcessPoolExecutor | None = None
        self._futures: dict[cf.Future[JobResult], Job] = {}
        self._workers = 1

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            self._workers,
            mp_context=self._ctx,
            initializer=init_process,
            initargs=(self.settings, self.threads, self.log_level, self._stop, self._counter),
        )

    def start(self, wanted: int | None) -> int:
        self._workers = max(1, wanted or 1)
        self._executor = self._new_executor()
        return self._workers

    def submit(self, job: Job) -> None:
        assert self._executor is not None
        self._futures[self._executor.submit(process_job, job)] = job

    def wait(self, timeout: float) -> list[tuple[Job, JobResult]]:
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Job, JobResult]] = []
        broken = False
        for future in done:
            job = self._futures.pop(future)
            try:
                out.append((job, future.result()))
            except WorkerInitError as exc:
                raise UserError(str(exc)) from None
            except BrokenProcessPool:
                broken = True
                out.append((job, failed("worker process died")))
        if broken and self._executor is not None:
            log.warning("a worker process died; its files failed; starting new workers")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
        return out

    def abort(self, grace: float = 20.0) -> list[tuple[Job, JobResult]]:
        """Ask the running files to stop (their outputs close); collect their results for ``grace`` s."""
        self._stop.set()
        out: list[tuple[Job, JobResult]] = []
        deadline = time.monotonic() + grace
        while self._futures and time.monotonic() < deadline:
            try:
                out += self.wait(0.2)
            except UserError:
                break
        return out

    def close(self) -> None:
        self._stop.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


def _ray_cause(exc: BaseException) -> str:
    """The user-facing line of a Ray error: the innermost ``SomethingError: message`` it quotes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if "Error:" in line and not line.startswith(("ray.", "The actor"))]
    return (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:300]


class RayPool:
    """``Worker`` actors in a ``ray.util.ActorPool``, on a local Ray runtime or an existing cluster."""

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
        self._pool: Any = None
        self._owns_runtime = False
        self._running: dict[Any, Job] = {}  # object ref -> job
        self._actors: list[Any] = []

    def start(self, wanted: int | None) -> int:
        ray = self._ray = import_ray()
        from ray.util import ActorPool

        if not ray.is_initialized():
            kw: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING}
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:
                    self._owns_runtime = True
                    cpus = max(self.local_cpus, (wanted or 1) * self.threads)
                    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=128 << 20, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(
                    f"cannot start Ray (address {self.address or 'local'}): {first_line(exc)}"
                ) from exc
        n = self._fit(wanted)
        self._pool = ActorPool([self._spawn() for _ in range(n)])
        return n

    def _fit(self, wanted: int | None) -> int:
        """How many actors the cluster holds at once (never queue actors that cannot be placed)."""
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
        if wanted is not None and fits < wanted:
            log.warning("the Ray cluster holds only %d workers of %d CPUs now; using %d", fits, cpus, fits)
        return fits if wanted is None else min(wanted, fits)

    def _spawn(self) -> Any:
        actor_class = self._ray.remote(Worker).options(num_cpus=self.threads, num_gpus=self.num_gpus or 0)
        actor = actor_class.remote(self.settings, self.threads, f"w{len(self._actors) + 1}", self.log_level)
        self._actors.append(actor)
        return actor

    def submit(self, job: Job) -> None:
        def call(actor: Any, j: Job) -> Any:
            ref = actor.process.remote(j)
            self._running[ref] = j
            return ref

        self._pool.submit(call, job)

    def wait(self, timeout: float) -> list[tuple[Job, JobResult]]:
        if not self._pool.has_next():
            time.sleep(min(timeout, 0.1))
            return []
        try:
            result: JobResult = self._pool.get_next_unordered(timeout=timeout)
        except TimeoutError:
            return []
        except self._ray.exceptions.RayError as exc:
            return self._failed(exc)
        ref = next(r for r, job in self._running.items() if str(job.input) == result.input)
        return [(self._running.pop(ref), result)]

    def _failed(self, exc: BaseException) -> list[tuple[Job, JobResult]]:
        """An actor died (or its call failed): find its job, fail it, and replace a dead actor."""
        ray = self._ray
        ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        for ref in ready:
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayActorError:
                job = self._running.pop(ref)
                log.warning("Ray worker died on %s; starting a new one", job.input.name)
                self._pool.push(self._spawn())
                return [(job, failed(f"worker died: {_ray_cause(exc)}"))]
            except ray.exceptions.RayError as err:
                return [(self._running.pop(ref), failed(f"Ray error: {_ray_cause(err)}"))]
        raise UserError(f"Ray worker could not start: {_ray_cause(exc)}")

    def abort(self) -> list[tuple[Job, JobResult]]:
        """Ray cannot interrupt a running actor method: finished results are kept, the rest killed."""
        out: list[tuple[Job, JobResult]] = []
        if self._ray is None or not self._running:
            return out
        ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        for ref in ready:
            job = self._running.pop(ref)
            try:
                out.append((job, self._ray.get(ref)))
            except Exception as exc:
                out.append((job, failed(f"Ray error: {_ray_cause(exc)}")))
        self.close()
        return out

    def close(self) -> None:
        if self._ray is None:
            return
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception as exc:
                log.debug("killing a Ray actor failed: %s", exc)
        self._actors, self._pool = [], None
        self._running.clear()
        if self._owns_runtime:
            self._ray.shutdown()
            self._ray = None
