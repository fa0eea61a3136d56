# SPDX-License-Identifier: Apache-2.0
"""Config sections for the metric catalogue and the inputs (MQTT topic maps, Modbus devices).

Split from config.py to keep files small; ``ironlink_agent.config`` re-exports every type here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ironlink_contract.model import MACHINE_ID_PATTERN, METRIC_NAME_PATTERN
from ironlink_contract.topics import topic_filter_error
from ironlink_service.config_fields import REQUIRED, Fields

METRIC_TYPES = ("float", "int", "bool", "str")
REGISTER_TABLES = ("holding", "input", "coil", "discrete")
REGISTER_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "float64", "bool")
REGISTER_WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1}
BIT_TABLES = ("coil", "discrete")
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)


@dataclass(frozen=True)
class MetricSpec:
    """A canonical metric: its type and, for numbers, inclusive bounds (out of bounds -> rejected)."""

    name: str
    type: str  # float | int | bool | str
    unit: str | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class MqttTopicMap:
    """How messages on a local MQTT topic filter become readings."""

    topic: str  # MQTT filter, may hold + and #
    format: str  # json | number
    fields: dict[str, str]  # json: source field -> canonical metric; number: {"value": canonical}
    qos: int = 1
    machine_id: str | None = None  # exactly one of machine_id / machine_id_topic_level
    machine_id_topic_level: int | None = None  # 0-based index into the topic's levels
    ts_field: str | None = None
    status_field: str | None = None


@dataclass(frozen=True)
class MqttInputConfig:
    """The local broker the agent subscribes to."""

    topics: tuple[MqttTopicMap, ...]
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RegisterMap:
    """One Modbus value -> one canonical metric (value * scale + offset for numeric types)."""

    name: str
    table: str  # holding | input | coil | discrete
    address: int
    type: str  # int16 | uint16 | int32 | uint32 | float32 | float64 | bool
    byte_order: str = "big"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None


@dataclass(frozen=True)
class ModbusDeviceConfig:
    """One Modbus device (TCP or RTU) polled as one machine."""

    name: str
    machine_id: str
    protocol: str  # tcp | rtu
    registers: tuple[RegisterMap, ...]
    host: str | None = None  # tcp
    port: int = 502  # tcp
    serial_port: str | None = None  # rtu
    baudrate: int = 9600
    parity: str = "N"  # N | E | O
    stopbits: int = 1
    bytesize: int = 8
    unit_id: int = 1
    poll_interval_s: float = 1.0
    timeout_s: float = 1.0


METRIC_KEYS = ("name", "type", "unit", "min", "max")


def build_metrics(top: Fields) -> tuple[MetricSpec, ...]:
    """The ``metrics:`` catalogue."""
    specs: list[MetricSpec] = []
    seen: set[str] = set()
    for item, path in top.items("metrics"):
        f = Fields(item, path, top.errors, METRIC_KEYS)
        name = f.text("name", REQUIRED, pattern=METRIC_NAME_PATTERN)
        mtype = f.text("type", REQUIRED, choices=METRIC_TYPES)
        lo, hi = f.number("min"), f.number("max")
        if name in seen:
            f.error("name", f"duplicate metric {name!r}")
        seen.add(name)
        if mtype in ("bool", "str") and (lo is not None or hi is not None):
            f.error("min" if lo is not None else "max", f"bounds apply to numeric metrics, not {mtype}")
        if lo is not None and hi is not None and lo > hi:
            f.error("max", f"{hi} is below min ({lo})")
        specs.append(MetricSpec(name or "", mtype or "float", f.text("unit"), lo, hi))
    return tuple(specs)


def _metric_ref(f: Fields, key: str, name: object, catalogue: Mapping[str, MetricSpec] | None) -> None:
    """Check a canonical metric name: well-formed and, when unknown metrics are rejected, catalogued."""
    if not isinstance(name, str) or _METRIC_NAME_RE.fullmatch(name) is None:
        f.error(key, f"{name!r} does not match {METRIC_NAME_PATTERN}")
    elif catalogue is not None and name not in catalogue:
        f.error(key, f"{name!r} is not in metrics: (unknown_metrics is reject)")


MQTT_KEYS = ("host", "port", "username", "password", "password_env", "topics")
TOPIC_KEYS = (
    "topic",
    "qos",
    "format",
    "machine_id",
    "machine_id_topic_level",
    "fields",
    "ts_field",
    "status_field",
)


def build_mqtt(
    top: Fields, environ: Mapping[str, str], catalogue: Mapping[str, MetricSpec] | None
) -> MqttInputConfig:
    """The ``mqtt:`` input."""
    f = Fields(top.data.get("mqtt"), "mqtt", top.errors, MQTT_KEYS)
    topics = tuple(_topic_map(item, path, f.errors, catalogue) for item, path in f.items("topics"))
    if not topics:
        f.error("topics", "at least one topic map is required")
    return MqttInputConfig(
        topics=topics,
        host=f.text("host", "127.0.0.1"),
        port=f.integer("port", 1883, lo=1, hi=65535),
        username=f.text("username"),
        password=f.secret("password", environ),
    )


def _topic_map(
    item: object, path: str, errors: list[str], catalogue: Mapping[str, MetricSpec] | None
) -> MqttTopicMap:
    f = Fields(item, path, errors, TOPIC_KEYS)
    topic = f.text("topic", REQUIRED)
    if topic is not None and (why := topic_filter_error(topic)):
        f.error("topic", f"{topic!r}: {why}")
        topic = None
    fmt = f.text("format", REQUIRED, choices=("json", "number"))
    machine_id = f.text("machine_id", pattern=MACHINE_ID_PATTERN)
    level = f.integer("machine_id_topic_level", lo=0, hi=127)
    if f.has("machine_id") == f.has("machine_id_topic_level"):
        f.error("machine_id", "set exactly one of machine_id and machine_id_topic_level")
    elif level is not None and topic is not None:
        levels = topic.split("/")
        plus = level < len(levels) and levels[level] == "+"
        wild = plus or ("#" in levels and level >= levels.index("#"))
        if not wild:
            f.error("machine_id_topic_level", f"level {level} of {topic!r} is not a '+' or '#' level")
    fields: dict[str, str] = {}
    raw_fields = f.data.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        f.error("fields", "required: a non-empty mapping of source field -> canonical metric")
    else:
        for source, metric in raw_fields.items():
            key = f"fields.{source}"
            if not isinstance(source, str) or not source:
                hint = (
                    " (YAML reads unquoted on/off/yes/no as booleans: quote it)"
                    if isinstance(source, bool)
                    else ""
                )
                f.error("fields", f"source field {source!r} is not a non-empty string{hint}")
                continue
            _metric_ref(f, key, metric, catalogue)
            if metric in fields.values():
                f.error(key, f"metric {metric!r} is already mapped from another field")
            fields[source] = metric
        if fmt == "number" and list(fields) != ["value"]:
            f.error("fields", "format number maps exactly one source field named 'value': {value: <metric>}")
    ts_field, status_field = f.text("ts_field"), f.text("status_field")
    if fmt == "number" and (ts_field or status_field):
        f.error("ts_field" if ts_field else "status_field", "only format json has ts_field/status_field")
    return MqttTopicMap(
        topic=topic or "",
        format=fmt or "json",
        fields=fields,
        qos=f.integer("qos", 1, lo=0, hi=2),
        machine_id=machine_id,
        machine_id_topic_level=level,
        ts_field=ts_field,
        status_field=status_field,
    )


DEVICE_KEYS = (
    "name",
    "machine_id",
    "protocol",
    "host",
    "port",
    "serial_port",
    "baudrate",
    "parity",
    "stopbits",
    "bytesize",
    "unit_id",
    "poll_interval_s",
    "timeout_s",
    "registers",
)
REGISTER_KEYS = ("name", "table", "address", "type", "byte_order", "word_order", "scale", "offset", "unit")
TCP_ONLY = ("host", "port")
RTU_ONLY = ("serial_port", "baudrate", "parity", "stopbits", "bytesize")


def build_modbus(top: Fields, catalogue: Mapping[str, MetricSpec] | None) -> tuple[ModbusDeviceConfig, ...]:
    """The ``modbus:`` device list."""
    devices: list[ModbusDeviceConfig] = []
    names: set[str] = set()
    for item, path in top.items("modbus"):
        f = Fields(item, path, top.errors, DEVICE_KEYS)
        name = f.text("name", REQUIRED, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
        if name in names:
            f.error("name", f"duplicate device name {name!r}")
        names.add(name)
        protocol = f.text("protocol", REQUIRED, choices=("tcp", "rtu"))
        wrong = RTU_ONLY if protocol == "tcp" else TCP_ONLY if protocol == "rtu" else ()
        for key in wrong:
            if f.has(key):
                f.error(key, f"not valid with protocol {protocol}")
        registers = tuple(_register(it, p, f, catalogue) for it, p in f.items("registers"))
        if not registers:
            f.error("registers", "at least one register is required")
        metric_names = [r.name for r in registers]
        for dup in sorted({n for n in metric_names if metric_names.count(n) > 1}):
            f.error("registers", f"metric {dup!r} is mapped twice")
        devices.append(
            ModbusDeviceConfig(
                name=name or "",
                machine_id=f.text("machine_id", REQUIRED, pattern=MACHINE_ID_PATTERN) or "",
                protocol=protocol or "tcp",
                registers=registers,
                host=f.text("host", REQUIRED if protocol == "tcp" else None),
                port=f.integer("port", 502, lo=1, hi=65535),
                serial_port=f.text("serial_port", REQUIRED if protocol == "rtu" else None),
                baudrate=f.integer("baudrate", 9600, lo=50, hi=4_000_000),
                parity=f.text("parity", "N", choices=("N", "E", "O")),
                stopbits=f.integer("stopbits", 1, lo=1, hi=2),
                bytesize=f.integer("bytesize", 8, lo=5, hi=8),
                unit_id=f.integer("unit_id", 1, lo=0, hi=255),
                poll_interval_s=f.number("poll_interval_s", 1.0, lo=0.01, hi=86400),
                timeout_s=f.number("timeout_s", 1.0, lo=0.01, hi=600),
            )
        )
    return tuple(devices)


def _register(
    item: object, path: str, dev: Fields, catalogue: Mapping[str, MetricSpec] | None
) -> RegisterMap:
    f = Fields(item, path, dev.errors, REGISTER_KEYS)
    name = f.text("name", REQUIRED)
    if name is not None:
        _metric_ref(f, "name", name, catalogue)
    table = f.text("table", REQUIRED, choices=REGISTER_TABLES)
    rtype = f.text("type", REQUIRED, choices=REGISTER_TYPES)
    if table in BIT_TABLES and rtype not in (None, "bool"):
        f.error("type", f"{rtype!r}: {table} tables hold bits, use type bool")
    if table in ("holding", "input") and rtype == "bool":
        f.error("type", f"'bool' needs a coil or discrete table, not {table}")
    words = REGISTER_WORDS.get(rtype or "", 1)
    address = f.integer("address", REQUIRED, lo=0, hi=65536 - words)
    return RegisterMap(
        name=name or "",
        table=table or "holding",
        address=address if address is not None else 0,
        type=rtype or "uint16",
        byte_order=f.text("byte_order", "big", choices=("big", "little")),
        word_order=f.text("word_order", "big", choices=("big", "little")),
        scale=f.number("scale", 1.0),
        offset=f.number("offset", 0.0),
        unit=f.text("unit"),
    )
