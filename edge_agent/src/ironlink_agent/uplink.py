# SPDX-License-Identifier: Apache-2.0
"""Cloud uplink: spool rows → batches → MQTT v5 QoS 1 over TLS; rows are deleted only after PUBACK.

MQTT v5 rather than 3.1.1: with 3.1.1 a broker that refuses a publish (ACL) still answers PUBACK, or
Mosquitto drops it silently, so the agent would delete readings that never arrived. A v5 PUBACK carries
a reason code; >= 0x80 (e.g. 135 not authorized) means not delivered, and the rows stay in the spool.
A telemetry PUBACK 0x10 (no matching subscribers) is a success for MQTT but means nobody will store the
batch (no ingest session exists, e.g. right after a broker restart): the rows stay too, and are re-sent.

The connection itself (client, TLS, one fresh client per attempt, reconnect with the shared backoff) is
the service library's MQTT transport (``ironlink_service.mqtt``): a connection that delivered telemetry
or lasted ``HEALTHY_SESSION_S`` resets the backoff, one the broker dropped at once keeps growing it.
Everything except paho's network thread runs on the asyncio loop; paho callbacks hop onto the loop with
``call_soon_threadsafe``, so the in-flight bookkeeping needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from ironlink_contract import topics
from ironlink_contract.model import Identity
from ironlink_contract.wire import encode_batch
from ironlink_service.backoff import Backoff
from ironlink_service.mqtt import ClientOptions, ConnectFailed, Connection, Will, maintain
from ironlink_service.supervisor import wait_event
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from . import __version__
from .metrics import Metrics
from .spool import Spool

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 30.0
LINGER_S = 0.02
"""Coalescing window after a send: at low rates readings wait up to this long to share a batch (and its
PUBACK and spool delete), which cuts CPU per reading several-fold while staying well inside a 50 ms p99."""
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(slots=True)
class _Inflight:
    lo: int
    hi: int
    count: int


@dataclass
class _Session:
    """The uplink's bookkeeping for one transport connection."""

    conn: Connection
    inflight: dict[int, _Inflight] = field(default_factory=dict)

    @property
    def client(self) -> mqtt.Client:
        return self.conn.client

    @property
    def lost(self) -> asyncio.Event:
        return self.conn.lost


