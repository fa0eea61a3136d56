# SPDX-License-Identifier: Apache-2.0
"""A machine-side MQTT publisher on the local broker that counts the PUBACKs it got."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class LocalPublisher:
    def __init__(self, port: int, client_id: str = "test-machine", max_inflight: int = 100) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.lock = threading.Lock()
        self.acked = 0  # PUBACKs received (mids wrap at 65535, so count, not a set)
        self.sent = 0
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("publisher could not connect to the local broker")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self.lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> int:
        info = self.client.publish(topic, payload, qos=qos)
        self.sent += 1
        return info.mid

    @property
    def ack_count(self) -> int:
        with self.lock:
            return self.acked

    def wait_acked(self, n: int | None = None, timeout: float = 30.0) -> int:
        target = self.sent if n is None else n
        deadline = time.monotonic() + timeout
        while self.ack_count < target and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.ack_count

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
