"""One sink written by several sources (a single ``--json`` file for a multi-source run): each source's
lane gets its own handle; the real sink closes when the last handle does."""

from __future__ import annotations

from typing import Any

from detector.sinks.base import FrameResult, Sink


class _Handle:
    def __init__(self, owner: _Shared) -> None:
        self._owner = owner
        self._closed = False

    def write(self, result: FrameResult) -> None:
        self._owner.sink.write(result)

    def event(self, record: dict[str, Any]) -> None:
        self._owner.sink.event(record)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.release()


class _Shared:
    def __init__(self, sink: Sink, users: int) -> None:
        self.sink = sink
        self.open = users

    def release(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.sink.close()


def shared_handles(sink: Sink, users: int) -> list[Sink]:
    """``users`` handles on ``sink``: writes go through; it closes when every handle has closed."""
    owner = _Shared(sink, users)
    return [_Handle(owner) for _ in range(users)]
