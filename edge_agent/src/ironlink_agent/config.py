# SPDX-License-Identifier: Apache-2.0
"""Agent configuration: YAML -> frozen dataclasses, validated as a whole.

``load_config`` reports every error at once, each naming its field path, and treats unknown keys as errors so
a typo cannot silently fall back to a default. It reads the config (and the identity file when the config has
no ``identity:`` block) and checks that TLS files exist; it writes nothing and opens no sockets, so
``ironlink-agent check-config`` is safe on a live gateway. Field names are the YAML
keys (edge_agent/DESIGN.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ironlink_contract.model import Identity
from ironlink_service.config_fields import (
    REQUIRED,
    ConfigError,
    Fields,
    TlsConfig,
    read_config_file,
    read_log_level,
    read_tls,
)

from ironlink_agent.config_inputs import (
    METRIC_TYPES,
    MetricSpec,
    ModbusDeviceConfig,
    MqttInputConfig,
    MqttTopicMap,
    RegisterMap,
    build_metrics,
    build_modbus,
    build_mqtt,
)
from ironlink_agent.identity import DEFAULT_IDENTITY_FILE, load_identity_file, parse_identity

__all__ = [
    "METRIC_TYPES",
    "Config",
    "ConfigError",
    "HealthConfig",
    "MetricSpec",
    "ModbusDeviceConfig",
    "MqttInputConfig",
    "MqttTopicMap",
    "RegisterMap",
    "SpoolConfig",
    "TlsConfig",
    "UplinkConfig",
    "load_config",
    "parse_config",
]

MiB = 1024 * 1024
UNKNOWN_METRICS = ("reject", "accept")


@dataclass(frozen=True)
class UplinkConfig:
    """The cloud broker connection and batching."""

    host: str
    port: int = 8883
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # from `password` or `password_env`
    client_id: str | None = None  # load_config fills "<client_id>/<site_id>/<gateway_id>"
    keepalive_s: int = 30
    batch_max_readings: int = 2000
    batch_max_bytes: int = 256_000
    batch_max_delay_ms: int = 200
    max_inflight: int = 8
    order: str = "newest_first"  # newest_first | oldest_first
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True)
class SpoolConfig:
    """The durable SQLite spool."""

    path: Path
    max_bytes: int = 256 * MiB
    full_policy: str = "drop_oldest"  # drop_oldest | drop_newest
    commit_window_ms: int = 1000
    min_free_bytes: int = 64 * MiB
    dead_letter_max_rows: int = 10_000


@dataclass(frozen=True)
class HealthConfig:
    """Local health/metrics endpoint and optional health file."""

    http_host: str = "127.0.0.1"
    http_port: int = 9810
    health_file: Path | None = None


@dataclass(frozen=True)
class Config:
    """The whole agent configuration."""

    identity: Identity
    uplink: UplinkConfig
    spool: SpoolConfig
    metrics: tuple[MetricSpec, ...]
    mqtt: MqttInputConfig | None
    modbus: tuple[ModbusDeviceConfig, ...]
    health: HealthConfig
    log_level: str = "INFO"
    unknown_metrics: str = "reject"  # reject | accept: metrics missing from `metrics:` (added to DESIGN.md)


TOP_KEYS = (
    "identity",
    "identity_file",
    "uplink",
    "spool",
    "metrics",
    "unknown_metrics",
    "mqtt",
    "modbus",
    "health",
    "log_level",
)


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> Config:
    """Read, parse and validate a config file. Raises ConfigError with every error found."""
    data, errors = read_config_file(path)
    return parse_config(data, environ, errors)


def parse_config(
    data: object, environ: Mapping[str, str] = os.environ, errors: list[str] | None = None
) -> Config:
    """Validate already-parsed YAML (a dict). Raises ConfigError with every error found."""
    errors = [] if errors is None else errors
    top = Fields(data, "", errors, TOP_KEYS)
    identity = _identity(top)
    uplink = _uplink(Fields(top.data.get("uplink"), "uplink", errors, UPLINK_KEYS), environ, identity)
    spool = _spool(Fields(top.data.get("spool"), "spool", errors, SPOOL_KEYS))
    unknown = top.text("unknown_metrics", "reject", choices=UNKNOWN_METRICS)
    metrics = build_metrics(top)
    catalogue = {m.name: m for m in metrics} if unknown == "reject" else None
    mqtt = build_mqtt(top, environ, catalogue) if top.has("mqtt") else None
    modbus = build_modbus(top, catalogue)
    if mqtt is None and not modbus:
        errors.append("(top level): no inputs: configure mqtt, modbus or both")
    config = Config(
        identity=identity,  # type: ignore[arg-type]
        uplink=uplink,
        spool=spool,
        metrics=metrics,
        mqtt=mqtt,
        modbus=modbus,
        health=_health(Fields(top.data.get("health"), "health", errors, HEALTH_KEYS)),
        log_level=read_log_level(top),
        unknown_metrics=unknown,
    )
    if not top.has("uplink"):
        errors.append("uplink: required")
    if not top.has("spool"):
        errors.append("spool: required")
    if errors:
        raise ConfigError(errors)
    return config


def _identity(top: Fields) -> Identity | None:
    if top.has("identity") and top.has("identity_file"):
        top.error("identity_file", "set either identity or identity_file, not both")
        return None
    if top.has("identity"):
        identity, errors = parse_identity(top.data["identity"], "identity")
    else:
        path = top.filepath("identity_file", DEFAULT_IDENTITY_FILE)
        if path is None:
            return None
        identity, errors = load_identity_file(path)
    top.errors.extend(errors)
    return identity


UPLINK_KEYS = (
    "host",
    "port",
    "tls",
    "username",
    "password",
    "password_env",
    "client_id",
    "keepalive_s",
    "batch_max_readings",
    "batch_max_bytes",
    "batch_max_delay_ms",
    "max_inflight",
    "order",
    "backoff_initial_s",
    "backoff_max_s",
)


def _uplink(f: Fields, environ: Mapping[str, str], identity: Identity | None) -> UplinkConfig:
    tls = read_tls(f)
    default_client = identity.mqtt_client_id if identity else None
    backoff_initial = f.number("backoff_initial_s", 1.0, lo=0.01, hi=3600)
    backoff_max = f.number("backoff_max_s", 60.0, lo=0.01, hi=86400)
    if backoff_initial and backoff_max and backoff_initial > backoff_max:
        f.error("backoff_max_s", f"{backoff_max} is below backoff_initial_s ({backoff_initial})")
    return UplinkConfig(
        host=f.text("host", REQUIRED),
        port=f.integer("port", 8883, lo=1, hi=65535),
        tls=tls,
        username=f.text("username"),
        password=f.secret("password", environ),
        client_id=f.text("client_id", default_client, pattern=r"[A-Za-z0-9._-]{1,128}"),
        keepalive_s=f.integer("keepalive_s", 30, lo=5, hi=3600),
        batch_max_readings=f.integer("batch_max_readings", 2000, lo=1, hi=100_000),
        batch_max_bytes=f.integer("batch_max_bytes", 256_000, lo=1024, hi=8 * MiB),
        batch_max_delay_ms=f.integer("batch_max_delay_ms", 200, lo=0, hi=60_000),
        max_inflight=f.integer("max_inflight", 8, lo=1, hi=1000),
        order=f.text("order", "newest_first", choices=("newest_first", "oldest_first")),
        backoff_initial_s=backoff_initial,
        backoff_max_s=backoff_max,
    )


SPOOL_KEYS = (
    "path",
    "max_bytes",
    "full_policy",
    "commit_window_ms",
    "min_free_bytes",
    "dead_letter_max_rows",
)


def _spool(f: Fields) -> SpoolConfig:
    return SpoolConfig(
        path=f.filepath("path", REQUIRED),
        max_bytes=f.integer("max_bytes", 256 * MiB, lo=1 * MiB),
        full_policy=f.text("full_policy", "drop_oldest", choices=("drop_oldest", "drop_newest")),
        commit_window_ms=f.integer("commit_window_ms", 1000, lo=0, hi=60_000),
        min_free_bytes=f.integer("min_free_bytes", 64 * MiB, lo=0),
        dead_letter_max_rows=f.integer("dead_letter_max_rows", 10_000, lo=0),
    )


HEALTH_KEYS = ("http_host", "http_port", "health_file")


def _health(f: Fields) -> HealthConfig:
    return HealthConfig(
        http_host=f.text("http_host", "127.0.0.1"),
        http_port=f.integer("http_port", 9810, lo=0, hi=65535),
        health_file=f.filepath("health_file"),
    )
