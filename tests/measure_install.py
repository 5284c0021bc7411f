"""What installing the package takes on disk, and how much of it a CPU-only torch would save; not a test.

    python tests/measure_install.py [--extra dev] [--extra ray]

Walks the installed distributions from ``detector``'s requirements (and the extras named), summing
the files each one's RECORD lists, and prints the biggest. The CUDA part is what a CPU wheel of torch
leaves out: the ``nvidia-*``, ``cuda-*`` and ``triton`` distributions torch pulls in, and torch's own
CUDA libraries (``torch/lib/*cuda*``, ``*nvshmem*``, ``*nvrtc*``). The CPU-only estimate is the total
less that part (PyTorch's CPU wheels hold the same ``libtorch_cpu`` as the CUDA ones).
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

CUDA_DISTS = re.compile(r"^(nvidia-|cuda-|triton$)")
CUDA_LIBS = re.compile(r"^torch/lib/.*(cuda|nvshmem|nvrtc)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: list[str]) -> set[str]:
    """The installed distributions ``root`` needs (with ``extras``), itself included."""
    seen: set[str] = set()
    todo = [(root, tuple(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = canonical(dist.metadata["Name"])
        if key in seen and not wanted:
            continue
        seen.add(key)
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            dep = re.split(r"[\s\[<>=!~(]", spec.strip(), maxsplit=1)[0]
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            if extra and extra.group(1) not in wanted:
                continue
            if not extra and marker.strip() and not _marker_ok(marker):
                continue
            dep_extras = re.search(r"\[([^\]]+)\]", spec)
            todo.append((dep, tuple(x.strip() for x in dep_extras.group(1).split(",")) if dep_extras else ()))
    return seen


def _marker_ok(marker: str) -> bool:
    """Whether a requirement's environment marker holds on this machine."""
    from packaging.markers import Marker

    return bool(Marker(marker.strip()).evaluate({"extra": ""}))


def sizes(dist_name: str) -> tuple[int, int]:
    """(bytes the distribution's files take, bytes of them that are CUDA libraries)."""
    dist = metadata.distribution(dist_name)
    total = cuda = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if not path.is_file():
            continue
        size = path.stat().st_size
        total += size
        if CUDA_LIBS.match(str(f)):
            cuda += size
    if CUDA_DISTS.match(canonical(dist.metadata["Name"])):
        cuda = total
    return total, cuda


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--extra", action="append", default=[])
    args = parser.parse_args()
    rows = sorted(((*sizes(d), d) for d in closure("detector", args.extra)), reverse=True)
    total, cuda = sum(r[0] for r in rows), sum(r[1] for r in rows)
    for size, cuda_part, name in rows[:12]:
        note = f" ({cuda_part / 1e6:.0f} MB of it CUDA)" if cuda_part else ""
        print(f"{size / 1e6:8.0f} MB  {name}{note}")
    print(f"{len(rows)} distributions, {total / 1e9:.2f} GB; CUDA {cuda / 1e9:.2f} GB; CPU-only about "
          f"{(total - cuda) / 1e9:.2f} GB")  # fmt: skip


if __name__ == "__main__":
    main()
