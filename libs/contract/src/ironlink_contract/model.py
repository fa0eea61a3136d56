# SPDX-License-Identifier: Apache-2.0
"""Shared value types and the identity/naming rules of telemetry contract v1.

The regexes are the fleet's identity rules; the Ansible collection keeps its own copy in
``module_utils/_identity.py`` and a unit test asserts the two are equal. Validate with ``re.fullmatch``
(the helpers below do): ``$`` alone would accept a trailing newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMA_VERSION = 1

# Fleet identity rules (docs/identity.md): upper-case ids, RFC 1123 lower-case host label.
ID_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
HOSTNAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
ENVIRONMENTS = ("dev", "staging", "prod")

# Contract naming rules. Machine ids come from configs and MQTT topic levels: looser than fleet ids.
MACHINE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
METRIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# spool_id is created by the spool; message_id = "<spool_id>:<seq>" (migrated legacy docs use other suffixes).
SPOOL_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64}$"

STATUSES = ("running", "stopped", "fault")
QUALITIES = ("good", "uncertain", "bad")

MAX_METRICS_PER_READING = 256
MAX_STR_VALUE_LEN = 1024  # characters
# Timestamps outside [2000-01-01, 2100-01-01) are clock or unit errors, not telemetry.
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_ID_RE = re.compile(ID_PATTERN)
_HOSTNAME_RE = re.compile(HOSTNAME_PATTERN)
_MACHINE_ID_RE = re.compile(MACHINE_ID_PATTERN)
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)
_SPOOL_ID_RE = re.compile(SPOOL_ID_PATTERN)
_MESSAGE_ID_RE = re.compile(MESSAGE_ID_PATTERN)

MetricValue = float | int | bool | str


def is_valid_id(value: object) -> bool:
    """True for a fleet id (client, site, gateway)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def is_valid_hostname(value: object) -> bool:
    """True for a lower-case RFC 1123 host label."""
    return isinstance(value, str) and _HOSTNAME_RE.fullmatch(value) is not None


def is_valid_machine_id(value: object) -> bool:
    """True for a contract machine id."""
    return isinstance(value, str) and _MACHINE_ID_RE.fullmatch(value) is not None


def is_valid_metric_name(value: object) -> bool:
    """True for a canonical metric name (lower snake case)."""
    return isinstance(value, str) and _METRIC_NAME_RE.fullmatch(value) is not None


def is_valid_spool_id(value: object) -> bool:
    """True for a spool id usable as the prefix of message ids."""
    return isinstance(value, str) and _SPOOL_ID_RE.fullmatch(value) is not None


def is_valid_message_id(value: object) -> bool:
    """True for a message id."""
    return isinstance(value, str) and _MESSAGE_ID_RE.fullmatch(value) is not None


def identity_errors(data: object, where: str = "identity") -> list[str]:
    """Every problem with an identity mapping, each naming its field path; [] when valid."""
    if not isinstance(data, dict):
        return [f"{where}: expected a mapping, got {type(data).__name__}"]
    errors: list[str] = []
    for key in ("client_id", "site_id", "gateway_id"):
        if key not in data:
            errors.append(f"{where}.{key}: required")
        elif not is_valid_id(data[key]):
            errors.append(f"{where}.{key}: {data[key]!r} does not match {ID_PATTERN}")
    if "environment" not in data:
        errors.append(f"{where}.environment: required")
    elif data["environment"] not in ENVIRONMENTS:
        errors.append(f"{where}.environment: {data['environment']!r} is not one of {', '.join(ENVIRONMENTS)}")
    if "hostname" not in data:
        errors.append(f"{where}.hostname: required")
    elif not is_valid_hostname(data["hostname"]):
        errors.append(f"{where}.hostname: {data['hostname']!r} does not match {HOSTNAME_PATTERN}")
    return errors


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a reading. Built through ``identity_errors``-checked data (config, identity file, wire)."""

    client_id: str
    site_id: str
    gateway_id: str
    environment: str
    hostname: str

    @property
    def topic_prefix(self) -> str:
        """Root of this gateway's cloud topics: ``ironlink/<client>/<site>/<gateway>``."""
        return f"ironlink/{self.client_id}/{self.site_id}/{self.gateway_id}"

    @property
    def mqtt_client_id(self) -> str:
        """The gateway's MQTT client id, CLIENT/SITE/GATEWAY, also its certificate CN and MQTT user name.

        Unique fleet-wide: the identity rules make the triple unique, and "/" cannot occur in an id. A bare
        gateway id is not (GW-01 exists at many sites), and a broker drops the older of two connections that
        share a client id.
        """
        return f"{self.client_id}/{self.site_id}/{self.gateway_id}"


@dataclass(frozen=True, slots=True)
class Reading:
    """One machine's metrics at one instant: the unit the spool stores and the cloud de-duplicates."""

    machine_id: str
    ts: int  # UTC epoch milliseconds
    metrics: dict[str, MetricValue]  # canonical name -> value
    status: str | None = None  # running | stopped | fault
    quality: str | None = None  # good | uncertain | bad


RAW_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dead letter: input that did not become a Reading. Never dropped silently."""

    reason: str  # short machine-readable code, e.g. "out_of_bounds"
    detail: str  # human text naming the field
    source: str  # "mqtt:<topic>" or "modbus:<device>"
    raw: bytes  # the raw input as received, truncated to RAW_MAX_BYTES

    @classmethod
    def of(cls, reason: str, detail: str, source: str, raw: bytes = b"") -> Rejected:
        """Build a Rejected with ``raw`` truncated to the dead-letter bound."""
        return cls(reason, detail, source, bytes(raw[:RAW_MAX_BYTES]))
