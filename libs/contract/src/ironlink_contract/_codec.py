# SPDX-License-Identifier: Apache-2.0
"""Column codecs of the batch wire format (docs/telemetry-contract.md, "Batch wire format").

Columns are what make batches small: a slowly drifting sensor becomes a run of tiny deltas that zlib folds
into almost nothing, where row-wise JSON would repeat every key and digit. Fixed-width arrays are stored
byte-shuffled (all first bytes, then all second bytes, ...) because the high bytes of small numbers are
runs of 0x00/0xFF that compress to nearly nothing.

Decoders treat their input as hostile: every count is checked against the bytes actually present before
anything is allocated, and every failure is a ``WireError``.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any

from ironlink_contract.model import INT_MAX, INT_MIN


class WireError(ValueError):
    """A payload or spool row that is not valid wire data (malformed, hostile or over a limit)."""


# Column modes (one byte before each numeric column).
MODE_INT_DELTA = 1  # i64 first value, u8 width, shuffled deltas
MODE_INT_PLAIN = 2  # u8 width, shuffled values
MODE_FLOAT_DECIMAL = 3  # u8 decimals d, then an int column of round(v * 10**d)
MODE_FLOAT_RAW = 4  # shuffled IEEE-754 binary64

_TYPECODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_BIG_ENDIAN = sys.byteorder == "big"
_I64 = struct.Struct("<q")
_MAX_DECIMALS = 9
_EXACT_INT = 2**53  # scaled floats stay exactly representable
_FIRST_POW10 = [10.0**d for d in range(_MAX_DECIMALS + 1)]

assert array("i").itemsize == 4 and array("h").itemsize == 2 and array("q").itemsize == 8


def put_varint(out: list[bytes], value: int) -> None:
    """Append an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError("varint must be >= 0")
    buf = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            buf.append(byte | 0x80)
        else:
            buf.append(byte)
            break
    out.append(bytes(buf))


def put_str(out: list[bytes], text: str) -> None:
    """Append a varint length and the UTF-8 bytes."""
    data = text.encode()
    put_varint(out, len(data))
    out.append(data)


def _width(lo: int, hi: int) -> int:
    if lo >= -128 and hi <= 127:
        return 1
    if lo >= -32768 and hi <= 32767:
        return 2
    if lo >= -(2**31) and hi < 2**31:
        return 4
    return 8


def _shuffle(values: list[int] | list[float], typecode: str, width: int) -> bytes:
    arr = array(typecode, values)
    if _BIG_ENDIAN:
        arr.byteswap()
    raw = arr.tobytes()
    if width == 1:
        return raw
    return b"".join(raw[i::width] for i in range(width))


def _unshuffle(data: bytes, typecode: str, width: int) -> list[Any]:
    if width > 1:
        n = len(data) // width
        buf = bytearray(len(data))
        for i in range(width):
            buf[i::width] = data[i * n : (i + 1) * n]
        data = bytes(buf)
    arr = array(typecode)
    arr.frombytes(data)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr.tolist()


def _run_deltas(values: list[int], starts: Sequence[int]) -> list[int]:
    """Deltas inside each run (a run starts at each index of ``starts``; starts[0] == 0)."""
    if len(starts) == 1:
        return [b - a for a, b in pairwise(values)]
    deltas: list[int] = []
    for a, b in pairwise([*starts, len(values)]):
        run = values[a:b]
        deltas.extend(y - x for x, y in pairwise(run))
    return deltas


def put_ints(out: list[bytes], values: list[int], starts: Sequence[int] = (0,)) -> None:
    """Append an int column (int64 values), delta-coded inside runs when the deltas fit int64, else plain.

    A series holds several machines' rows back to back; each machine is a run, so a jump between machines
    does not widen every delta. Run firsts: one i64, or (several runs) a nested int column.
    """
    deltas = _run_deltas(values, starts)
    lo, hi = (min(deltas), max(deltas)) if deltas else (0, 0)
    if lo >= INT_MIN and hi <= INT_MAX:
        width = _width(lo, hi)
        out.append(bytes((MODE_INT_DELTA,)))
        if len(starts) == 1:
            out.append(_I64.pack(values[0]))
        else:
            put_ints(out, [values[i] for i in starts])
        out.append(bytes((width,)))
        out.append(_shuffle(deltas, _TYPECODES[width], width))
    else:
        width = _width(min(values), max(values))
        out.append(bytes((MODE_INT_PLAIN, width)))
        out.append(_shuffle(values, _TYPECODES[width], width))


