# SPDX-License-Identifier: Apache-2.0
"""Ingest configuration: YAML -> frozen dataclasses, every error reported at once.

Reuses the agent's strict field readers (``config_fields``): unknown keys are errors, secrets come literally
or from ``*_env`` variables, TLS files must exist. ``load_config`` opens no sockets and writes nothing, so
``ironlink-ingest check-config`` is safe as an Ansible ``validate:`` command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ironlink_contract.model import is_valid_id
from ironlink_service.config_fields import (
    REQUIRED,
    ConfigError,
    Fields,
    TlsConfig,
    read_config_file,
    read_log_level,
    read_tls,
)

__all__ = [
    "BrokerConfig",
    "ClientCredentials",
    "ConfigError",
    "InfluxConfig",
    "IngestConfig",
    "database_name",
    "load_config",
    "parse_config",
]

MiB = 1024 * 1024
_SHARE_GROUP = r"[A-Za-z0-9_-]{1,64}"
_CLIENT_ID = r"[A-Za-z0-9._-]{1,100}"


_DATABASE = r"[a-z_][a-z0-9_]{0,63}"


def database_name(client_id: str) -> str:
    """A client's database when its config names none: ``ironlink_<client_id lower-cased, '-' -> '_'>``.

    Deployments name it explicitly (``clients.<id>.database``): the storage role owns the naming rule and its
    prefix (``ironlink.fleet.storage_accounts``); this default only keeps older configs working."""
    return "ironlink_" + client_id.lower().replace("-", "_")


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int = 8883
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id_prefix: str = "ironlink-ingest"
    share_group: str = "ironlink-ingest"
    keepalive_s: int = 30
    session_expiry_s: int = 86_400
    receive_maximum: int = 64
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0


@dataclass(frozen=True)
class InfluxConfig:
    url: str = "http://127.0.0.1:8086"
    ca_file: Path | None = None
    timeout_s: float = 10.0
    max_batch_lines: int = 5000
    flush_interval_ms: int = 0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True)
class ClientCredentials:
    """The write user of one client's database (tenant isolation: it can write only there)."""

    client_id: str
    database: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class IngestConfig:
    broker: BrokerConfig
    influxdb: InfluxConfig
    clients: Mapping[str, ClientCredentials]
    state_dir: Path = Path("/var/lib/ironlink-ingest")
    dedup_max_spools: int = 100_000
    dedup_max_ranges_per_spool: int = 256
    dead_letter_max_bytes: int = 256 * MiB
    dead_letter_max_payload_bytes: int = 1 * MiB
    fleet_max_gateways: int = 10_000
    http_host: str = "127.0.0.1"
    http_port: int = 9820
    log_level: str = "INFO"

    def secrets(self) -> list[str]:
        """Every secret value (for ``logs.register_secret``)."""
        values = [self.broker.password] + [c.password for c in self.clients.values()]
        return [v for v in values if v]


TOP_KEYS = (
    "broker",
    "influxdb",
    "clients",
    "state_dir",
    "dedup",
    "dead_letter",
    "fleet",
    "health",
    "log_level",
)
BROKER_KEYS = (
    "host",
    "port",
    "tls",
    "username",
    "password",
    "password_env",
    "client_id_prefix",
    "share_group",
    "keepalive_s",
    "session_expiry_s",
    "receive_maximum",
    "backoff_initial_s",
    "backoff_max_s",
)
INFLUX_KEYS = (
    "url",
    "ca_file",
    "timeout_s",
    "max_batch_lines",
    "flush_interval_ms",
    "backoff_initial_s",
    "backoff_max_s",
)
CLIENT_KEYS = ("username", "password", "password_env", "database")
DEDUP_KEYS = ("max_spools", "max_ranges_per_spool")
DEAD_LETTER_KEYS = ("max_bytes", "max_payload_bytes")
FLEET_KEYS = ("max_gateways",)
HEALTH_KEYS = ("http_host", "http_port")


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> IngestConfig:
    """Read, parse and validate a config file. Raises ConfigError with every error found."""
    data, errors = read_config_file(path)
    return parse_config(data, environ, errors)


