# SPDX-License-Identifier: Apache-2.0
"""Map older telemetry documents forward to the current contract version.

``UPGRADERS[n]`` turns a version-n document into version n+1; ``migrate`` chains them and validates the
result, so the ingest service stores one shape whatever an old gateway sent. A new contract version adds
one upgrader (``UPGRADERS[1] = _v1_to_v2``) and never edits old ones.

Version 0 is the flat JSON the old provisioning script's publisher sent, one message per reading, without
identity or message id::

    {"device": "press-01", "time": "2024-05-01T12:00:00Z", "temp": 21.5, "rpm": 1500, "running": true}

``device`` -> ``machine_id``; ``time`` (ISO-8601; that script always wrote UTC, so a missing offset means UTC)
-> ``ts`` epoch ms; an optional ``status`` passes through; every other key is a metric, renamed by
``V0_METRIC_NAMES``. Identity comes from the caller (the topic the message arrived on). The message id is
``legacy0:<hash>``, derived from the identity and the document, so a re-sent legacy message de-duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ironlink_contract.model import SCHEMA_VERSION, Identity
from ironlink_contract.validate import document_errors

Document = dict[str, Any]
Upgrader = Callable[[Document, Identity | None], Document]

V0_METRIC_NAMES = {"temp": "temperature", "hum": "humidity", "press": "pressure", "speed": "rpm"}
_V0_RESERVED = ("device", "time", "status")


class MigrationError(ValueError):
    """A document that cannot be brought to the current version."""


def detect_version(doc: Document) -> int:
    """``schema_version`` when present, 0 for the legacy flat shape (``device`` + ``time``)."""
    version = doc.get("schema_version")
    if version is None:
        if "device" in doc and "time" in doc:
            return 0
        raise MigrationError("no schema_version and not the legacy v0 shape (device, time)")
    if type(version) is not int or not 0 <= version <= SCHEMA_VERSION:
        raise MigrationError(f"unsupported schema_version {version!r}")
    return version


def _v0_to_v1(doc: Document, identity: Identity | None) -> Document:
    if identity is None:
        raise MigrationError("v0 documents carry no identity: pass the sender's identity")
    when = doc["time"]
    if not isinstance(when, str) or len(when) > 64:
        raise MigrationError(f"time: {when!r:.60} is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(when)
    except ValueError:
        raise MigrationError(f"time: {when!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    metrics = {V0_METRIC_NAMES.get(k, k): v for k, v in doc.items() if k not in _V0_RESERVED}
    digest_input = json.dumps([list(_identity_fields(identity)), doc], sort_keys=True, default=str)
    out: Document = {
        "schema_version": 1,
        "message_id": "legacy0:" + hashlib.sha256(digest_input.encode()).hexdigest()[:32],
        "client_id": identity.client_id,
        "site_id": identity.site_id,
        "gateway_id": identity.gateway_id,
        "environment": identity.environment,
        "hostname": identity.hostname,
        "machine_id": doc["device"],
        "ts": round(parsed.timestamp() * 1000),
        "metrics": metrics,
    }
    if "status" in doc:
        out["status"] = doc["status"]
    return out


def _identity_fields(identity: Identity) -> tuple[str, ...]:
    return (
        identity.client_id,
        identity.site_id,
        identity.gateway_id,
        identity.environment,
        identity.hostname,
    )


UPGRADERS: dict[int, Upgrader] = {0: _v0_to_v1}


def migrate(doc: Document, identity: Identity | None = None) -> Document:
    """Bring ``doc`` to the current version and validate it. Raises MigrationError."""
    if not isinstance(doc, dict):
        raise MigrationError(f"expected an object, got {type(doc).__name__}")
    version = detect_version(doc)
    while version < SCHEMA_VERSION:
        doc = UPGRADERS[version](doc, identity)
        version += 1
    errors = document_errors(doc)
    if errors:
        raise MigrationError("; ".join(errors))
    return doc
