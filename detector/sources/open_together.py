"""``open_together``: open several sources at once, each on a thread of its own, while the calling
thread waits where a Ctrl-C reaches it at once.

FFmpeg connecting to a stream holds its thread until the connect timeout, and no signal handler runs
in a thread stuck in native code; so the main thread only waits here, and a source that opens after
the caller has given up (a Ctrl-C) is closed by its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait

from detector.sources.base import Source


def open_together(openers: Sequence[tuple[str, Callable[[], Source]]]) -> list[Source]:
    """Run every ``(name, open)`` at the same time; the sources in order. If one fails, the others
    are closed and its error is raised; if the wait is interrupted, those open so far are closed."""
    lock = threading.Lock()
    abandoned = False
    futures: list[Future[Source]] = [Future() for _ in openers]

    def open_one(opener: Callable[[], Source], future: Future[Source]) -> None:
        try:
            source = opener()
        except BaseException as exc:
            future.set_exception(exc)
            return
        with lock:
            if not abandoned:
                future.set_result(source)
                return
        source.close()

    for (name, opener), future in zip(openers, futures, strict=True):
        threading.Thread(target=open_one, args=(opener, future), name=f"open-{name}", daemon=True).start()
    try:
        wait(futures)
    except BaseException:  # Ctrl-C: do not wait for a connect that may take its whole timeout
        with lock:
            abandoned = True
        for future in futures:
            if future.done() and future.exception() is None:
                future.result().close()
        raise
    opened = [f.result() for f in futures if f.exception() is None]
    failed = next((f.exception() for f in futures if f.exception() is not None), None)
    if failed is not None:
        for source in opened:
            source.close()
        raise failed
    return opened