def parse_config(
    data: object, environ: Mapping[str, str] = os.environ, errors: list[str] | None = None
) -> IngestConfig:
    """Validate already-parsed YAML. Raises ConfigError with every error found."""
    errors = [] if errors is None else errors
    top = Fields(data, "", errors, TOP_KEYS)
    for key in ("broker", "clients"):
        if not top.has(key):
            errors.append(f"{key}: required")
    broker = _broker(Fields(top.data.get("broker"), "broker", errors, BROKER_KEYS), environ)
    influx = _influx(Fields(top.data.get("influxdb"), "influxdb", errors, INFLUX_KEYS))
    clients = _clients(top, environ)
    dedup = Fields(top.data.get("dedup"), "dedup", errors, DEDUP_KEYS)
    dead = Fields(top.data.get("dead_letter"), "dead_letter", errors, DEAD_LETTER_KEYS)
    fleet = Fields(top.data.get("fleet"), "fleet", errors, FLEET_KEYS)
    health = Fields(top.data.get("health"), "health", errors, HEALTH_KEYS)
    config = IngestConfig(
        broker=broker,
        influxdb=influx,
        clients=clients,
        state_dir=top.filepath("state_dir", Path("/var/lib/ironlink-ingest")),
        dedup_max_spools=dedup.integer("max_spools", 100_000, lo=1, hi=10_000_000),
        dedup_max_ranges_per_spool=dedup.integer("max_ranges_per_spool", 256, lo=1, hi=100_000),
        dead_letter_max_bytes=dead.integer("max_bytes", 256 * MiB, lo=1 * MiB),
        dead_letter_max_payload_bytes=dead.integer("max_payload_bytes", 1 * MiB, lo=1024, hi=8 * MiB),
        fleet_max_gateways=fleet.integer("max_gateways", 10_000, lo=1, hi=1_000_000),
        http_host=health.text("http_host", "127.0.0.1"),
        http_port=health.integer("http_port", 9820, lo=0, hi=65535),
        log_level=read_log_level(top),
    )
    if errors:
        raise ConfigError(errors)
    return config


def _backoff(f: Fields, initial: float, maximum: float) -> tuple[float, float]:
    lo = f.number("backoff_initial_s", initial, lo=0.01, hi=3600)
    hi = f.number("backoff_max_s", maximum, lo=0.01, hi=86_400)
    if lo and hi and lo > hi:
        f.error("backoff_max_s", f"{hi} is below backoff_initial_s ({lo})")
    return lo, hi


def _broker(f: Fields, environ: Mapping[str, str]) -> BrokerConfig:
    tls = read_tls(f)
    username = f.text("username")
    password = f.secret("password", environ)
    if (username is None) != (password is None) and not f.has("password_env"):
        f.error("password" if username else "username", "username and password go together")
    if username is None and (tls is None or tls.cert_file is None):
        f.error("username", "no broker credentials: set username/password, tls.cert_file/key_file or both")
    initial, maximum = _backoff(f, 1.0, 30.0)
    return BrokerConfig(
        host=f.text("host", REQUIRED),
        port=f.integer("port", 8883, lo=1, hi=65535),
        tls=tls,
        username=username,
        password=password,
        client_id_prefix=f.text("client_id_prefix", "ironlink-ingest", pattern=_CLIENT_ID),
        share_group=f.text("share_group", "ironlink-ingest", pattern=_SHARE_GROUP),
        keepalive_s=f.integer("keepalive_s", 30, lo=5, hi=3600),
        session_expiry_s=f.integer("session_expiry_s", 86_400, lo=60, hi=2**32 - 2),
        receive_maximum=f.integer("receive_maximum", 64, lo=1, hi=65535),
        backoff_initial_s=initial,
        backoff_max_s=maximum,
    )


def _influx(f: Fields) -> InfluxConfig:
    url = f.text("url", "http://127.0.0.1:8086")
    if url and re.fullmatch(r"https?://[^/\s?#]+/?", url) is None:
        f.error("url", f"{url!r} is not http(s)://host[:port]")
    ca_file = f.filepath("ca_file", must_exist=True)
    if ca_file is not None and url and not url.startswith("https:"):
        f.error("ca_file", "only meaningful with an https:// url")
    initial, maximum = _backoff(f, 0.5, 30.0)
    return InfluxConfig(
        url=(url or "").rstrip("/"),
        ca_file=ca_file,
        timeout_s=f.number("timeout_s", 10.0, lo=0.1, hi=600),
        max_batch_lines=f.integer("max_batch_lines", 5000, lo=1, hi=100_000),
        flush_interval_ms=f.integer("flush_interval_ms", 0, lo=0, hi=10_000),
        backoff_initial_s=initial,
        backoff_max_s=maximum,
    )


def _clients(top: Fields, environ: Mapping[str, str]) -> dict[str, ClientCredentials]:
    data = top.data.get("clients")
    if data is None:
        return {}
    if not isinstance(data, dict) or not data:
        top.error("clients", "expected a non-empty mapping client_id -> {username, password}")
        return {}
    result: dict[str, ClientCredentials] = {}
    databases: dict[str, str] = {}
    for client_id, spec in data.items():
        where = top.where(f"clients.{client_id}")
        if not is_valid_id(client_id):
            top.errors.append(f"{where}: {client_id!r} is not a fleet client id")
            continue
        f = Fields(spec, where, top.errors, CLIENT_KEYS)
        username = f.text("username", REQUIRED)
        password = f.secret("password", environ)
        if password is None and not f.has("password_env"):
            f.error("password", "required (or password_env)")
        db = f.text("database", database_name(client_id), pattern=_DATABASE)
        if db in databases:
            f.error("database", f"database {db} is also the database of client {databases[db]}")
        databases[db] = client_id
        if username and password:
            result[client_id] = ClientCredentials(client_id, db, username, password)
    return result
