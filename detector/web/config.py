"""What ``--serve`` asks for, checked before anything starts: the address, and a token wherever the
address is not loopback (from ``--serve-token``, the config, or ``$DETECTOR_SERVE_TOKEN``)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from detector.errors import UserError
from detector.settings import Settings
from detector.settings.serve import parse_bind

TOKEN_ENV = "DETECTOR_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; any other name or address reaches beyond this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    host: str
    port: int
    token: str | None
    width: int = 1280
    max_viewers: int = 16
    jpeg_quality: int = 80
    stall_timeout: float = 5.0

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def serve_config(settings: Settings) -> ServeConfig | None:
    """The web view's configuration, or None without ``--serve``. ``UserError`` (exit 2) for a
    non-loopback address without a token."""
    serve = settings.serve
    if serve.bind is None:
        return None
    host, port = parse_bind(serve.bind)
    token = serve.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise UserError(
            f"--serve {serve.bind} is reachable from other machines: give a token with --serve-token "
            f"or ${TOKEN_ENV} (every request must then carry it), or serve on 127.0.0.1"
        )
    return ServeConfig(
        host=host,
        port=port,
        token=token,
        width=serve.width,
        max_viewers=serve.max_viewers,
        jpeg_quality=serve.jpeg_quality,
        stall_timeout=settings.stall_timeout,
    )
