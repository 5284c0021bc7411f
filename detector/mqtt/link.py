"""The connection to the broker, through paho-mqtt (imported here only, so only with ``--mqtt``).

``start`` connects and waits for the broker's answer: a broker that cannot be reached, or that refuses
the connection or the credentials, is a ``UserError`` (one line, exit 2) before anything runs. The
last will makes the broker publish ``{prefix}/available`` = ``offline`` if the process dies. Once
started, paho's network thread reconnects by itself, with a backoff from 1 s doubling to 30 s;
``on_connected`` is called after every (re)connection, so that the retained state is published
again (a restarted broker may have lost it). The password is used here and never logged: the broker
is named by its URL without credentials.

What the broker acknowledged is counted (``acknowledged``: a PUBACK for QoS 1, a PUBCOMP for QoS 2;
for QoS 0, written to the socket, since nothing more is ever known): a frozen broker takes messages
into the socket's buffers and acknowledges none, and the summary says so.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import ssl
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from detector.errors import UserError
from detector.mqtt.topics import Topics
from detector.settings.mqtt import MqttSettings, parse_mqtt_url

log = logging.getLogger(__name__)

PASSWORD_ENV = "DETECTOR_MQTT_PASSWORD"
BACKOFF = (1, 30)  # seconds: the first reconnect wait, and the longest
_CREDENTIALS = ("bad user name or password", "not authorized", "bad username or password")


def broker_name(host: str, port: int, tls: bool, prefix: str) -> str:
    """The broker as messages name it: ``mqtt://host:port/prefix``, never with credentials."""
    return f"{'mqtts' if tls else 'mqtt'}://{f'[{host}]' if ':' in host else host}:{port}/{prefix}"


class BrokerLink:
    """One client connection for the whole run."""

    def __init__(self, settings: MqttSettings, *, connect_timeout: float = 10.0) -> None:
        assert settings.url is not None
        address = parse_mqtt_url(settings.url)
        self.settings = settings
        self.prefix = address.prefix
        self.tls = address.tls or settings.tls
        self.host, self.port = address.host, address.port or (8883 if self.tls else 1883)
        self.name = broker_name(self.host, self.port, self.tls, self.prefix)  # the one connected to
        self.connect_timeout = connect_timeout
        self.will_topic = Topics(self.prefix).available
        self.connected = threading.Event()
        self.on_connected: Callable[[], None] | None = None
        self.on_message: Callable[[str, bytes], None] | None = None
        self.subscriptions: list[str] = []
        self.reconnects = 0
        self.handed = 0  # messages ``publish`` handed to paho
        self.acknowledged = 0  # ... of which the broker acknowledged
        self._acks = threading.Lock()  # never held while calling paho (it calls on_publish holding its own)
        self._unacked: set[int] = set()  # mids handed, not acknowledged yet
        self._early: set[int] = set()  # mids acknowledged before ``publish`` had noted them
        self._answered = threading.Event()  # the broker's first CONNACK
        self._refused: str | None = None
        self._closing = False
        self._ever_connected = False
        self._warned = False
        client_id = settings.client_id or f"detector-{uuid.uuid4().hex[:8]}"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        username = address.username or settings.username
        password = address.password if address.password is not None else settings.password
        if password is None:
            password = os.environ.get(PASSWORD_ENV) or None
        if username is not None or password is not None:
            self.client.username_pw_set(username or "", password)
        if self.tls:
            self.client.tls_set(ca_certs=settings.ca_certs)
        self.client.will_set(self.will_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(*BACKOFF)
        # paho's own queue (sent, not yet acknowledged, or waiting across a reconnect): bounded too, with
        # room for a burst of states after a reconnect; past it publish refuses (the outbox counts it)
        self.client.max_queued_messages_set(2 * settings.outbox + 1000)
        self.client.max_inflight_messages_set(100)
        self.client.connect_timeout = connect_timeout
        self.client.on_connect = _logged(self._on_connect)
        self.client.on_disconnect = _logged(self._on_disconnect)
        self.client.on_message = _logged(self._on_message)
        self.client.on_publish = _logged(self._on_publish)

    # -- start and stop -----------------------------------------------------------------------------------
    def start(self) -> BrokerLink:
        """Connect and wait for the broker's answer (``UserError`` if it cannot be had)."""
        try:
            self.client.connect(self.host, self.port, keepalive=self.settings.keepalive)
        except ssl.SSLCertVerificationError as exc:
            raise UserError(
                f"MQTT broker {self.name}: its TLS certificate is not trusted ({exc.verify_message}); give "
                "the CA that signed it with mqtt.ca_certs"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UserError(f"MQTT broker {self.name} cannot be reached: {reason}") from None
        self.client.loop_start()
        if not self._answered.wait(self.connect_timeout) or self._refused is not None:
            refused = self._refused
            self._stop_loop()
            if refused is None:
                raise UserError(f"MQTT broker {self.name} did not answer within {self.connect_timeout:g} s")
            hint = ""
            if refused.lower() in _CREDENTIALS:
                hint = f": check the user name and password (the URL's, mqtt.username, ${PASSWORD_ENV})"
            raise UserError(f"MQTT broker {self.name} refused the connection ({refused}){hint}")
        log.info("MQTT: publishing to %s", self.name)
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained) and disconnect; waits at most ``timeout`` for the broker."""
        self._closing = True
        if self.connected.is_set():
            info = self.client.publish(self.will_topic, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)  # sent last: everything queued before it is out too
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()

    # -- publishing ---------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> bool:
        """Hand one message to paho; False when it is lost (paho's queue is full, or QoS 0 while the
        connection is down). QoS 1 and 2 messages wait in paho's queue across a reconnect."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        taken = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0
        )
        if taken:
            with self._acks:
                self.handed += 1
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acknowledged += 1
                else:
                    self._unacked.add(info.mid)
        return taken

    # -- paho's network thread --------------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            if not self._answered.is_set():
                self._refused = str(reason)
                self._answered.set()
            elif not self._warned:
                self._warned = True
                log.warning("MQTT: %s refused to reconnect (%s); trying again", self.name, reason)
            return
        self._answered.set()
        if self._ever_connected:
            self.reconnects += 1
            log.warning("MQTT: reconnected to %s", self.name)
        self._ever_connected, self._warned = True, False
        for topic in self.subscriptions:
            client.subscribe(topic, qos=0)
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._closing:
            log.warning("MQTT: lost %s (%s); reconnecting", self.name, reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._acks:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.acknowledged += 1
            else:  # before ``publish`` returned (or the last ``offline``, which is not counted)
                self._early.add(mid)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))


def _logged(callback: Callable[..., None]) -> Callable[..., None]:
    """A callback for paho's network thread that logs what it raises: paho 2 re-raises a callback's
    exception, which ends that thread (nothing sent, no reconnecting, for the rest of the run)."""

    @functools.wraps(callback)
    def call(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("MQTT: handling the broker's %s failed", callback.__name__.lstrip("_"))

    return call