def _decimals(values: list[float]) -> int | None:
    """Smallest d such that every value is exactly round(v * 10**d) / 10**d, or None."""
    first = values[0]
    if not abs(first) < _EXACT_INT:  # also NaN
        return None
    for d in range(_MAX_DECIMALS + 1):
        scale = _FIRST_POW10[d]
        q = round(first * scale)
        if q / scale == first:
            break
    else:
        return None
    for d2 in range(d, _MAX_DECIMALS + 1):
        scale = _FIRST_POW10[d2]
        if all(
            abs(v) < _EXACT_INT and abs(q := round(v * scale)) < _EXACT_INT and q / scale == v for v in values
        ):
            return d2
    return None


def put_floats(out: list[bytes], values: list[float], starts: Sequence[int] = (0,)) -> None:
    """Append a float column: scaled integers when the values are short decimals, else raw binary64."""
    try:
        d = _decimals(values)
    except (ValueError, OverflowError) as exc:  # NaN / inf
        raise WireError("non-finite float value") from exc
    if d is not None and 0.0 in values and any(math.copysign(1.0, v) < 0 for v in values if v == 0.0):
        d = None  # -0.0 would come back as 0.0
    if d is None:
        if not all(map(math.isfinite, values)):
            raise WireError("non-finite float value")
        out.append(bytes((MODE_FLOAT_RAW,)))
        out.append(_shuffle(values, "d", 8))
        return
    scale = _FIRST_POW10[d]
    out.append(bytes((MODE_FLOAT_DECIMAL, d)))
    put_ints(out, [round(v * scale) for v in values], starts)


class Reader:
    """A bounds-checked cursor over a decompressed body."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        """Next n bytes, or WireError if the body is shorter."""
        if n < 0 or self.pos + n > len(self.buf):
            raise WireError(f"truncated: need {n} bytes at offset {self.pos}")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def u8(self) -> int:
        """Next byte."""
        if self.pos >= len(self.buf):
            raise WireError(f"truncated at offset {self.pos}")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def varint(self, limit: int) -> int:
        """Next unsigned varint, which must be <= limit."""
        value = shift = 0
        for _ in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if value > limit:
                    raise WireError(f"count {value} over limit {limit} at offset {self.pos}")
                return value
            shift += 7
        raise WireError(f"varint too long at offset {self.pos}")

    def str(self, max_bytes: int) -> str:
        """Next length-prefixed UTF-8 string of at most max_bytes bytes."""
        data = self.take(self.varint(max_bytes))
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise WireError(f"invalid UTF-8 at offset {self.pos}") from exc

    def ints(self, n: int, starts: Sequence[int] = (0,)) -> list[int]:
        """An int column of n int64 values in runs beginning at ``starts`` (starts[0] == 0, ascending)."""
        mode = self.u8()
        if mode == MODE_INT_DELTA:
            if len(starts) == 1:
                firsts: list[int] = list(_I64.unpack(self.take(8)))
            else:
                firsts = self.ints(len(starts))
            width = self._width()
            deltas: list[int] = _unshuffle(self.take((n - len(starts)) * width), _TYPECODES[width], width)
            if len(starts) == 1:
                values = list(accumulate(deltas, initial=firsts[0]))
            else:
                values, pos = [], 0
                for first, (a, b) in zip(firsts, pairwise([*starts, n]), strict=True):
                    values.extend(accumulate(deltas[pos : pos + b - a - 1], initial=first))
                    pos += b - a - 1
            if min(values) < INT_MIN or max(values) > INT_MAX:
                raise WireError("int column overflows int64")
            return values
        if mode == MODE_INT_PLAIN:
            width = self._width()
            return _unshuffle(self.take(n * width), _TYPECODES[width], width)
        raise WireError(f"unknown int column mode {mode}")

    def floats(self, n: int, starts: Sequence[int] = (0,)) -> list[float]:
        """A float column of n finite values."""
        mode = self.u8()
        if mode == MODE_FLOAT_DECIMAL:
            d = self.u8()
            if d > _MAX_DECIMALS:
                raise WireError(f"decimals {d} over {_MAX_DECIMALS}")
            scaled = self.ints(n, starts)
            if scaled and (min(scaled) <= -_EXACT_INT or max(scaled) >= _EXACT_INT):
                raise WireError("scaled float out of exact range")
            scale = _FIRST_POW10[d]
            return [q / scale for q in scaled]
        if mode == MODE_FLOAT_RAW:
            values: list[float] = _unshuffle(self.take(n * 8), "d", 8)
            if not all(map(math.isfinite, values)):
                raise WireError("non-finite float in column")
            return values
        raise WireError(f"unknown float column mode {mode}")

    def _width(self) -> int:
        width = self.u8()
        if width not in _TYPECODES:
            raise WireError(f"bad column width {width}")
        return width
