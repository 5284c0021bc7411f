"""A streaming response (MJPEG, Server-Sent Events) that holds a viewer slot, gives it back however
it ends, and can tell how long its viewer has taken no byte: what it sent, less what the connection
still holds (asyncio's buffer and, on Linux, the kernel's send queue). Judged by its sends alone, an
event stream that never reads would look alive for minutes while the kernel's buffers take its
records."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

try:  # Linux: the kernel says how much of a connection's output its peer has not taken yet
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # == SIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover - not Linux: streams are timed by their sends
    _OUTQ = None


def queued_bytes(transport: Any) -> int | None:
    """Bytes written to a connection that its peer has not taken: asyncio's buffer plus the kernel's
    send queue. None where the kernel does not say (then a stream is judged by its sends alone)."""
    sock = transport.get_extra_info("socket")
    if _OUTQ is None or sock is None:
        return None
    try:
        (kernel,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))
    except (OSError, ValueError):
        return None
    return int(transport.get_write_buffer_size()) + int(kernel)


class Held(StreamingResponse):
    """A stream that gives its viewer slot back however it ends (done, disconnected, cut off), and
    notes what it got out (``sent_at``, ``sent_bytes``), so the watchdog can tell when its viewer
    last took a byte (``taken_at``) and cut off stuck ones."""

    def __init__(
        self, content: AsyncIterator[bytes], release: Callable[[], None], held: set[Held], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._release = release
        self._held = held
        self.client: tuple[str, int] | None = None
        self.sent_at = 0.0
        self.sent_bytes = 0  # body bytes handed to the connection
        self.taken = 0  # of those, the most the viewer had taken at a check
        self.taken_at = 0.0

    def stuck_for(self, now: float, queued: int | None) -> float:
        """Seconds since the viewer last took a byte. ``queued``: bytes it has not taken (None:
        unknown; then since the last send returned, which the kernel's buffers delay: an event stream
        that never reads could send for minutes into them)."""
        if queued is None:
            return now - self.sent_at
        taken = self.sent_bytes - queued
        if queued == 0 or taken > self.taken:  # nothing waiting, or the viewer took some of it
            self.taken, self.taken_at = max(taken, self.taken), now
        return now - self.taken_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self.client = tuple(scope["client"]) if scope.get("client") else None
        self.sent_at = self.taken_at = loop.time()

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent_bytes += len(message.get("body", b""))
            await send(message)
            self.sent_at = loop.time()

        self._held.add(self)
        try:
            await super().__call__(scope, receive, noted)
        finally:
            self._held.discard(self)
            self._release()
