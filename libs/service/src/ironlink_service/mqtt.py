# SPDX-License-Identifier: Apache-2.0
"""The one MQTT transport: client construction, the TLS context and reconnect-with-backoff.

Every Ironlink daemon (the agent's uplink and local MQTT input, the cloud ingest's consumer) builds its
paho client here, in the spirit of mqtt-io's ``AbstractMQTTClient``: callers describe the connection in a
:class:`ClientOptions` and keep only their protocol logic (publish/PUBACK bookkeeping, subscriptions, acks).

Policy, decided once:
- **paho's internal reconnect is never used.** :func:`maintain` owns the retry loop: one fresh client per
  connection attempt (a clean state after any failure) and the delays of :class:`~ironlink_service.backoff.
  Backoff` (bounded, jittered), reset after a healthy connection. paho's own ``reconnect_delay_set`` is
  neither jittered nor observable, so a fleet that lost its broker would come back in lock step.
- **TLS** always through :func:`tls_context`: TLS >= 1.2, CA-verified with hostname check, optional client
  certificate, optional CRL checked for the peer's leaf certificate.
- Everything but paho's network thread runs on the asyncio loop: paho callbacks that the transport owns
  (CONNACK, disconnect) hop onto the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .backoff import Backoff
from .supervisor import wait_event

log = logging.getLogger(__name__)

MQTTv5 = mqtt.MQTTv5
MQTTv311 = mqtt.MQTTv311
HEALTHY_SESSION_S = 30.0
"""A connection that lasted this long (or that the caller marked healthy) restarts the backoff afresh."""
AUTH_REASONS = {134: "bad user name or password", 135: "not authorized", 140: "bad authentication method"}
_TLS_REFUSAL = ("alert", "certificate")
"""Words of paho's error log that show the broker refused us in the TLS handshake (its alert, e.g. "unknown
ca", "certificate revoked"). A bare EOF during the handshake names no reason: that is counted as network."""


class TlsSettings(Protocol):
    """What :func:`tls_context` reads: the daemons' TLS config dataclasses have these fields.

    Optional extras, read when present: ``ca_data`` (PEM text instead of ``ca_file``), ``crl_file``,
    ``tls_version`` ("1.2" or "1.3", the minimum)."""

    @property
    def ca_file(self) -> Path | None: ...
    @property
    def cert_file(self) -> Path | None: ...
    @property
    def key_file(self) -> Path | None: ...
    @property
    def insecure_skip_verify(self) -> bool: ...


@dataclass(frozen=True)
class Will:
    topic: str
    payload: str | bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class ClientOptions:
    """One connection, as the caller needs it (protocol, session, credentials, will)."""

    host: str
    port: int
    client_id: str
    protocol: int = MQTTv5
    keepalive_s: int = 30
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    clean_start: bool = True
    session_expiry_s: int | None = None  # MQTT v5: how long the broker keeps a persistent session
    receive_maximum: int | None = None  # MQTT v5: un-acked messages the broker may have out to us
    manual_ack: bool = False
    max_inflight: int | None = None
    will: Will | None = None

    @property
    def connect_timeout_s(self) -> float:
        return max(10.0, float(self.keepalive_s))


