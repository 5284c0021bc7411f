"""Facts about this machine and process that several layers need: CPUs, the cache folder, thread caps."""

from __future__ import annotations

import logging
import os
from pathlib import Path

THREADS_ENV = "DETECTOR_INFERENCE_THREADS"  # caps inference threads (set by `detector batch` workers)
CACHE_ENV = "DETECTOR_CACHE"
MAX_OPEN_FILES = 1 << 20  # where the hard limit is unlimited

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cache_dir() -> Path:
    """Where exported models and OpenVINO compile caches live ($DETECTOR_CACHE, else ~/.cache/detector)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "detector")


def inference_threads() -> int | None:
    """The thread cap from $DETECTOR_INFERENCE_THREADS, or None for "use the machine"."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def limit_threads(n: int) -> None:
    """Size every thread pool of this process to ``n`` (OpenVINO, torch/OpenMP, BLAS, OpenCV)."""
    import sys

    import cv2

    os.environ[THREADS_ENV] = str(n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    cv2.setNumThreads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (a run's recording, clips, store
    and web connections all take descriptors; the soft limit is often 1024 of a far higher hard one).
    Returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not on a POSIX system
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit from %d to %d: %s", soft, wanted, exc)
    return int(soft)
