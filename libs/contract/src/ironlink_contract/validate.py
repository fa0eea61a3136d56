# SPDX-License-Identifier: Apache-2.0
"""Pure-Python validation of canonical v1 documents, equivalent to ``schema/telemetry-v1.json``.

The ingest service validates every document and must not need ``jsonschema`` at runtime; a unit test runs
both validators over the same good and bad documents so they cannot drift apart.
"""

from __future__ import annotations

import json
from importlib import resources
from math import isfinite
from typing import Any

from ironlink_contract.model import (
    ENVIRONMENTS,
    INT_MAX,
    INT_MIN,
    MAX_METRICS_PER_READING,
    MAX_STR_VALUE_LEN,
    QUALITIES,
    SCHEMA_VERSION,
    STATUSES,
    TS_MAX_MS,
    TS_MIN_MS,
    is_valid_hostname,
    is_valid_id,
    is_valid_machine_id,
    is_valid_message_id,
    is_valid_metric_name,
)

REQUIRED = (
    "schema_version",
    "message_id",
    "client_id",
    "site_id",
    "gateway_id",
    "environment",
    "hostname",
    "machine_id",
    "ts",
    "metrics",
)
OPTIONAL = ("status", "quality")


def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12) of a contract version."""
    text = resources.files("ironlink_contract").joinpath(f"schema/telemetry-v{version}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def document_errors(doc: object) -> list[str]:
    """Every way ``doc`` violates contract v1; [] when it is valid."""
    if not isinstance(doc, dict):
        return [f"document: expected an object, got {type(doc).__name__}"]
    errors = [f"{key}: required" for key in REQUIRED if key not in doc]
    errors += [f"{key}: unknown property" for key in doc if key not in REQUIRED and key not in OPTIONAL]
    checks = (
        ("schema_version", lambda v: type(v) is int and v == SCHEMA_VERSION, f"must be {SCHEMA_VERSION}"),
        ("message_id", is_valid_message_id, "is not a valid message id"),
        ("client_id", is_valid_id, "is not a fleet id"),
        ("site_id", is_valid_id, "is not a fleet id"),
        ("gateway_id", is_valid_id, "is not a fleet id"),
        ("environment", lambda v: isinstance(v, str) and v in ENVIRONMENTS, f"is not one of {ENVIRONMENTS}"),
        ("hostname", is_valid_hostname, "is not a valid hostname"),
        ("machine_id", is_valid_machine_id, "is not a valid machine id"),
        ("ts", lambda v: type(v) is int and TS_MIN_MS <= v < TS_MAX_MS, "is not epoch ms in [2000, 2100)"),
        ("status", lambda v: isinstance(v, str) and v in STATUSES, f"is not one of {STATUSES}"),
        ("quality", lambda v: isinstance(v, str) and v in QUALITIES, f"is not one of {QUALITIES}"),
    )
    for key, ok, message in checks:
        if key in doc and not ok(doc[key]):
            errors.append(f"{key}: {doc[key]!r:.60} {message}")
    if "metrics" in doc:
        errors += _metric_errors(doc["metrics"])
    return errors


def _metric_errors(metrics: object) -> list[str]:
    if not isinstance(metrics, dict):
        return [f"metrics: expected an object, got {type(metrics).__name__}"]
    if not 1 <= len(metrics) <= MAX_METRICS_PER_READING:
        return [f"metrics: holds {len(metrics)} metrics, expected 1..{MAX_METRICS_PER_READING}"]
    errors = []
    for name, value in metrics.items():
        if not is_valid_metric_name(name):
            errors.append(f"metrics: {name!r:.60} is not a canonical metric name")
        elif not _valid_value(value):
            errors.append(f"metrics.{name}: {value!r:.60} is not a finite number, boolean or short string")
    return errors


def _valid_value(value: object) -> bool:
    t = type(value)
    if t is bool:
        return True
    if t is int:
        return INT_MIN <= value <= INT_MAX  # type: ignore[operator]
    if t is float:
        return isfinite(value)  # type: ignore[arg-type]
    return t is str and len(value) <= MAX_STR_VALUE_LEN  # type: ignore[arg-type]


def is_valid_document(doc: object) -> bool:
    """True if ``doc`` is a valid v1 document."""
    return not document_errors(doc)
