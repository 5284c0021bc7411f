"""The ``serve`` section: the web view of a run (``--serve [HOST:]PORT``) and how it is guarded.

``parse_bind`` is the one reader of ``[HOST:]PORT``: a bare port binds 127.0.0.1, ``[::1]:8080``
is IPv6. Whether a token is needed (a non-loopback host) is decided when the run starts, since
the token may also come from ``$DETECTOR_SERVE_TOKEN`` (``detector.web.config``).
"""

from __future__ import annotations

from pydantic import field_validator

from detector.settings.base import RUN, SERVE, StrictModel, option

LOOPBACK = "127.0.0.1"


def parse_bind(text: str) -> tuple[str, int]:
    """``"8080"`` -> ``("127.0.0.1", 8080)``; ``"0.0.0.0:8080"``, ``"[::1]:8080"``, ``"localhost:0"``.

    Port 0 picks a free port (the run logs the address). Raises ``ValueError`` with the reason.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = LOOPBACK, text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, e.g. [::1]:8080 (got {text!r})")
    if not host:
        raise ValueError(f"give a host before ':' or a bare port (got {text!r})")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected [HOST:]PORT with a port 0-65535, got {text!r}")
    return host, int(port_text)


class ServeSettings(StrictModel):
    """The live web view: page, MJPEG, events, status, metrics and health."""

    bind: str | None = option(
        None,
        "serve a live web view, events, metrics and health on [HOST:]PORT; a bare port binds 127.0.0.1",
        flag="--serve", commands=(RUN, SERVE), metavar="[HOST:]PORT",
        default_text="off (detector serve: 8080)",
    )  # fmt: skip
    token: str | None = option(
        None,
        "every web request must carry it (Authorization: Bearer, or ?token=); needed to bind a "
        "non-loopback host",
        flag="--serve-token", commands=(RUN, SERVE), metavar="TOKEN", default_text="$DETECTOR_SERVE_TOKEN",
        min_length=1, repr=False,
    )  # fmt: skip
    width: int = option(
        1280, "widest streamed frame: wider ones are scaled down before JPEG encoding",
        flag="--serve-width", commands=(RUN,), ge=64, le=7680,
    )  # fmt: skip
    max_viewers: int = option(
        16, "video streams at once (and, apart, event streams); the next one gets 503",
        flag="--serve-max-viewers", commands=(RUN, SERVE), ge=1, le=1000,
    )  # fmt: skip
    jpeg_quality: int = option(80, "JPEG quality of the streamed frames", flag=False, ge=10, le=100)

    @field_validator("bind", mode="before")
    @classmethod
    def _check_bind(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):  # ``bind: 8080`` in YAML
            v = str(v)
        if isinstance(v, str):
            parse_bind(v)
        return v