class ConnectFailed(Exception):
    """A connection attempt failed; ``cause`` is a short label for metrics (tls_config, tls_verify, tls,
    network, timeout, auth, connack)."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Client context: TLS >= 1.2 (or ``tls_version``), CA file or CA data, hostname check, optional
    client certificate, optional CRL (checked for the peer's leaf: our PKIs revoke leaves, not CAs)."""
    ca_file = tls.ca_file
    ca_data: str | None = getattr(tls, "ca_data", None)
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None, cadata=ca_data
    )
    version = str(getattr(tls, "tls_version", None) or "1.2").lower()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if version in ("1.3", "tlsv1.3") else ssl.TLSVersion.TLSv1_2
    if tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    crl_file: Path | None = getattr(tls, "crl_file", None)
    if crl_file:
        ctx.load_verify_locations(cafile=str(crl_file))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def new_client(opts: ClientOptions) -> mqtt.Client:
    """A configured paho client (not connected). paho's reconnect is off: :func:`maintain` retries."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=opts.client_id,
        protocol=opts.protocol,
        clean_session=None if opts.protocol == MQTTv5 else opts.clean_start,
        manual_ack=opts.manual_ack,
        reconnect_on_failure=False,
    )
    if opts.tls is not None:
        try:
            client.tls_set_context(tls_context(opts.tls))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectFailed("tls_config", str(exc)) from exc
    if opts.username:
        client.username_pw_set(opts.username, opts.password)
    if opts.will is not None:
        w = opts.will
        client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
    if opts.max_inflight is not None:
        client.max_inflight_messages_set(opts.max_inflight)
    return client


def connect_properties(opts: ClientOptions) -> Properties | None:
    """CONNECT properties (MQTT v5 only): session expiry and receive maximum."""
    if opts.protocol != MQTTv5 or (opts.session_expiry_s is None and opts.receive_maximum is None):
        return None
    props = Properties(PacketTypes.CONNECT)
    if opts.session_expiry_s is not None:
        props.SessionExpiryInterval = opts.session_expiry_s
    if opts.receive_maximum is not None:
        props.ReceiveMaximum = opts.receive_maximum
    return props


@dataclass
class Connection:
    """One established connection. ``lost`` is set (on the loop) when it ends for any reason; callers set
    ``healthy`` once it did useful work (a delivery, a subscription), which resets the backoff."""

    client: mqtt.Client
    connected_at: float
    session_present: bool = False
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lost_reason: str = ""
    healthy: bool = False
    on_lost: Callable[[str], None] | None = None

    def mark_lost(self, reason: str) -> None:
        """Loop thread only. The first reason wins; ``on_lost`` runs once."""
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        if self.on_lost is not None:
            self.on_lost(reason)


Prepare = Callable[[mqtt.Client, Connection], None]
OnConnected = Callable[[Connection], None]


async def connect(
    opts: ClientOptions,
    *,
    prepare: Prepare | None = None,
    on_connected: OnConnected | None = None,
    on_lost: Callable[[str], None] | None = None,
) -> Connection:
    """Connect a fresh client and wait for a successful CONNACK; raise :class:`ConnectFailed` otherwise.

    ``prepare(client, connection)`` runs before the connect: attach ``on_message``/``on_publish``/... there
    (the transport owns ``on_connect``, ``on_disconnect`` and, until CONNACK, ``on_log``).
    ``on_connected(connection)`` runs on paho's network thread at a successful CONNACK, before any message
    of the new connection is delivered: subscribe and mark the connection current there, so that a
    message a persistent session queued is never seen as belonging to the previous connection."""
    loop = asyncio.get_running_loop()
    client = new_client(opts)
    conn = Connection(client, time.monotonic(), on_lost=on_lost)
    connack: asyncio.Future[ReasonCode | None] = loop.create_future()
    errors: list[str] = []

    def resolve(result: ReasonCode | None) -> None:
        if not connack.done():
            connack.set_result(result)

    def on_connect(_c: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Properties | None) -> None:
        conn.session_present = bool(getattr(flags, "session_present", False))
        if on_connected is not None and not rc.is_failure:
            on_connected(conn)
        loop.call_soon_threadsafe(resolve, rc)

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        loop.call_soon_threadsafe(resolve, None)  # before CONNACK: e.g. the server refused our cert
        loop.call_soon_threadsafe(conn.mark_lost, str(rc))

    def on_log(_c: mqtt.Client, _u: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            errors.append(buf)  # TLS alerts from the server surface only here

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_log = on_log
    if prepare is not None:
        prepare(client, conn)
    await _open_socket(client, opts)
    client.loop_start()
    try:
        rc = await asyncio.wait_for(connack, timeout=opts.connect_timeout_s)
    except TimeoutError:
        await close(client)
        raise ConnectFailed("timeout", "no CONNACK from the broker") from None
    except BaseException:  # cancelled while connecting: do not leak paho's thread
        await close(client)
        raise
    client.on_log = None  # paho calls it for every packet once connected
    if rc is None:
        await close(client)
        # paho logs a generic "not connected" after the error that explains the failure: report the TLS
        # alert if there is one, else the first error (the cause; later ones are its consequences).
        tls_errors = [e for e in errors if any(k in e.lower() for k in _TLS_REFUSAL)]
        cause = "tls" if tls_errors else "network"
        detail = (tls_errors or errors or ["connection closed before CONNACK"])[0]
        raise ConnectFailed(cause, f"broker closed the connection: {detail}")
    if rc.is_failure:
        await close(client)
        cause = "auth" if rc.value in AUTH_REASONS else "connack"
        raise ConnectFailed(cause, f"CONNACK refused: {rc} ({rc.value})")
    return conn


async def _open_socket(client: mqtt.Client, opts: ClientOptions) -> None:
    """TCP + TLS handshake and CONNECT (in a thread: paho's connect blocks); failures named by cause."""
    try:
        await asyncio.to_thread(
            client.connect,
            opts.host,
            opts.port,
            opts.keepalive_s,
            clean_start=opts.clean_start if opts.protocol == MQTTv5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(opts),
        )
    except ssl.SSLCertVerificationError as exc:
        raise ConnectFailed("tls_verify", f"certificate verify failed: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise ConnectFailed("tls", str(exc)) from exc
    except OSError as exc:
        raise ConnectFailed("network", f"{type(exc).__name__}: {exc}") from exc


async def close(client: mqtt.Client, properties: Properties | None = None) -> None:
    """Disconnect (if still connected) and stop paho's network thread. Idempotent."""
    with contextlib.suppress(Exception):
        client.disconnect(properties=properties)
    await asyncio.to_thread(client.loop_stop)


Session = Callable[[Connection], Awaitable[None]]
OnFailure = Callable[[ConnectFailed, float], None]


async def maintain(
    opts: ClientOptions | Callable[[], ClientOptions],
    session: Session,
    stop: asyncio.Event,
    backoff: Backoff,
    *,
    prepare: Prepare | None = None,
    on_connected: OnConnected | None = None,
    on_lost: Callable[[str], None] | None = None,
    on_failure: OnFailure | None = None,
    healthy_after_s: float = HEALTHY_SESSION_S,
) -> None:
    """Stay connected until ``stop``: connect, run ``session(connection)``, close, back off, repeat.

    ``session`` returns when the connection is lost or ``stop`` is set (it may end the connection itself,
    e.g. a graceful DISCONNECT); the transport always closes the client afterwards. Failed attempts and
    unhealthy connections (dropped at once: ACL refusal, flapping) grow the delay; a healthy one resets
    it. ``on_failure(exc, delay)`` reports each failed attempt (the caller logs and counts it). ``opts`` may
    be a callable, evaluated per attempt."""
    while not stop.is_set():
        current = opts() if callable(opts) else opts
        try:
            conn = await connect(current, prepare=prepare, on_connected=on_connected, on_lost=on_lost)
        except ConnectFailed as exc:
            delay = backoff.next_delay()
            if on_failure is not None:
                on_failure(exc, delay)
            else:
                log.warning(
                    "MQTT connection failed: %s",
                    exc,
                    extra={"event": "mqtt_connect_failed", "cause": exc.cause, "retry_in_s": round(delay, 2)},
                )
            await wait_event(stop, delay)
            continue
        try:
            await session(conn)
        finally:
            await close(conn.client)
        if conn.healthy or time.monotonic() - conn.connected_at >= healthy_after_s:
            backoff.reset()
        if not stop.is_set():
            await wait_event(stop, backoff.next_delay())
