# SPDX-License-Identifier: Apache-2.0
"""Spool row encoding and the batch wire format of telemetry contract v1.

``pack_reading``/``unpack_reading`` are the spool's row format: a "shape" (machine id, metric names and
types) followed by a fixed ``struct`` of values, so rows of the same machine share a byte-identical shape
prefix that ``encode_batch`` parses once and caches.

``encode_batch`` groups rows into series (rows with the same metric names and types; each machine's rows
contiguous), lays each series out column by column (see ``_codec``) and compresses the body with zlib.
``decode_batch`` reverses it for the cloud ingest service, which decodes untrusted payloads: every failure
is a ``WireError``. The byte layout is documented in docs/telemetry-contract.md.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from math import isfinite
from typing import Any

from ironlink_contract._codec import Reader, WireError, put_floats, put_ints, put_str, put_varint
from ironlink_contract.model import (
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
        encoded = [str(values[i]).encode() for i in shape.str_slots]
        for i, raw in zip(shape.str_slots, encoded, strict=True):
            values[i] = len(raw)
        tail = b"".join(encoded)
    if T_FLOAT in types and not all(map(isfinite, (v for v in values if type(v) is float))):
        raise ValueError(f"{r.machine_id}: non-finite float")
    try:
        body = shape.values.pack(r.ts, _STATUS_CODE[r.status], _QUALITY_CODE[r.quality], *values)
    except (struct.error, KeyError) as exc:
        raise ValueError(f"{r.machine_id}: cannot pack reading: {exc}") from None
    return prefix + body + tail


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


def _unpack_values(shape: _Shape, row: bytes, start: int) -> list[Any]:
    values = list(shape.values.unpack_from(row, start))
    pos = start + shape.values.size
    for i in shape.str_slots:
        size = values[3 + i]
        values[3 + i] = row[pos : pos + size].decode()
        pos += size
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
        ts, status, quality, *metrics = values
        return Reading(
            shape.machine_id,
            ts,
            dict(zip(shape.names, metrics, strict=True)),
            _STATUS_OF[status],
            _QUALITY_OF[quality],
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
    shapes, groups = _group_rows(rows)
    out: list[bytes] = []
    for field in (identity.client_id, identity.site_id, identity.gateway_id, identity.environment):
        put_str(out, field)
    put_str(out, identity.hostname)
    put_str(out, spool_id)
    # Machines with the same metric set share one series: one header, one set of columns (rows grouped by
    # machine, so deltas stay within a machine except at its first row).
    machines: dict[str, int] = {}
    series: dict[tuple[tuple[str, ...], bytes], list[tuple[int, list[list[object]]]]] = {}
    for key, group in groups.items():
        shape = shapes[key]
        index = machines.setdefault(shape.machine_id, len(machines))
        series.setdefault((shape.names, shape.types), []).append((index, group))
    put_varint(out, len(machines))
    for machine_id in machines:
        put_str(out, machine_id)
    put_varint(out, len(series))
    for (names, types), parts in series.items():
        _put_series(out, names, types, parts)
    body = b"".join(out)
    return _HEADER.pack(MAGIC, WIRE_VERSION, COMPRESSION_ZLIB, len(body)) + zlib.compress(body, _ZLIB_LEVEL)


def _group_rows(
    rows: Sequence[tuple[int, bytes]],
) -> tuple[dict[bytes, _Shape], dict[bytes, list[list[object]]]]:
    """Unpack rows into value lists (seq appended last), grouped by their shape bytes, in first-seen order."""
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
    return shapes, groups


def _put_series(
    out: list[bytes], names: tuple[str, ...], types: bytes, parts: list[tuple[int, list[list[object]]]]
) -> None:
    put_varint(out, len(names))
    for name, t in zip(names, types, strict=True):
        put_str(out, name)
        out.append(bytes((t,)))
    rows = [row for _, group in parts for row in group]
    put_varint(out, len(rows))
    put_ints(out, [index for index, group in parts for _ in group])  # machine index per row
    starts = list(accumulate((len(group) for _, group in parts[:-1]), initial=0))  # one run per machine
    cols = list(zip(*rows, strict=True))
    put_ints(out, list(cols[-1]), starts)  # seq
    put_ints(out, list(cols[0]), starts)  # ts
    out.append(bytes(cols[1]))  # status codes
    out.append(bytes(cols[2]))  # quality codes
    for t, col in zip(types, cols[3:-1], strict=True):
        if t == T_FLOAT:
            put_floats(out, list(col), starts)
        elif t == T_INT:
            put_ints(out, list(col), starts)
        elif t == T_BOOL:
            out.append(bytes(col))
        else:
            table = {s: i for i, s in enumerate(dict.fromkeys(col))}
            put_varint(out, len(table))
            for s in table:
                put_str(out, s)
            put_ints(out, [table[s] for s in col])


@dataclass(frozen=True, slots=True)
class Series:
    """Decoded rows sharing one metric set (names and types), column by column."""

    machine_ids: list[str]  # per row
    names: tuple[str, ...]
    seqs: list[int]
    ts: list[int]
    status: list[str | None]
    quality: list[str | None]
    columns: tuple[list[MetricValue], ...]  # one per name


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch payload."""

    wire_version: int
    identity: Identity
    spool_id: str
    series: tuple[Series, ...]

    def __len__(self) -> int:
        return sum(len(s.seqs) for s in self.series)

    def readings(self) -> Iterator[tuple[int, Reading]]:
        """``(seq, Reading)`` pairs, series by series."""
        for s in self.series:
            for i, seq in enumerate(s.seqs):
                metrics = {name: col[i] for name, col in zip(s.names, s.columns, strict=True)}
                yield seq, Reading(s.machine_ids[i], s.ts[i], metrics, s.status[i], s.quality[i])

    def documents(self) -> Iterator[dict[str, object]]:
        """Canonical v1 documents (telemetry-v1.json), series by series, ``message_id`` filled in."""
        ident = self.identity
        base: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "message_id": "",
            "client_id": ident.client_id,
            "site_id": ident.site_id,
            "gateway_id": ident.gateway_id,
            "environment": ident.environment,
            "hostname": ident.hostname,
        }
        prefix = self.spool_id + ":"
        for seq, r in self.readings():
            doc = dict(base)
            doc["message_id"] = prefix + str(seq)
            doc["machine_id"] = r.machine_id
            doc["ts"] = r.ts
            doc["metrics"] = r.metrics
            if r.status is not None:
                doc["status"] = r.status
            if r.quality is not None:
                doc["quality"] = r.quality
            yield doc


