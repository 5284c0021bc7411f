"""A real MQTT broker for tests: Debian's ``mosquitto`` on a free loopback port, with a password file,
and a paho subscriber that records every message.

``Broker`` starts it (``.ci/run`` installs the package), ``stop()`` kills it (the clients see the
connection drop), ``restart()`` starts a fresh one on the same port (no persistence: what it retained
is gone, as after a real broker restart). Every wait is bounded; the broker dies with the test process.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from streaming import _die_with_parent, free_port, is_listening

USER, PASSWORD = "detector", "S3cret-mqtt-pw"


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    return exe


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for 127.0.0.1 (openssl): (ca.pem, cert, key)."""
    ca, ca_key, cert, key = (folder / n for n in ("ca.pem", "ca.key", "server.pem", "server.key"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=detector test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", folder / "server.csr",
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", folder / "server.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "1", "-extfile", ext],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


class Broker:
    def __init__(
        self, folder: Path, user: str = USER, password: str = PASSWORD, *, tls: bool = False
    ) -> None:
        self.exe = mosquitto_exe()
        self.folder = folder
        self.port = free_port()
        self.user, self.password = user, password
        passwd = folder / "passwd"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwd), user, password], check=True, capture_output=True,
            timeout=30,
        )  # fmt: skip
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
            f"user {getpass.getuser()}\n"  # as root it would become user mosquitto, who cannot read tmp
            "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            + ("cafile {}\ncertfile {}\nkeyfile {}\n".format(*make_certificates(folder)) if tls else "")
        )
        self.tls = tls
        self.ca = folder / "ca.pem" if tls else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - the broker's, kept open
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not is_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {(self.folder / 'mosquitto.log').read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() when it arrived

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho client subscribed to ``#`` that keeps every message, in order of arrival."""

    def __init__(self, broker: Broker, topic: str = "#") -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{free_port()}")
        self.client.username_pw_set(broker.user, broker.password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self._ready.set())
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the test subscriber could not connect")
        time.sleep(0.2)  # the SUBACK

    def _on_message(self, client: object, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(message.topic, bytes(message.payload), bool(message.retain), time.time())
            )

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def topics(self) -> set[str]:
        with self._lock:
            return {m.topic for m in self.messages}

    def wait_for(self, what: str, ready: object, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:g} s; topics: {sorted(self.topics())}")
            time.sleep(0.02)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
