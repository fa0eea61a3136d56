# SPDX-License-Identifier: Apache-2.0
"""Cloud-side ingest stand-in: a persistent-session QoS 1 subscriber that records and decodes batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from ironlink_contract import wire
from paho.mqtt.enums import CallbackAPIVersion
from testsupport.polling import wait_until


@dataclass
class Received:
    t: float  # time.time() at arrival
    topic: str
    payload: bytes
    docs: list[dict] = field(default_factory=list)
    error: str | None = None


class CloudSubscriber:
    """Subscribes to ``topic`` on the cloud broker's plain listener with a persistent session.

    The session (clean_session=False, fixed client id) survives a cloud broker stop/start because that broker
    runs with persistence, so nothing published while the subscriber is reconnecting is missed.
    """

    def __init__(self, port: int, username: str, password: str, topic: str = "ironlink/#") -> None:
        self.port = port
        self.topic = topic
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-ingest-{port}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)
            self.subscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        rec = Received(time.time(), msg.topic, bytes(msg.payload))
        if msg.topic.endswith("/telemetry"):
            try:
                rec.docs = list(wire.decode_batch(rec.payload).documents())
            except wire.WireError as exc:
                rec.error = str(exc)
        with self.lock:
            self.received.append(rec)

    def start(self, timeout: float = 10.0) -> CloudSubscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise RuntimeError("cloud subscriber could not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- views ----------------------------------------------------------------------------------------

    def batches(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.topic.endswith("/telemetry")]

    def docs(self) -> list[dict]:
        return [d for b in self.batches() for d in b.docs]

    def message_ids(self) -> set[str]:
        return {d["message_id"] for d in self.docs()}

    def has(self, topic: str, payload: bytes) -> bool:
        """Whether this exact message arrived (a sentinel, see ``Stack.cloud_sentinel``)."""
        with self.lock:
            return any(r.topic == topic and r.payload == payload for r in self.received)

    def bad_batches(self) -> list[Received]:
        return [b for b in self.batches() if b.error]

    def wait_for(self, predicate: Callable[[CloudSubscriber], bool], timeout: float, what: str = "") -> None:
        try:
            wait_until(lambda: predicate(self), timeout, f"the cloud to see {what or 'the expected data'}")
        except AssertionError as exc:
            counts = f"{len(self.message_ids())} unique readings in {len(self.batches())} batches"
            raise AssertionError(f"{exc} ({counts})") from None

    def wait_quiet(self, quiet_s: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no batch arrived for ``quiet_s`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                last = self.received[-1].t if self.received else 0.0
            if time.time() - last >= quiet_s:
                return
            time.sleep(0.05)
