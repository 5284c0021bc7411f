"""A real RTSP camera for tests: Debian's GStreamer RTSP server serving an H.264 MP4 on loopback.

It runs in Debian's own Python (``/usr/bin/python3``, which has ``gi``), as a child process that
dies with the test (``PR_SET_PDEATHSIG``) and with a lifetime watchdog, like ``streaming.StreamServer``.
Each client that connects gets the clip from its start, in real time (the server paces RTP by the
clip's timestamps); ``stop()`` kills the server (the client's stream breaks), ``restart()`` serves
again on the same port and path. Needs ``python3-gi gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from streaming import HOST, StreamServer

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
host, port, mount, clip = sys.argv[1:5]
server = GstRtspServer.RTSPServer()
server.set_address(host)
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
launch = "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
factory.set_launch(launch.format(clip))
server.get_mount_points().add_factory("/" + mount, factory)
server.attach(None)
GLib.MainLoop().run()
"""


def rtsp_missing() -> str | None:
    """Why no RTSP server can run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    if done.returncode:
        return (
            "GStreamer's RTSP server is not installed (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)"
        )
    return None


class RtspServer(StreamServer):
    """``clip`` (H.264 in MP4) as an RTSP camera at ``rtsp://127.0.0.1:PORT/<mount>``."""

    def __init__(
        self, clip: Path, *, mount: str = "cam", lifetime: float = 90.0, ready_timeout: float = 15.0
    ):
        super().__init__(clip, lifetime=lifetime, ready_timeout=ready_timeout)
        self.mount = mount

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/{self.mount}"

    def command(self) -> list[str]:
        return [SYSTEM_PYTHON, "-c", SERVER, HOST, str(self.port), self.mount, str(self.clip)]