class Uplink:
    """Forwards the spool to the cloud broker. ``run`` returns after ``stop`` is set and the flush ended."""

    def __init__(
        self,
        cfg: Any,
        identity: Identity,
        spool: Spool,
        metrics: Metrics,
        *,
        shutdown_timeout_s: float = 5.0,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self.spool = spool
        self.metrics = metrics
        self.shutdown_timeout_s = shutdown_timeout_s
        self.status_extra = status_extra
        self.telemetry_topic = topics.telemetry_topic(identity)
        self.status_topic = topics.status_topic(identity)
        self.client_id = cfg.client_id or identity.mqtt_client_id
        self.started = time.monotonic()
        self.connected = False
        self.last_error: str | None = None
        self.last_success: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._session: _Session | None = None
        self._last_send = 0.0
        self._wake_seq = 0  # the pump needs a commit wake-up only once spool.last_seq reaches this
        self._notify_pending = False
        metrics.set("uplink_connected", 0)

    # -- called from other threads ---------------------------------------------------------------

    def notify_committed(self, last_seq: int) -> None:
        """Spool writer hook: new rows are durable. Thread-safe.

        Wakes the pump only when it can act on the rows (it is not holding a partial batch for its
        linger/delay deadline, or the batch is now full) and no wake-up is already on its way: at low
        rates that saves an event-loop round trip per commit."""
        if self._notify_pending or last_seq < self._wake_seq:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._notify_pending = True
            try:
                loop.call_soon_threadsafe(self._on_notify)
            except RuntimeError:
                self._notify_pending = False

    def _on_notify(self) -> None:
        self._notify_pending = False
        self._wake.set()

    # -- main loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            await self._run(stop)
        finally:
            waker.cancel()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _run(self, stop: asyncio.Event) -> None:
        pending: list[_Session] = []  # the attempt in progress (attempts are sequential)

        def prepare(client: mqtt.Client, conn: Connection) -> None:
            session = _Session(conn)
            pending[:] = [session]
            loop = asyncio.get_running_loop()

            def on_publish(_c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
                loop.call_soon_threadsafe(self._on_puback, session, mid, rc)

            client.on_publish = on_publish

        async def run_session(conn: Connection) -> None:
            session = pending.pop()
            self._connected(session)
            try:
                await self._pump(session, stop)
            finally:
                await self._close_session(session, graceful=stop.is_set())

        def on_lost(_reason: str) -> None:
            self._wake.set()

        await maintain(
            self._options,
            run_session,
            stop,
            Backoff(initial=self.cfg.backoff_initial_s, cap=self.cfg.backoff_max_s),
            prepare=prepare,
            on_lost=on_lost,
            on_failure=self._connect_failed,
        )

    def _options(self) -> ClientOptions:
        """TLS, credentials and the retained offline will; a clean session (nothing to resume: the spool
        is the agent's state)."""
        cfg = self.cfg
        return ClientOptions(
            host=cfg.host,
            port=cfg.port,
            client_id=self.client_id,
            keepalive_s=cfg.keepalive_s,
            tls=cfg.tls,
            username=cfg.username,
            password=cfg.password,
            clean_start=True,
            will=Will(self.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True),
            max_inflight=cfg.max_inflight + 4,  # + room for status publishes
        )

    def _connect_failed(self, exc: ConnectFailed, delay: float) -> None:
        self.last_error = str(exc)
        self.metrics.inc("uplink_connect_failures_total", cause=exc.cause)
        log.error(
            "cloud broker connection failed: %s",
            exc,
            extra={
                "event": "uplink_connect_failed",
                "cause": exc.cause,
                "host": self.cfg.host,
                "port": self.cfg.port,
                "retry_in_s": round(delay, 2),
            },
        )

    def _connected(self, session: _Session) -> None:
        cfg = self.cfg
        self._session = session
        self.connected = True
        self.last_error = None
        self.metrics.set("uplink_connected", 1)
        log.info(
            "connected to cloud broker",
            extra={
                "event": "uplink_connected",
                "host": cfg.host,
                "port": cfg.port,
                "client_id": self.client_id,
            },
        )

    def _on_lost(self, session: _Session, reason: str) -> None:
        session.conn.mark_lost(reason)  # wakes the pump (on_lost)

    def _on_puback(self, session: _Session, mid: int, rc: ReasonCode) -> None:
        batch = session.inflight.pop(mid, None)
        self.metrics.set("uplink_inflight_batches", len(session.inflight))
        self._wake.set()
        if batch is not None and rc.value == NO_MATCHING_SUBSCRIBERS:
            self._no_consumer(session, batch.count)
            return
        if rc.is_failure:
            topic = self.telemetry_topic if batch is not None else self.status_topic
            self.metrics.inc("uplink_publish_failures_total", reason=str(rc.value))
            self.last_error = f"publish to {topic} refused by broker: {rc} ({rc.value})"
            log.error(
                "cloud broker refused a publish (%s); readings kept in the spool",
                rc,
                extra={
                    "event": "uplink_publish_refused",
                    "reason_code": rc.value,
                    "reason": str(rc),
                    "topic": topic,
                    "readings": batch.count if batch is not None else 0,
                },
            )
            # Refusals are usually ACL errors (Mosquitto also closes the connection after a 135):
            # reconnect with backoff instead of hammering the broker.
            self._on_lost(session, f"publish refused: {rc}")
            return
        if batch is None:
            return  # a status message
        session.conn.healthy = True  # a delivery: this connection resets the backoff
        self.spool.delete_range(batch.lo, batch.hi)
        self.last_success = time.time()
        self.metrics.inc("readings_forwarded_total", batch.count)
        self.metrics.set("uplink_last_success_timestamp_seconds", self.last_success)

    def _no_consumer(self, session: _Session, readings: int) -> None:
        """The broker took the batch but had no subscriber for it: it is gone there, so keep the rows and
        retry on a new connection after the usual backoff (the ingest resubscribes when it reconnects)."""
        self.metrics.inc("uplink_publish_failures_total", reason=str(NO_MATCHING_SUBSCRIBERS))
        self.last_error = f"no consumer subscribed to {self.telemetry_topic} (PUBACK 0x10)"
        log.warning(
            "cloud broker has no subscriber for telemetry (is the ingest connected?); readings kept",
            extra={
                "event": "uplink_no_subscribers",
                "reason_code": NO_MATCHING_SUBSCRIBERS,
                "topic": self.telemetry_topic,
                "readings": readings,
            },
        )
        self._on_lost(session, "no matching subscribers")

    # -- sending ---------------------------------------------------------------------------------

    async def _pump(self, session: _Session, stop: asyncio.Event) -> None:
        cfg = self.cfg
        limit, max_bytes = cfg.batch_max_readings, cfg.batch_max_bytes
        delay_s = cfg.batch_max_delay_ms / 1000
        newest_first = cfg.order != "oldest_first"
        watermark = await self._begin(session)
        next_status = time.monotonic() + STATUS_INTERVAL_S
        backlog_pos, live_pos = 0, watermark
        backlog_upto = self._send_newest(session, watermark) if newest_first else watermark
        hold_since: float | None = None
        while not (stop.is_set() or session.lost.is_set()):
            now = time.monotonic()
            next_status = self._status_due(session, now, next_status)
            self._wake.clear()
            # With every in-flight slot taken only a PUBACK (or a full batch) lets us send.
            slots = len(session.inflight) < cfg.max_inflight
            self._wake_seq = 0 if slots else self._full_at(live_pos if newest_first else backlog_pos)
            if slots:
                # Live rows (newer than the reconnect watermark) first; in oldest_first mode there is only
                # the one FIFO cursor. Nagle-style: send at once when nothing is in flight (low latency at
                # low rates); otherwise let a partial batch grow until full or batch_max_delay_ms old.
                pos = live_pos if newest_first else backlog_pos
                last = self.spool.last_seq
                waiting = last - pos  # rows committed after pos (an upper bound: evictions leave gaps)
                if waiting > 0:
                    # Decide on the count alone; rows are read only when a batch is actually sent, so
                    # a held batch costs nothing per wake-up.
                    hold_since = now if hold_since is None else hold_since
                    full = waiting >= limit or waiting * self.spool.avg_row_bytes() >= max_bytes
                    idle = not session.inflight and now - self._last_send >= min(LINGER_S, delay_s)
                    if full or idle or now - hold_since >= delay_s:
                        hold_since = None
                        rows = self.spool.read_after(pos, limit, max_bytes)
                        new_pos = rows[-1][0] if rows else last
                        if newest_first:
                            live_pos = new_pos
                        else:
                            backlog_pos = new_pos
                        if rows:
                            self._send(session, rows)
                        continue
                else:
                    hold_since = None
                if newest_first and backlog_pos < backlog_upto:
                    backlog = self.spool.read_after(backlog_pos, limit, max_bytes, upto=backlog_upto)
                    backlog_pos = backlog[-1][0] if backlog else backlog_upto
                    if backlog:
                        self._send(session, backlog)
                        continue
                if hold_since is not None:
                    until = hold_since + delay_s
                    if not session.inflight:
                        until = min(until, self._last_send + LINGER_S)
                    # Commits need not wake us before the deadline unless they fill the batch.
                    self._wake_seq = self._full_at(live_pos if newest_first else backlog_pos)
                    await wait_event(self._wake, max(0.0, until - now))
                    continue
            await wait_event(self._wake, max(0.0, min(next_status - now, 1.0)))

    async def _begin(self, session: _Session) -> int:
        """Publish the online status; return the reconnect watermark (the spool's last seq)."""
        self._publish_status(session)
        # Rows delivered on the last connection whose deletes are still queued must not go out again.
        await asyncio.to_thread(self.spool.flush_deletes, 2.0)
        return self.spool.last_seq

    def _full_at(self, pos: int) -> int:
        """The spool seq at which rows after ``pos`` fill a batch (by count or estimated bytes)."""
        cfg = self.cfg
        per_batch = min(cfg.batch_max_readings, cfg.batch_max_bytes // self.spool.avg_row_bytes())
        return pos + max(1, per_batch)

    def _status_due(self, session: _Session, now: float, next_status: float) -> float:
        """Republish the retained online status every STATUS_INTERVAL_S; returns the next due time."""
        if now < next_status:
            return next_status
        self._publish_status(session)
        return now + STATUS_INTERVAL_S

    def _send_newest(self, session: _Session, watermark: int) -> int:
        """After (re)connect the newest batch goes first (live state); returns the backlog's upper seq."""
        newest = self.spool.read_newest(watermark, self.cfg.batch_max_readings, self.cfg.batch_max_bytes)
        if not newest:
            return watermark
        self._send(session, newest)
        return newest[0][0] - 1

    def _send(self, session: _Session, rows: list[tuple[int, bytes]]) -> None:
        payload = encode_batch(self.identity, self.spool.spool_id, rows)
        info = session.client.publish(self.telemetry_topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._on_lost(session, f"publish failed: {mqtt.error_string(info.rc)}")
            return
        session.inflight[info.mid] = _Inflight(rows[0][0], rows[-1][0], len(rows))
        self._last_send = time.monotonic()
        self.metrics.set("uplink_inflight_batches", len(session.inflight))

    def status_document(self, state: str = "online") -> dict[str, Any]:
        snap = self.spool.snapshot()
        doc: dict[str, Any] = {
            "state": state,
            "version": __version__,
            "ts": int(time.time() * 1000),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "spool_depth": snap.depth,
            "oldest_reading_age_s": None if snap.oldest_age_s is None else round(snap.oldest_age_s, 1),
            "hostname": self.identity.hostname,
        }
        if self.status_extra is not None:
            doc.update(self.status_extra())
        return doc

    def _publish_status(self, session: _Session, state: str = "online") -> mqtt.MQTTMessageInfo:
        doc = self.status_document(state) if state == "online" else {"state": state}
        return session.client.publish(self.status_topic, json.dumps(doc), qos=1, retain=True)

    async def _close_session(self, session: _Session, *, graceful: bool) -> None:
        """On stop: wait (bounded) for in-flight PUBACKs, publish retained offline, disconnect cleanly."""
        if graceful and not session.lost.is_set():
            deadline = time.monotonic() + self.shutdown_timeout_s
            while session.inflight and not session.lost.is_set() and time.monotonic() < deadline:
                self._wake.clear()
                await wait_event(self._wake, deadline - time.monotonic())
            if session.inflight:
                log.warning(
                    "shutdown: batches still unacknowledged stay in the spool",
                    extra={"event": "uplink_flush_incomplete", "batches": len(session.inflight)},
                )
            info = self._publish_status(session, "offline")
            with contextlib.suppress(Exception):
                await asyncio.to_thread(info.wait_for_publish, 1.0)
        elif session.lost.is_set():
            self.metrics.inc("uplink_disconnects_total")
            log.warning(
                "cloud broker connection lost; readings stay in the spool",
                extra={"event": "uplink_disconnected", "reason": session.conn.lost_reason},
            )
        self.connected = False
        self.metrics.set("uplink_connected", 0)
        self.metrics.set("uplink_inflight_batches", 0)
        session.inflight.clear()
        self._session = None  # the transport disconnects and stops the client
