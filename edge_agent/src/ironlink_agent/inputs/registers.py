# SPDX-License-Identifier: Apache-2.0
"""Pure Modbus register decoding and read planning (no I/O, no pymodbus).

A Modbus register is a 16-bit word; pymodbus hands it over as an ``int`` already assembled from the two
bytes on the wire (high byte first). Devices disagree on how multi-byte values are laid out:

- ``byte_order`` is the order of the two bytes *inside* each register ("little" = bytes swapped);
- ``word_order`` is the order of the registers of a 32/64-bit value ("little" = least significant first).

The four classic 32-bit layouts of the value ``0xAABBCCDD``::

    byte big,    word big    -> registers [0xAABB, 0xCCDD]   "ABCD"
    byte big,    word little -> registers [0xCCDD, 0xAABB]   "CDAB"
    byte little, word big    -> registers [0xBBAA, 0xDDCC]   "BADC"
    byte little, word little -> registers [0xDDCC, 0xBBAA]   "DCBA"
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Value = int | float | bool

#: register type -> (struct format, number of 16-bit registers)
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "float64": ("d", 4),
    "bool": ("H", 1),
}
REGISTER_TYPES = frozenset(_FORMATS)
BIT_TABLES = frozenset({"coil", "discrete"})
WORD_TABLES = frozenset({"holding", "input"})
#: Modbus protocol limits per request (function codes 1/2: 2000 bits; 3/4: 125 registers).
MAX_BITS_PER_READ = 2000
MAX_REGISTERS_PER_READ = 125


class DecodeError(ValueError):
    """The registers cannot be decoded as the configured type."""


def register_count(type_: str, table: str = "holding") -> int:
    """How many addresses a value of ``type_`` occupies in ``table`` (bits count 1)."""
    if table in BIT_TABLES:
        return 1
    try:
        return _FORMATS[type_][1]
    except KeyError:
        raise DecodeError(f"unknown register type {type_!r}") from None


def _to_bytes(registers: Sequence[int], byte_order: str, word_order: str) -> bytes:
    if byte_order not in ("big", "little") or word_order not in ("big", "little"):
        raise DecodeError(
            f"byte_order/word_order must be 'big' or 'little', got {byte_order!r}/{word_order!r}"
        )
    words = list(registers)
    for word in words:
        if not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            raise DecodeError(f"register value {word!r} is not a 16-bit unsigned integer")
    if word_order == "little":
        words.reverse()
    return b"".join(word.to_bytes(2, byte_order) for word in words)


def decode(registers: Sequence[int], type_: str, byte_order: str = "big", word_order: str = "big") -> Value:
    """Decode the raw 16-bit ``registers`` of one value into a Python number.

    ``bool`` on a register table means "non-zero". Raises :class:`DecodeError` on a wrong count or type.
    """
    try:
        fmt, count = _FORMATS[type_]
    except KeyError:
        raise DecodeError(f"unknown register type {type_!r}") from None
    if len(registers) != count:
        raise DecodeError(f"{type_} needs {count} register(s), got {len(registers)}")
    raw = _to_bytes(registers, byte_order, word_order)
    value = struct.unpack(">" + fmt, raw)[0]
    if type_ == "bool":
        return value != 0
    return value


def encode(value: Value, type_: str, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """Inverse of :func:`decode` (used by simulators and tests)."""
    try:
        fmt, _count = _FORMATS[type_]
    except KeyError:
        raise DecodeError(f"unknown register type {type_!r}") from None
    raw = struct.pack(">" + fmt, int(bool(value)) if type_ == "bool" else value)
    words = [int.from_bytes(raw[i : i + 2], byte_order) for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    return words


def scale_value(value: Value, scale: float = 1.0, offset: float = 0.0) -> Value:
    """Apply ``value * scale + offset``; integers stay integers when scale is 1 and offset 0.

    Booleans are never scaled. Raises :class:`DecodeError` on a non-finite float (NaN/inf cannot be sent:
    the contract's JSON has no representation for them).
    """
    if isinstance(value, bool):
        return value
    if scale == 1 and offset == 0:
        result: Value = value
    else:
        result = value * scale + offset
    if isinstance(result, float) and not math.isfinite(result):
        raise DecodeError(f"non-finite value {result!r}")
    return result


# --------------------------------------------------------------------------------------------------
# Read planning: coalesce the configured registers of one device into as few requests as possible.


class RegisterLike(Protocol):
    """The fields of ``config.RegisterMap`` this module needs."""

    @property
    def name(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def address(self) -> int: ...
    @property
    def type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus request: ``count`` addresses of ``table`` from ``address``, and the values inside it."""

    table: str
    address: int
    count: int
    registers: tuple[RegisterLike, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    def describe(self) -> str:
        return f"{self.table}[{self.address}..{self.end - 1}]"


def plan_reads(registers: Iterable[RegisterLike], max_gap: int = 0) -> list[ReadBlock]:
    """Group register maps into contiguous read blocks, per table, in address order.

    Two values share a block when the gap between them is at most ``max_gap`` unmapped addresses (default 0:
    only contiguous or overlapping values, since reading an unmapped address makes many devices answer
    "illegal data address") and the block stays within the protocol's per-request limit.
    """
    by_table: dict[str, list[RegisterLike]] = {}
    for reg in registers:
        by_table.setdefault(reg.table, []).append(reg)
    blocks: list[ReadBlock] = []
    for table in sorted(by_table):
        limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
        regs = sorted(by_table[table], key=lambda r: (r.address, r.name))
        start = end = -1
        members: list[RegisterLike] = []
        for reg in regs:
            reg_end = reg.address + register_count(reg.type, table)
            if members and reg.address <= end + max_gap and max(end, reg_end) - start <= limit:
                end = max(end, reg_end)
                members.append(reg)
                continue
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(members)))
            start, end, members = reg.address, reg_end, [reg]
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks


def slice_for(block: ReadBlock, reg: RegisterLike, values: Sequence[int] | Sequence[bool]) -> Sequence:
    """The part of a block's response that holds ``reg``."""
    first = reg.address - block.address
    return values[first : first + register_count(reg.type, block.table)]
