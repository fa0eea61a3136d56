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
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..contract.model import Reading, Rejected
from ..metrics import Metrics
from . import mqtt_mapping

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 1000
"""Un-acked messages the local broker may have outstanding to us: the input's memory bound (typically well
under 1 MB; at most 1000 x the 256 KiB payload limit with hostile input). One group commit takes a few ms,
so this window allows far more than 20k messages/s; the ceiling is paho's per-message cost."""
SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the local broker keeps our session (and queues for us) while the agent is down."""


class AckingSink(Protocol):
    def accept(
        self,
        readings: list[Reading],
        ack: Callable[[], None] | None = None,
        *,
        key: bytes | None = None,
        redelivered: bool = False,
    ) -> None: ...
    def reject(self, rejected: Rejected, ack: Callable[[], None] | None = None) -> None: ...


class MqttInput:
    def __init__(
        self, cfg: Any, client_id: str, sink: AckingSink, metrics: Metrics, *, catalogue: Any = None
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.metrics = metrics
        self.catalogue = catalogue
        self.client_id = client_id
        self.connected = threading.Event()
        self._closing = False
        self._client: mqtt.Client | None = None

    def _build(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        for topic_map in self.cfg.topics:
            client.message_callback_add(topic_map.topic, self._handler(topic_map))
        client.on_message = self._on_unmatched
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if rc.is_failure:
            log.error(
                "local broker refused the connection: %s",
                rc,
                extra={"event": "mqtt_input_connack", "reason_code": rc.value, "host": self.cfg.host},
            )
            return
        self.connected.set()
        self.metrics.set("mqtt_input_connected", 1)
        subs = [(t.topic, SubscribeOptions(qos=t.qos)) for t in self.cfg.topics]
        if subs:
            client.subscribe(subs)
        log.info(
            "connected to local broker",
            extra={
                "event": "mqtt_input_connected",
                "host": self.cfg.host,
                "port": self.cfg.port,
                "session_present": bool(getattr(flags, "session_present", False)),
                "topics": [t.topic for t in self.cfg.topics],
            },
        )

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None
    ) -> None:
        self.connected.clear()
        self.metrics.set("mqtt_input_connected", 0)
        if not self._closing:
            log.warning(
                "local broker connection lost; paho reconnects",
                extra={"event": "mqtt_input_disconnected", "reason": str(rc)},
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
        client = self._build()
        self._client = client
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(self.cfg.host, self.cfg.port, keepalive=30, clean_start=False, properties=props)
        client.loop_start()
        try:
            await stop.wait()
        finally:
            self._closing = True
            await asyncio.to_thread(flush, timeout_s)
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self.metrics.set("mqtt_input_connected", 0)
