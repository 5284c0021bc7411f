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
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from streaming import HOST, _die_with_parent, free_port, is_listening

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


class RtspServer:
    def __init__(
        self, clip: Path, *, mount: str = "cam", lifetime: float = 90.0, ready_timeout: float = 15.0
    ):
        if not clip.is_file():
            raise FileNotFoundError(clip)
        self.clip = clip
        self.mount = mount
        self.lifetime = lifetime
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._watchdog: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/{self.mount}"

    def start(self) -> RtspServer:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        cmd = [SYSTEM_PYTHON, "-c", SERVER, HOST, str(self.port), self.mount, str(self.clip)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=_die_with_parent,
        )
        self._watchdog = threading.Timer(self.lifetime, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        deadline = time.monotonic() + self.ready_timeout
        while not is_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self._errors()
                self.stop()
                raise RuntimeError(f"the RTSP server did not start on {self.url}: {err[-500:]}")
            time.sleep(0.02)
        return self

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if self._watchdog is not None:
            self._watchdog.cancel()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> RtspServer:
        self.stop()
        deadline = time.monotonic() + 10
        while is_listening(self.port) and time.monotonic() < deadline:  # the old socket goes away
            time.sleep(0.05)
        return self.start()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
