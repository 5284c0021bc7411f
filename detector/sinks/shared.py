"""One sink written by several sources (a single ``--json`` file, a clips folder's ``events.jsonl``):
each source's lane gets its own handle; the real sink closes when the last handle does."""

from __future__ import annotations

from pathlib import Path

from detector.events import EventRecord
from detector.types import FileOutput, FrameResult, Sink


class _Handle:
    def __init__(self, owner: SharedSink) -> None:
        self._owner = owner
        self._closed = False

    @property
    def path(self) -> Path | None:
        sink = self._owner.sink
        return sink.path if isinstance(sink, FileOutput) else None

    @property
    def failed(self) -> str | None:
        sink = self._owner.sink
        return sink.failed if isinstance(sink, FileOutput) else None

    def write(self, result: FrameResult) -> None:
        self._owner.sink.write(result)

    def event(self, record: EventRecord) -> None:
        self._owner.sink.event(record)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.release()


class SharedSink:
    """``handle()`` gives each user its own sink; writes go through to ``sink``, which closes when
    every handle has closed."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.users = 0

    def handle(self) -> Sink:
        self.users += 1
        return _Handle(self)

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.sink.close()
