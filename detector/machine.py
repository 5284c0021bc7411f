"""Facts about this machine and process that several layers need: CPUs, the cache folder, thread caps."""

from __future__ import annotations

import os
from pathlib import Path

THREADS_ENV = "DETECTOR_INFERENCE_THREADS"  # caps inference threads (set by `detector batch` workers)
CACHE_ENV = "DETECTOR_CACHE"


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