def decode_batch(payload: bytes) -> Batch:
    """Decode and fully validate a batch payload. Raises WireError on anything malformed or over a limit."""
    try:
        return _decode(bytes(payload))
    except WireError:
        raise
    except Exception as exc:  # a codec bug must not crash the ingest service
        raise WireError(f"malformed batch: {type(exc).__name__}: {exc}") from exc


def _decompress(payload: bytes) -> tuple[int, bytes]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes over {MAX_PAYLOAD_BYTES}")
    if len(payload) < _HEADER.size:
        raise WireError("payload shorter than the header")
    magic, version, compression, size = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise WireError("bad magic: not an Ironlink batch")
    if version != WIRE_VERSION:
        raise WireError(f"unsupported wire version {version}")
    if size > MAX_BODY_BYTES:
        raise WireError(f"declared body of {size} bytes over {MAX_BODY_BYTES}")
    data = payload[_HEADER.size :]
    if compression == COMPRESSION_NONE:
        body = data
    elif compression == COMPRESSION_ZLIB:
        dec = zlib.decompressobj()
        try:
            body = dec.decompress(data, size + 1)
        except zlib.error as exc:
            raise WireError(f"bad zlib stream: {exc}") from exc
        if not dec.eof or dec.unconsumed_tail or dec.unused_data:
            raise WireError("zlib stream longer than declared, truncated, or followed by garbage")
    else:
        raise WireError(f"unknown compression {compression}")
    if len(body) != size:
        raise WireError(f"body is {len(body)} bytes, header says {size}")
    return version, body


