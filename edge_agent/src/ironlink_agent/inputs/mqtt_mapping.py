# SPDX-License-Identifier: Apache-2.0
"""Local MQTT message -> readings, by one ``MqttTopicMap``. Pure: no I/O, no clock unless none is given.

Payloads come from devices we do not control, so everything hostile (oversized, invalid UTF-8, deeply nested
or non-object JSON, NaN, absurd numbers or timestamps) becomes a ``Rejected`` with a reason code; nothing
raises. One bad element rejects the whole message: the message is what the local broker redelivers, so it
is also the unit we accept or dead-letter.

Payload formats:

- ``json``: an object, or an array of up to ``MAX_READINGS_PER_MESSAGE`` objects (one reading each).
  ``fields`` maps top-level source keys to canonical metrics; mapped keys that are absent are skipped, keys
  that are not mapped are ignored (they are not metrics), but a message with none of the mapped keys is
  rejected (``no_metrics``). ``ts_field`` (optional, per message it may be absent -> receive time): epoch
  ms or epoch s (numbers below 1e11 are seconds), or an ISO-8601 string with a UTC offset (naive local
  times are rejected: the gateway cannot know the device's zone). ``status_field``: running/stopped/fault.
- ``number``: the whole payload is one number (``fields: {value: <metric>}``), stamped with receive time.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from math import isfinite
from typing import Any

from ironlink_contract.model import Reading, Rejected, is_valid_machine_id
from ironlink_contract.topics import match_levels

from ironlink_agent.config_inputs import MqttTopicMap
from ironlink_agent.normalise import Normaliser

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_READINGS_PER_MESSAGE = 1000
_SECONDS_BELOW = 1e11  # epoch values below this are seconds (1e11 s is year 5138, 1e11 ms is 1973)
_NUMBER_RE = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_PERMISSIVE = Normaliser(accept_unknown=True)

Result = list[Reading] | Rejected


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def map_message(
    topic_map: MqttTopicMap,
    topic: str,
    payload: bytes,
    *,
    catalogue: Normaliser | None = None,
    received_ms: int | None = None,
) -> Result:
    """Map one message. ``catalogue`` is the agent's Normaliser (None accepts any canonical metric)."""
    source = f"mqtt:{topic}"
    raw = bytes(payload)
    normaliser = catalogue if catalogue is not None else _PERMISSIVE
    now = received_ms if received_ms is not None else time.time_ns() // 1_000_000
    try:
        machine_id = _machine_id(topic_map, topic)
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise _Reject("too_large", f"payload of {len(raw)} bytes over {MAX_PAYLOAD_BYTES}")
        if topic_map.format == "number":
            value = _number(raw)
            (metric,) = topic_map.fields.values()
            result = normaliser.normalise(machine_id, now, {metric: value}, source=source, raw=raw)
            return result if isinstance(result, Rejected) else [result]
        return _json_readings(topic_map, machine_id, raw, now, normaliser=normaliser, source=source)
    except _Reject as rej:
        return Rejected.of(rej.reason, rej.detail, source, raw)


def _machine_id(topic_map: MqttTopicMap, topic: str) -> str:
    levels = topic.split("/")
    if not match_levels(topic_map.topic.split("/"), levels):
        raise _Reject("no_mapping", f"topic does not match filter {topic_map.topic!r}")
    if topic_map.machine_id is not None:
        return topic_map.machine_id
    level = topic_map.machine_id_topic_level
    if level is None or level >= len(levels) or not is_valid_machine_id(levels[level]):
        found = levels[level][:64] if level is not None and level < len(levels) else None
        raise _Reject("bad_machine_id", f"topic level {level} ({found!r}) is not a valid machine_id")
    return levels[level]


def _number(raw: bytes) -> int | float:
    if len(raw) > 64 or not raw.isascii() or not _NUMBER_RE.fullmatch(text := raw.decode("ascii")):
        raise _Reject("bad_payload", f"payload {raw[:40]!r} is not a plain number")
    stripped = text.strip()
    value: int | float = int(stripped) if stripped.lstrip("+-").isdigit() else float(stripped)
    return value


def _json_readings(
    topic_map: MqttTopicMap, machine_id: str, raw: bytes, now: int, *, normaliser: Normaliser, source: str
) -> Result:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Reject("bad_encoding", f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise _Reject("bad_json", "JSON nested too deeply") from None
    except ValueError as exc:
        raise _Reject("bad_json", f"invalid JSON: {str(exc)[:120]}") from None
    if isinstance(doc, dict):
        items: list[Any] = [doc]
    elif isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc):
        if len(doc) > MAX_READINGS_PER_MESSAGE:
            raise _Reject("too_large", f"{len(doc)} readings in one message over {MAX_READINGS_PER_MESSAGE}")
        items = doc
    else:
        raise _Reject(
            "bad_payload", f"expected a JSON object or a non-empty array of objects, got {_kind(doc)}"
        )
    readings: list[Reading] = []
    for i, obj in enumerate(items):
        where = f"[{i}]" if len(items) > 1 else ""
        values = {metric: obj[src] for src, metric in topic_map.fields.items() if src in obj}
        if not values:
            raise _Reject("no_metrics", f"{where}none of the mapped fields {list(topic_map.fields)} present")
        ts = now
        if topic_map.ts_field is not None and topic_map.ts_field in obj:
            ts = _timestamp(obj[topic_map.ts_field], f"{where}{topic_map.ts_field}")
        status = obj.get(topic_map.status_field) if topic_map.status_field is not None else None
        result = normaliser.normalise(machine_id, ts, values, source=source, raw=raw, status=status)
        if isinstance(result, Rejected):
            raise _Reject(result.reason, where + result.detail)
        readings.append(result)
    return readings


def _kind(doc: object) -> str:
    if isinstance(doc, list):
        return "an empty array" if not doc else "an array holding non-objects"
    return type(doc).__name__


def _timestamp(value: object, field: str) -> int:
    """Epoch ms from epoch ms, epoch s or ISO-8601 with offset; range is checked by the normaliser."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not isfinite(value) or abs(value) > 1e15:
            raise _Reject("bad_timestamp", f"{field}: {value!r} is not a usable epoch time")
        return round(value * 1000) if abs(value) < _SECONDS_BELOW else round(value)
    if isinstance(value, str) and len(value) <= 64:
        if _NUMBER_RE.fullmatch(value):
            return _timestamp(float(value), field)
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Reject("bad_timestamp", f"{field}: {value!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise _Reject("bad_timestamp", f"{field}: {value!r} has no UTC offset") from None
        return round(parsed.timestamp() * 1000)
    raise _Reject("bad_timestamp", f"{field}: {str(value)[:40]!r} is not a timestamp")
