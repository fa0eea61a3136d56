"""Spool row encoding and the batch wire format of telemetry contract v1.

``pack_reading``/``unpack_reading`` are the spool's row format: a "shape" (machine id, metric names and
types) followed by a fixed ``struct`` of values, so rows of the same machine share a byte-identical shape
prefix that ``encode_batch`` parses once and caches.

``encode_batch`` groups rows into series (same shape), lays each series out column by column
(see ``_codec``) and compresses the body with zlib. ``decode_batch`` reverses it for the cloud ingest
service, which decodes untrusted payloads: every failure is a ``WireError``. The byte layout is
documented in docs/telemetry-contract.md.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ironlink_agent.contract._codec import Reader, WireError, put_floats, put_ints, put_str, put_varint
from ironlink_agent.contract.model import (
    INT_MAX,
    MAX_METRICS_PER_READING,
    MAX_STR_VALUE_LEN,
    QUALITIES,
    SCHEMA_VERSION,
    STATUSES,
    TS_MAX_MS,
    TS_MIN_MS,
    Identity,
    MetricValue,
    Reading,
    identity_errors,
    is_valid_machine_id,
    is_valid_metric_name,
    is_valid_spool_id,
)

__all__ = [
    "MAGIC",
    "MAX_BODY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS_PER_BATCH",
    "WIRE_VERSION",
    "Batch",
    "Series",
    "WireError",
    "decode_batch",
    "encode_batch",
    "pack_reading",
    "unpack_reading",
]

MAGIC = b"ILNK"
WIRE_VERSION = 1
COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 1
ROW_VERSION = 1

MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # decompression bound (zip bombs)
MAX_READINGS_PER_BATCH = 100_000
_MAX_STR_BYTES = 4 * MAX_STR_VALUE_LEN
_ZLIB_LEVEL = 6

# Type codes (row shape and batch series header).
T_FLOAT, T_INT, T_BOOL, T_STR = 1, 2, 3, 4
_TYPE_CODE: dict[type, int] = {float: T_FLOAT, int: T_INT, bool: T_BOOL, str: T_STR}
_STRUCT_CHAR = {T_FLOAT: "d", T_INT: "q", T_BOOL: "?", T_STR: "I"}
_STATUS_CODE: dict[str | None, int] = {None: 0} | {s: i + 1 for i, s in enumerate(STATUSES)}
_QUALITY_CODE: dict[str | None, int] = {None: 0} | {q: i + 1 for i, q in enumerate(QUALITIES)}
_STATUS_OF: tuple[str | None, ...] = (None, *STATUSES)
_QUALITY_OF: tuple[str | None, ...] = (None, *QUALITIES)
_HEADER = struct.Struct("<4sBBI")  # magic, wire version, compression, body length


@dataclass(frozen=True, slots=True)
class _Shape:
    machine_id: str
    names: tuple[str, ...]
    types: bytes
    values: struct.Struct  # "<qBB" + one char per metric
    str_slots: tuple[int, ...]  # metric indexes holding str values (their UTF-8 follows the struct)


_PACK_CACHE: dict[tuple[str, tuple[str, ...], bytes], bytes] = {}
_SHAPE_CACHE: dict[bytes, _Shape] = {}
_CACHE_MAX = 4096


def _make_shape(machine_id: str, names: tuple[str, ...], types: bytes) -> _Shape:
    fmt = "<qBB" + "".join(_STRUCT_CHAR[t] for t in types)
    str_slots = tuple(i for i, t in enumerate(types) if t == T_STR)
    return _Shape(machine_id, names, types, struct.Struct(fmt), str_slots)


def _shape_prefix(machine_id: str, names: tuple[str, ...], types: bytes) -> bytes:
    out = bytearray((ROW_VERSION, 0, 0))
    mid = machine_id.encode()
    out += bytes((len(mid),)) + mid + bytes((len(names),))
    for name, t in zip(names, types, strict=True):
        raw = name.encode()
        out += bytes((len(raw),)) + raw + bytes((t,))
    size = len(out) - 3
    out[1:3] = size.to_bytes(2, "little")
    return bytes(out)


def pack_reading(r: Reading) -> bytes:
    """Encode a reading as a spool row. Raises ValueError for values the contract cannot carry."""
    names = tuple(r.metrics)
    values = list(r.metrics.values())
    try:
        types = bytes([_TYPE_CODE[type(v)] for v in values])
    except KeyError as exc:
        raise ValueError(f"{r.machine_id}: unsupported metric value type {exc}") from None
    key = (r.machine_id, names, types)
    prefix = _PACK_CACHE.get(key)
    if prefix is None:
        if not is_valid_machine_id(r.machine_id) or len(names) > MAX_METRICS_PER_READING:
            raise ValueError(f"invalid machine id or too many metrics: {r.machine_id!r}")
        bad = [n for n in names if not is_valid_metric_name(n)]
        if bad:
            raise ValueError(f"invalid metric names {bad!r}")
        if len(_PACK_CACHE) >= _CACHE_MAX:
            _PACK_CACHE.clear()
        prefix = _PACK_CACHE[key] = _shape_prefix(r.machine_id, names, types)
    shape = _shape_of(prefix[3:])
    tail = b""
    if shape.str_slots:
        encoded = [values[i].encode() for i in shape.str_slots]  # type: ignore[union-attr]
        for i, raw in zip(shape.str_slots, encoded, strict=True):
            values[i] = len(raw)
        tail = b"".join(encoded)
    if T_FLOAT in types and any(v != v or v in (_INF, -_INF) for v in values if type(v) is float):
        raise ValueError(f"{r.machine_id}: non-finite float")
    try:
        body = shape.values.pack(r.ts, _STATUS_CODE[r.status], _QUALITY_CODE[r.quality], *values)
    except (struct.error, KeyError) as exc:
        raise ValueError(f"{r.machine_id}: cannot pack reading: {exc}") from None
    return prefix + body + tail


_INF = float("inf")


def _shape_of(shape_bytes: bytes) -> _Shape:
    shape = _SHAPE_CACHE.get(shape_bytes)
    if shape is None:
        shape = _parse_shape(shape_bytes)
        if len(_SHAPE_CACHE) >= _CACHE_MAX:
            _SHAPE_CACHE.clear()
        _SHAPE_CACHE[shape_bytes] = shape
    return shape


def _parse_shape(data: bytes) -> _Shape:
    rd = Reader(data)
    machine_id = rd.take(rd.u8()).decode()
    n = rd.u8()
    names, types = [], bytearray()
    for _ in range(n):
        names.append(rd.take(rd.u8()).decode())
        types.append(rd.u8())
    if rd.pos != len(data) or any(t not in _STRUCT_CHAR for t in types):
        raise WireError("malformed row shape")
    return _make_shape(machine_id, tuple(names), bytes(types))


def _unpack_values(shape: _Shape, row: bytes, start: int) -> list[object]:
    values = list(shape.values.unpack_from(row, start))
    pos = start + shape.values.size
    for i in shape.str_slots:
        size = values[3 + i]
        values[3 + i] = row[pos : pos + size].decode()  # type: ignore[index]
        pos += size  # type: ignore[operator]
    if pos != len(row):
        raise WireError("spool row length mismatch")
    return values


def unpack_reading(b: bytes) -> Reading:
    """Decode a spool row written by ``pack_reading``. Raises WireError on a corrupt row."""
    try:
        row = bytes(b)
        if row[0] != ROW_VERSION:
            raise WireError(f"unknown spool row version {row[0]}")
        end = 3 + int.from_bytes(row[1:3], "little")
        shape = _shape_of(row[3:end])
        values = _unpack_values(shape, row, end)
        return Reading(
            shape.machine_id,
            values[0],  # type: ignore[arg-type]
            dict(zip(shape.names, values[3:], strict=True)),  # type: ignore[arg-type]
            _STATUS_OF[values[1]],  # type: ignore[index]
            _QUALITY_OF[values[2]],  # type: ignore[index]
        )
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"corrupt spool row: {exc}") from exc


def encode_batch(identity: Identity, spool_id: str, rows: Sequence[tuple[int, bytes]]) -> bytes:
    """Encode ``(seq, packed_reading)`` rows as one compressed, versioned MQTT payload."""
    if not is_valid_spool_id(spool_id):
        raise ValueError(f"invalid spool_id {spool_id!r}")
    if not rows or len(rows) > MAX_READINGS_PER_BATCH:
        raise ValueError(f"a batch holds 1..{MAX_READINGS_PER_BATCH} readings, got {len(rows)}")
    groups: dict[bytes, list[list[object]]] = {}
    shapes: dict[bytes, _Shape] = {}
    try:
        for seq, row in rows:
            end = 3 + (row[1] | row[2] << 8)
            key = row[3:end]
            group = groups.get(key)
            if group is None:
                if row[0] != ROW_VERSION:
                    raise WireError(f"seq {seq}: unknown spool row version {row[0]}")
                shapes[key] = _shape_of(key)
                group = groups[key] = []
            shape = shapes[key]
            if shape.str_slots:
                values = _unpack_values(shape, row, end)
            else:
                values = list(shape.values.unpack_from(row, end))
            values.append(seq)
            group.append(values)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"corrupt spool row: {exc}") from exc
    out: list[bytes] = []
    for field in (identity.client_id, identity.site_id, identity.gateway_id, identity.environment):
        put_str(out, field)
    put_str(out, identity.hostname)
    put_str(out, spool_id)
    put_varint(out, len(groups))
    for key, group in groups.items():
        _put_series(out, shapes[key], group)
    body = b"".join(out)
    return _HEADER.pack(MAGIC, WIRE_VERSION, COMPRESSION_ZLIB, len(body)) + zlib.compress(body, _ZLIB_LEVEL)


def _put_series(out: list[bytes], shape: _Shape, group: list[list[object]]) -> None:
    put_str(out, shape.machine_id)
    put_varint(out, len(shape.names))
    for name, t in zip(shape.names, shape.types, strict=True):
        put_str(out, name)
        out.append(bytes((t,)))
    put_varint(out, len(group))
    cols = list(zip(*group, strict=True))
    put_ints(out, list(cols[-1]))  # type: ignore[arg-type]  # seq
    put_ints(out, list(cols[0]))  # type: ignore[arg-type]  # ts
    out.append(bytes(cols[1]))  # type: ignore[arg-type]  # status codes
    out.append(bytes(cols[2]))  # type: ignore[arg-type]  # quality codes
    for t, col in zip(shape.types, cols[3:-1], strict=True):
        if t == T_FLOAT:
            put_floats(out, list(col))  # type: ignore[arg-type]
        elif t == T_INT:
            put_ints(out, list(col))  # type: ignore[arg-type]
        elif t == T_BOOL:
            out.append(bytes(col))  # type: ignore[arg-type]
        else:
            table = {s: i for i, s in enumerate(dict.fromkeys(col))}
            put_varint(out, len(table))
            for s in table:
                put_str(out, s)  # type: ignore[arg-type]
            put_ints(out, [table[s] for s in col])