def _decode(payload: bytes) -> Batch:
    version, body = _decompress(payload)
    rd = Reader(body)
    fields = [rd.str(64) for _ in range(5)]
    keys = ("client_id", "site_id", "gateway_id", "environment", "hostname")
    errors = identity_errors(dict(zip(keys, fields, strict=True)))
    if errors:
        raise WireError("; ".join(errors))
    spool_id = rd.str(64)
    if not is_valid_spool_id(spool_id):
        raise WireError(f"invalid spool_id {spool_id!r}")
    machines = [rd.str(64) for _ in range(rd.varint(MAX_READINGS_PER_BATCH))]
    bad = [m for m in machines if not is_valid_machine_id(m)]
    if bad or len(set(machines)) != len(machines):
        raise WireError(f"invalid or duplicate machine ids {bad[:3]!r}")
    n_series = rd.varint(MAX_READINGS_PER_BATCH)
    series, total = [], 0
    for _ in range(n_series):
        s = _read_series(rd, machines, MAX_READINGS_PER_BATCH - total)
        total += len(s.seqs)
        series.append(s)
    if rd.pos != len(body):
        raise WireError(f"{len(body) - rd.pos} trailing bytes after the last series")
    seqs = [seq for s in series for seq in s.seqs]
    if len(set(seqs)) != len(seqs):
        raise WireError("duplicate seq (message_id) in batch")
    return Batch(version, Identity(*fields), spool_id, tuple(series))


def _read_series(rd: Reader, machines: list[str], max_rows: int) -> Series:
    n_metrics = rd.varint(MAX_METRICS_PER_READING)
    names, types = [], []
    for _ in range(n_metrics):
        name = rd.str(64)
        if not is_valid_metric_name(name):
            raise WireError(f"invalid metric name {name!r}")
        names.append(name)
        types.append(rd.u8())
    if len(set(names)) != len(names):
        raise WireError(f"duplicate metric names in {names!r}")
    n = rd.varint(max_rows)
    if n == 0:
        raise WireError("empty series")
    index = rd.ints(n)
    if min(index) < 0 or max(index) >= len(machines):
        raise WireError("machine index out of range")
    machine_ids = [machines[i] for i in index]
    starts = [0] + [i for i in range(1, n) if index[i] != index[i - 1]]
    if len(set(index)) != len(starts):
        raise WireError("a machine's rows are not contiguous in their series")
    where = ",".join(names)[:80]
    seqs = rd.ints(n, starts)
    if min(seqs) < 0:
        raise WireError(f"[{where}]: negative seq")
    ts = rd.ints(n, starts)
    if min(ts) < TS_MIN_MS or max(ts) >= TS_MAX_MS:
        raise WireError(f"[{where}]: ts outside [{TS_MIN_MS}, {TS_MAX_MS})")
    status = [_code(_STATUS_OF, c, "status") for c in rd.take(n)]
    quality = [_code(_QUALITY_OF, c, "quality") for c in rd.take(n)]
    columns = tuple(_read_column(rd, t, n, starts, name) for name, t in zip(names, types, strict=True))
    return Series(machine_ids, tuple(names), seqs, ts, status, quality, columns)


def _code(table: tuple[str | None, ...], code: int, what: str) -> str | None:
    if code >= len(table):
        raise WireError(f"unknown {what} code {code}")
    return table[code]


def _read_column(rd: Reader, t: int, n: int, starts: list[int], where: str) -> list[MetricValue]:
    if t == T_FLOAT:
        return list[MetricValue](rd.floats(n, starts))
    if t == T_INT:
        return list[MetricValue](rd.ints(n, starts))
    if t == T_BOOL:
        raw = rd.take(n)
        if raw.translate(None, b"\x00\x01"):
            raise WireError(f"{where}: bool column holds bytes other than 0/1")
        return [b == 1 for b in raw]
    if t == T_STR:
        size = rd.varint(n)
        table = [rd.str(_MAX_STR_BYTES) for _ in range(size)]
        if any(len(s) > MAX_STR_VALUE_LEN for s in table):
            raise WireError(f"{where}: string over {MAX_STR_VALUE_LEN} characters")
        idx = rd.ints(n)
        if min(idx) < 0 or max(idx) >= size:
            raise WireError(f"{where}: string index out of range")
        return [table[i] for i in idx]
    raise WireError(f"{where}: unknown type code {t}")
