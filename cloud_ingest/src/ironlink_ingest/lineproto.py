# SPDX-License-Identifier: Apache-2.0
"""InfluxDB 1.x line protocol: escaping and point formatting.

Escaping rules (https://docs.influxdata.com/influxdb/v1.8/write_protocols/line_protocol_reference/):
measurement: comma, space; tag keys, tag values, field keys: comma, equals sign, space; string field
values: double quote and backslash. Newlines cannot be escaped anywhere but inside a quoted string field
value, so they are refused in names and tag values (the contract's patterns never produce them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A value line protocol cannot carry (newline in a name or tag, empty tag value, no fields)."""


def _no_newline(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"{what} contains a newline: {text!r}")
    return text


def escape_measurement(name: str) -> str:
    if not name:
        raise LineProtocolError("empty measurement")
    return _no_newline(name, "measurement").translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Tag key, tag value or field key."""
    if not text:
        raise LineProtocolError("empty tag key, tag value or field key")
    if text.endswith("\\"):
        raise LineProtocolError(f"a trailing backslash cannot be escaped: {text!r}")
    return _no_newline(text, "tag or field key").translate(_KEY)


def format_value(value: FieldValue) -> str:
    """``true``/``false``, ``<int>i``, float ``repr``, or a quoted, escaped string."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}")


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,k=v,...`` with tags sorted by key (InfluxDB's canonical order, cheapest to index)."""
    parts = [escape_measurement(measurement)]
    parts += [f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags)]
    return ",".join(parts)


def format_fields(fields: Mapping[str, FieldValue]) -> str:
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    return ",".join(f"{escape_key(k)}={format_value(v)}" for k, v in fields.items())


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts: int) -> str:
    """One point (no trailing newline); ``ts`` in the write's precision."""
    return f"{series_key(measurement, tags.items())} {format_fields(fields)} {int(ts)}"
