"""The MQTT side: one paho client (MQTT 5, TLS, persistent session) on the shared subscriptions.

- ``$share/<group>/ironlink/+/+/+/telemetry`` and ``.../status``: the broker hands each message to one
  member of the group, so N workers split the load.
- ``clean_start=False`` + ``SessionExpiryInterval``: while a worker restarts, the broker keeps its session
  and queues its QoS 1 messages.
- ``manual_ack=True`` + ``ReceiveMaximum``: the PUBACK goes out only after the data is in InfluxDB, and the
  broker stops sending once ``receive_maximum`` messages are unacknowledged: that is the back-pressure
  when InfluxDB is down (the rest waits in the broker, not in our memory).
- Acks carry the connection generation: a packet id from an earlier connection means nothing to the
  broker now (it redelivers those messages on the new connection; dedup skips them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ironlink_agent.ingest.config import BrokerConfig
from ironlink_agent.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float  # time.monotonic() at arrival
    done: bool = False  # acknowledged (or left for redelivery) by the pipeline


def subscriptions(group: str) -> list[str]:
    return [f"$share/{group}/ironlink/+/+/+/telemetry", f"$share/{group}/ironlink/+/+/+/status"]


class Consumer:
    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        deliver: Callable[[Message], None],
        metrics: IngestMetrics,
        *,
        retire: bool = False,
    ) -> None:
        self.config = config
        self.retire = retire
        self.session_present: bool | None = None
        self.client_id = client_id
        self._deliver = deliver
        self._metrics = metrics
        self._lock = threading.Lock()
        self.generation = 0
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if config.username is not None:
            self.client.username_pw_set(config.username, config.password)
        if config.tls is not None:
            tls = config.tls
            self.client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
            if tls.insecure_skip_verify:
                self.client.tls_insecure_set(True)
        self.client.reconnect_delay_set(
            max(1, round(config.backoff_initial_s)), max(1, round(config.backoff_max_s))
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def start(self) -> None:
        self.client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=self._properties(),
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect (the session and unacknowledged messages stay with the broker) and stop the thread.

        A retiring worker ends its session instead (session expiry 0 in the DISCONNECT)."""
        props = None
        if self.retire:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()
        self.connected.clear()
        self._metrics.set("broker_connected", 0)

    def ack(self, msg: Message) -> bool:
        """PUBACK ``msg`` if it came on the current connection; False if it will be redelivered instead."""
        with self._lock:
            if msg.generation != self.generation or not self.connected.is_set():
                return False
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)
        return True

    # -- paho callbacks (paho's thread) --------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            self._metrics.inc("connect_failures_total", reason=str(reason))
            log.warning("broker refused connection", extra={"event": "broker_refused", "reason": str(reason)})
            return
        with self._lock:
            self.generation += 1
        self.session_present = bool(getattr(flags, "session_present", False))
        self.connected.set()
        self.last_error = None
        self._metrics.set("broker_connected", 1)
        if self.retire:
            # Leave the share group (no new messages are routed to this session), keep what is queued.
            client.unsubscribe(subscriptions(self.config.share_group))
        else:
            opts = SubscribeOptions(qos=1)
            client.subscribe([(topic, opts) for topic in subscriptions(self.config.share_group)])
        log.info(
            "connected to broker",
            extra={
                "event": "broker_connected",
                "host": self.config.host,
                "port": self.config.port,
                "client_id": self.client_id,
                "session_present": self.session_present,
                "retire": self.retire,
            },
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        bad = [str(r) for r in reasons if r.is_failure]
        if bad:
            log.error("subscription refused", extra={"event": "subscribe_refused", "reasons": bad})
            self.last_error = f"subscription refused: {', '.join(bad)}"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self._metrics.set("broker_connected", 0)
        self.last_error = f"disconnected: {reason}"
        log.warning("disconnected from broker", extra={"event": "broker_disconnected", "reason": str(reason)})

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._deliver(
            Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.generation, time.monotonic())
        )
