"""Cloud uplink: spool rows → batches → MQTT v5 QoS 1 over TLS; rows are deleted only after PUBACK.

MQTT v5 rather than 3.1.1: with 3.1.1 a broker that refuses a publish (ACL) still answers PUBACK, or
Mosquitto drops it silently, so the agent would delete readings that never arrived. A v5 PUBACK carries
a reason code; >= 0x80 (e.g. 135 not authorized) means not delivered, and the rows stay in the spool.
A telemetry PUBACK 0x10 (no matching subscribers) is a success for MQTT but means nobody will store the
batch (no ingest session exists, e.g. right after a broker restart): the rows stay too, and are re-sent.

One paho client per connection attempt, with paho's own reconnect disabled: the agent owns the retry
policy (capped exponential backoff with full jitter), and a fresh client after each failure starts from
a clean state. Everything except paho's network thread runs on the asyncio loop; paho callbacks hop onto
the loop with ``call_soon_threadsafe``, so the in-flight bookkeeping needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from . import __version__
from .backoff import full_jitter
from .contract import topics
from .contract.model import Identity
from .contract.wire import encode_batch
from .metrics import Metrics
from .spool import Spool

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 30.0
HEALTHY_SESSION_S = 30.0
LINGER_S = 0.02
"""Coalescing window after a send: at low rates readings wait up to this long to share a batch (and its
PUBACK and spool delete), which cuts CPU per reading several-fold while staying well inside a 50 ms p99."""
AUTH_REASONS = {134: "bad user name or password", 135: "not authorized", 140: "bad authentication method"}
NO_MATCHING_SUBSCRIBERS = 0x10


class ConnectFailed(Exception):
    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


def tls_context(tls: Any) -> ssl.SSLContext:
    """CA-verified client context, TLS >= 1.2 (or the configured ``tls_version``), optional client cert."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    version = str(getattr(tls, "tls_version", None) or "1.2")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if version in ("1.3", "tlsv1.3") else ssl.TLSVersion.TLSv1_2
    if getattr(tls, "cert_file", None):
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if getattr(tls, "insecure_skip_verify", False):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(slots=True)
class _Inflight:
    lo: int
    hi: int
    count: int


@dataclass
class _Session:
    client: mqtt.Client
    connected_at: float
    inflight: dict[int, _Inflight] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lost_reason: str = ""
    delivered: bool = False  # a telemetry PUBACK succeeded on this connection


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
        attempt = 0
        while not stop.is_set():
            try:
                session = await self._connect()
            except ConnectFailed as exc:
                self.last_error = str(exc)
                self.metrics.inc("uplink_connect_failures_total", cause=exc.cause)
                delay = full_jitter(attempt, self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
                attempt += 1
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
                await _wait(stop, delay)
                continue
            try:
                await self._pump(session, stop)
            finally:
                await self._close_session(session, graceful=stop.is_set())
            # A connection that delivered telemetry or lasted a while was healthy: start backoff afresh.
            # One the broker dropped at once (ACL refusal, flapping) keeps growing the backoff.
            healthy = session.delivered or time.monotonic() - session.connected_at >= HEALTHY_SESSION_S
            attempt = 0 if healthy else attempt + 1
            if not stop.is_set():
                await _wait(stop, full_jitter(attempt, self.cfg.backoff_initial_s, self.cfg.backoff_max_s))

    def _new_client(self) -> mqtt.Client:
        """A paho client with TLS, credentials and the retained offline will; paho's reconnect is off."""
        cfg = self.cfg
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if cfg.tls is not None:
            try:
                client.tls_set_context(tls_context(cfg.tls))
            except (OSError, ssl.SSLError) as exc:
                raise ConnectFailed("tls_config", str(exc)) from exc
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        client.will_set(self.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        client.max_inflight_messages_set(cfg.max_inflight + 4)
        return client

    def _attach(
        self, client: mqtt.Client, session: _Session, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Future[ReasonCode | None], list[str]]:
        """Wire paho's callbacks (network thread) onto the loop; returns the CONNACK future and the
        error-log lines paho reports while connecting (TLS alerts surface only there)."""
        connack: asyncio.Future[ReasonCode | None] = loop.create_future()
        errors: list[str] = []

        def resolve(rc: ReasonCode | None) -> None:
            if not connack.done():
                connack.set_result(rc)

        def on_connect(_c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
            loop.call_soon_threadsafe(resolve, rc)

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
            loop.call_soon_threadsafe(resolve, None)  # before CONNACK: e.g. the server refused our cert
            loop.call_soon_threadsafe(self._on_lost, session, str(rc))

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
            loop.call_soon_threadsafe(self._on_puback, session, mid, rc)

        def on_log(_c: mqtt.Client, _u: Any, level: int, buf: str) -> None:
            if level == mqtt.MQTT_LOG_ERR:
                errors.append(buf)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_log = on_log  # removed once connected: paho calls it for every packet
        return connack, errors

    async def _connect(self) -> _Session:
        cfg = self.cfg
        client = self._new_client()
        session = _Session(client, time.monotonic())
        connack, errors = self._attach(client, session, asyncio.get_running_loop())
        try:
            await asyncio.to_thread(client.connect, cfg.host, cfg.port, cfg.keepalive_s, clean_start=True)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectFailed("tls_verify", f"certificate verify failed: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise ConnectFailed("tls", str(exc)) from exc
        except OSError as exc:
            raise ConnectFailed("network", f"{type(exc).__name__}: {exc}") from exc
        client.loop_start()
        try:
            rc = await asyncio.wait_for(connack, timeout=max(10.0, cfg.keepalive_s))
        except TimeoutError:
            await _teardown(client)
            raise ConnectFailed("timeout", "no CONNACK from the broker") from None
        client.on_log = None
        if rc is None:
            await _teardown(client)
            detail = errors[-1] if errors else "connection closed before CONNACK"
            tls = any(k in detail.lower() for k in ("ssl", "tls", "certificate", "alert"))
            raise ConnectFailed("tls" if tls else "network", f"broker closed the connection: {detail}")
        if rc.is_failure:
            await _teardown(client)
            cause = "auth" if rc.value in AUTH_REASONS else "connack"
            raise ConnectFailed(cause, f"CONNACK refused: {rc} ({rc.value})")
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
        return session

    def _on_lost(self, session: _Session, reason: str) -> None:
        if not session.lost.is_set():
            session.lost_reason = reason
            session.lost.set()
            self._wake.set()

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
        session.delivered = True
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
                    await _wait(self._wake, max(0.0, until - now))
                    continue
            await _wait(self._wake, max(0.0, min(next_status - now, 1.0)))

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
                await _wait(self._wake, deadline - time.monotonic())
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
                extra={"event": "uplink_disconnected", "reason": session.lost_reason},
            )
        self.connected = False
        self.metrics.set("uplink_connected", 0)
        self.metrics.set("uplink_inflight_batches", 0)
        session.inflight.clear()
        self._session = None
        await _teardown(session.client)


async def _teardown(client: mqtt.Client) -> None:
    with contextlib.suppress(Exception):
        client.disconnect()
    await asyncio.to_thread(client.loop_stop)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True when it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):  # no extra Task per wait, unlike wait_for in 3.11
            await event.wait()
    except TimeoutError:
        return False
    return True
