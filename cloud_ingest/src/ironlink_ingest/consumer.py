# SPDX-License-Identifier: Apache-2.0
"""The MQTT side: one MQTT 5 connection (TLS, persistent session) on the shared subscriptions.

The connection is the service library's transport (``ironlink_service.mqtt``): one fresh paho client per
connection, reconnects after the configured backoff (paho's own reconnect is off), TLS set up as
everywhere else.

- ``$share/<group>/ironlink/+/+/+/telemetry`` and ``.../status``: the broker hands each message to one
  member of the group, so N workers split the load.
- ``clean_start=False`` + ``SessionExpiryInterval``: while a worker restarts, the broker keeps its session
  and queues its QoS 1 messages.
- ``manual_ack=True`` + ``ReceiveMaximum``: the PUBACK goes out only after the data is in InfluxDB, and the
  broker stops sending once ``receive_maximum`` messages are unacknowledged: that is the back-pressure
  when InfluxDB is down (the rest waits in the broker, not in our memory).
- Acks carry the connection generation: a packet id from an earlier connection means nothing to the
  broker now (it redelivers those messages on the new connection; dedup skips them). The generation
  changes on paho's thread at CONNACK, before the first message of the new connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from ironlink_service.backoff import Backoff
from ironlink_service.mqtt import ClientOptions, ConnectFailed, Connection, maintain
from ironlink_service.supervisor import wait_any
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ironlink_ingest.config import BrokerConfig
from ironlink_ingest.metrics import IngestMetrics

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
        self.client: mqtt.Client | None = None  # the current connection's client

    def options(self) -> ClientOptions:
        c = self.config
        return ClientOptions(
            host=c.host,
            port=c.port,
            client_id=self.client_id,
            keepalive_s=c.keepalive_s,
            tls=c.tls,
            username=c.username,
            password=c.password,
            clean_start=False,
            session_expiry_s=c.session_expiry_s,
            receive_maximum=c.receive_maximum,
            manual_ack=True,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (reconnecting with backoff) until ``stop``; then disconnect: the session and
        unacknowledged messages stay with the broker. A retiring worker ends its session instead (session
        expiry 0 in the DISCONNECT)."""

        async def session(conn: Connection) -> None:
            try:
                await wait_any(stop, conn.lost)
            finally:
                self.connected.clear()
                self._metrics.set("broker_connected", 0)
            if conn.lost.is_set():
                self.last_error = f"disconnected: {conn.lost_reason}"
                log.warning(
                    "disconnected from broker",
                    extra={"event": "broker_disconnected", "reason": conn.lost_reason},
                )
                return
            props = None
            if self.retire:
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
            conn.client.disconnect(properties=props)

        try:
            await maintain(
                self.options(),
                session,
                stop,
                Backoff(initial=self.config.backoff_initial_s, cap=self.config.backoff_max_s),
                prepare=self._prepare,
                on_connected=self._on_connected,
                on_failure=self._connect_failed,
            )
        finally:
            self.connected.clear()
            self._metrics.set("broker_connected", 0)

    def ack(self, msg: Message) -> bool:
        """PUBACK ``msg`` if it came on the current connection; False if it will be redelivered instead."""
        with self._lock:
            if msg.generation != self.generation or not self.connected.is_set():
                return False
            client = self.client
        if msg.qos > 0 and client is not None:
            client.ack(msg.mid, msg.qos)
        return True

    # -- transport hooks -----------------------------------------------------------------------------

    def _prepare(self, client: mqtt.Client, _conn: Connection) -> None:
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _connect_failed(self, exc: ConnectFailed, delay: float) -> None:
        self.last_error = f"connect failed: {exc}"
        self._metrics.inc("connect_failures_total", cause=exc.cause)
        refused = exc.cause in ("auth", "connack")
        log.warning(
            "broker refused connection: %s" if refused else "broker connection failed: %s",
            exc,
            extra={
                "event": "broker_refused" if refused else "broker_connect_failed",
                "reason": exc.detail,
                "cause": exc.cause,
                "retry_in_s": round(delay, 2),
            },
        )

    # -- paho callbacks (paho's thread) --------------------------------------------------------------

    def _on_connected(self, conn: Connection) -> None:
        """At CONNACK, before any message of this connection: make it current, (un)subscribe."""
        client = conn.client
        with self._lock:
            self.generation += 1
            self.client = client
        self.session_present = conn.session_present
        conn.healthy = True  # accepted by the broker: a later loss starts the backoff afresh
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

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._deliver(
            Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.generation, time.monotonic())
        )
