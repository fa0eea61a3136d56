# SPDX-License-Identifier: Apache-2.0
"""Local MQTT input: subscribe, map each message to a Reading (or a dead letter), ack after the commit.

Durability hinges on three paho/MQTT v5 settings:
- ``manual_ack=True``: the PUBACK to the local broker is sent only from the spool's post-commit hook,
  so a message is acknowledged only once the reading it carried is on disk.
- A persistent session (``clean_start=False`` with a session expiry): messages the agent had received
  but not acked when it died, and messages published while it was down, are redelivered on reconnect.
- Redelivery de-duplication: a crash between the spool commit and the ack makes the broker redeliver
  (DUP flag, same packet id). Each message's key (packet id, topic, payload) is committed with its
  readings, so the spool acks such a redelivery instead of spooling it again under new message ids.
- ``ReceiveMaximum``: the broker never has more than this many un-acked messages out to the agent. When
  the spool writer falls behind, acks slow down, and the broker stops sending — back-pressure without an
  unbounded queue in the agent.

The connection is the service library's MQTT transport (``ironlink_service.mqtt``): one fresh client per
connection, reconnects after the shared backoff (paho's own reconnect is off). An ack that comes after
its connection was lost goes to that closed client and is dropped; the broker redelivers the message on
the next connection (same packet id, DUP), and the spool acks that redelivery.

``Client.ack()`` is called from the spool writer thread. That is safe with ``loop_start()``: paho queues
the PUBACK on a deque and wakes its network thread through its socket pair; the network thread does
the write (paho 2.2 ``_packet_queue``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from ironlink_contract.model import Rejected
from ironlink_service.backoff import Backoff
from ironlink_service.mqtt import ClientOptions, ConnectFailed, Connection, maintain
from ironlink_service.supervisor import wait_any
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..metrics import Metrics
from ..sink import Sink
from . import mqtt_mapping

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 1000
"""Un-acked messages the local broker may have outstanding to us: the input's memory bound (typically well
under 1 MB; at most 1000 x the 256 KiB payload limit with hostile input). One group commit takes a few ms,
so this window allows far more than 20k messages/s; the ceiling is paho's per-message cost."""
SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the local broker keeps our session (and queues for us) while the agent is down."""
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
KEEPALIVE_S = 30


class MqttInput:
    def __init__(
        self, cfg: Any, client_id: str, sink: Sink, metrics: Metrics, *, catalogue: Any = None
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.metrics = metrics
        self.catalogue = catalogue
        self.client_id = client_id
        self.connected = threading.Event()
        self._closing = False

    def _options(self) -> ClientOptions:
        """MQTT v5, persistent session, manual acks, receive maximum (see the module docstring)."""
        return ClientOptions(
            host=self.cfg.host,
            port=self.cfg.port,
            client_id=self.client_id,
            keepalive_s=KEEPALIVE_S,
            username=self.cfg.username,
            password=self.cfg.password,
            clean_start=False,
            session_expiry_s=SESSION_EXPIRY_S,
            receive_maximum=RECEIVE_MAXIMUM,
            manual_ack=True,
        )

    def _prepare(self, client: mqtt.Client, _conn: Connection) -> None:
        for topic_map in self.cfg.topics:
            client.message_callback_add(topic_map.topic, self._handler(topic_map))
        client.on_message = self._on_unmatched

    def _on_connected(self, conn: Connection) -> None:
        """paho's thread, at CONNACK: subscribe before any message of the session is handled."""
        self.connected.set()
        self.metrics.set("mqtt_input_connected", 1)
        subs = [(t.topic, SubscribeOptions(qos=t.qos)) for t in self.cfg.topics]
        if subs:
            conn.client.subscribe(subs)
        conn.healthy = True  # a CONNACK from the local broker: the next loss starts the backoff afresh
        log.info(
            "connected to local broker",
            extra={
                "event": "mqtt_input_connected",
                "host": self.cfg.host,
                "port": self.cfg.port,
                "session_present": conn.session_present,
                "topics": [t.topic for t in self.cfg.topics],
            },
        )

    def _connect_failed(self, exc: ConnectFailed, delay: float) -> None:
        refused = exc.cause in ("auth", "connack")  # the broker answered: a config error, not an outage
        log.log(
            logging.ERROR if refused else logging.WARNING,
            "local broker connection failed: %s",
            exc,
            extra={
                "event": "mqtt_input_connack" if refused else "mqtt_input_connect_failed",
                "cause": exc.cause,
                "host": self.cfg.host,
                "retry_in_s": round(delay, 2),
            },
        )

    def _on_unmatched(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        client.ack(msg.mid, msg.qos)

    def _handler(self, topic_map: Any) -> Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]:
        def on_message(client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if self._closing:
                return  # not acked: the broker redelivers it to the next run
            mid, qos = msg.mid, msg.qos

            def ack() -> None:
                client.ack(mid, qos)

            try:
                result = mqtt_mapping.map_message(topic_map, msg.topic, msg.payload, catalogue=self.catalogue)
            except Exception as exc:  # a mapping bug must not stop the input
                log.exception("mapping failed", extra={"event": "mqtt_mapping_error", "topic": msg.topic})
                result = Rejected.of("mapping_error", str(exc), f"mqtt:{msg.topic}", msg.payload)
            if isinstance(result, Rejected):
                self.sink.reject(result, ack if qos else None)
                return
            readings = result if isinstance(result, list) else [result]
            if not qos:
                self.sink.accept(readings)
                return
            key = hashlib.blake2b(
                b"%d\0%s\0%s" % (mid, msg.topic.encode(), msg.payload), digest_size=16
            ).digest()
            self.sink.accept(readings, ack, key=key, redelivered=bool(msg.dup))

        return on_message

    async def run(self, stop: asyncio.Event, flush: Callable[[float], bool], timeout_s: float = 5.0) -> None:
        """Run until ``stop``; then stop taking messages, wait for queued commits (their acks), disconnect."""
        self._closing = False

        async def session(conn: Connection) -> None:
            try:
                await wait_any(stop, conn.lost)
                if stop.is_set():
                    self._closing = True
                    await asyncio.to_thread(flush, timeout_s)  # the acks go out before the disconnect
            finally:
                self.connected.clear()
                self.metrics.set("mqtt_input_connected", 0)
            if not stop.is_set():
                log.warning(
                    "local broker connection lost; reconnecting",
                    extra={"event": "mqtt_input_disconnected", "reason": conn.lost_reason},
                )

        try:
            await maintain(
                self._options(),
                session,
                stop,
                Backoff(initial=BACKOFF_INITIAL_S, cap=BACKOFF_MAX_S),
                prepare=self._prepare,
                on_connected=self._on_connected,
                on_failure=self._connect_failed,
            )
        finally:
            if not self._closing:  # stopped while not connected: commits still complete (acks are dropped)
                self._closing = True
                await asyncio.to_thread(flush, timeout_s)
            self.metrics.set("mqtt_input_connected", 0)
