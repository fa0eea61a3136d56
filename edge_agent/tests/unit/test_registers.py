# SPDX-License-Identifier: Apache-2.0
"""Register decoding against hand-written byte patterns (not against our own encoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from ironlink_agent.inputs import registers as regs

# (type, value, {(byte_order, word_order): registers}) -- registers written out by hand from the big-endian
# bytes of the value: "ABCD" big/big, "CDAB" big/little, "BADC" little/big, "DCBA" little/little.
CASES = [
    ("int16", -2, {"big": [0xFFFE], "little": [0xFEFF]}),
    ("int16", 0x1234, {"big": [0x1234], "little": [0x3412]}),
    ("int16", -32768, {"big": [0x8000], "little": [0x0080]}),
    ("uint16", 0xFFFE, {"big": [0xFFFE], "little": [0xFEFF]}),
    ("uint16", 0x1234, {"big": [0x1234], "little": [0x3412]}),
    (
        "int32",
        -123456789,  # 0xF8A432EB
        {
            ("big", "big"): [0xF8A4, 0x32EB],
            ("big", "little"): [0x32EB, 0xF8A4],
            ("little", "big"): [0xA4F8, 0xEB32],
            ("little", "little"): [0xEB32, 0xA4F8],
        },
    ),
    (
        "uint32",
        0xAABBCCDD,
        {
            ("big", "big"): [0xAABB, 0xCCDD],
            ("big", "little"): [0xCCDD, 0xAABB],
            ("little", "big"): [0xBBAA, 0xDDCC],
            ("little", "little"): [0xDDCC, 0xBBAA],
        },
    ),
    (
        "float32",
        1.5,  # 0x3FC00000
        {
            ("big", "big"): [0x3FC0, 0x0000],
            ("big", "little"): [0x0000, 0x3FC0],
            ("little", "big"): [0xC03F, 0x0000],
            ("little", "little"): [0x0000, 0xC03F],
        },
    ),
    (
        "float32",
        -123.456,  # 0xC2F6E979
        {
            ("big", "big"): [0xC2F6, 0xE979],
            ("big", "little"): [0xE979, 0xC2F6],
            ("little", "big"): [0xF6C2, 0x79E9],
            ("little", "little"): [0x79E9, 0xF6C2],
        },
    ),
    (
        "float64",
        1234.5678,  # 0x40934A456D5CFAAD
        {
            ("big", "big"): [0x4093, 0x4A45, 0x6D5C, 0xFAAD],
            ("big", "little"): [0xFAAD, 0x6D5C, 0x4A45, 0x4093],
            ("little", "big"): [0x9340, 0x454A, 0x5C6D, 0xADFA],
            ("little", "little"): [0xADFA, 0x5C6D, 0x454A, 0x9340],
        },
    ),
    ("bool", True, {"big": [0x0001], "little": [0x0100]}),
    ("bool", False, {"big": [0x0000], "little": [0x0000]}),
]


def _expand():
    for type_, value, layouts in CASES:
        for key, registers in layouts.items():
            if isinstance(key, tuple):
                yield pytest.param(type_, value, *key, registers, id=f"{type_}-{value}-{key[0]}-{key[1]}")
            else:  # one register: word order cannot matter, check both
                for word_order in ("big", "little"):
                    yield pytest.param(
                        type_, value, key, word_order, registers, id=f"{type_}-{value}-{key}-{word_order}"
                    )


@pytest.mark.parametrize(("type_", "value", "byte_order", "word_order", "registers"), list(_expand()))
def test_decode_known_patterns(type_, value, byte_order, word_order, registers):
    decoded = regs.decode(registers, type_, byte_order, word_order)
    if type_.startswith("float"):
        assert decoded == pytest.approx(value, rel=1e-6)
    else:
        assert decoded == value
        assert type(decoded) is type(value)


@pytest.mark.parametrize(("type_", "value", "byte_order", "word_order", "registers"), list(_expand()))
def test_encode_is_inverse(type_, value, byte_order, word_order, registers):
    assert regs.encode(value, type_, byte_order, word_order) == registers


@pytest.mark.parametrize(
    ("type_", "registers"),
    [("int16", []), ("int32", [1]), ("float64", [1, 2, 3]), ("uint16", [1, 2]), ("bool", [])],
)
def test_wrong_register_count_is_an_error(type_, registers):
    with pytest.raises(regs.DecodeError, match="needs"):
        regs.decode(registers, type_)


@pytest.mark.parametrize("bad", [[-1], [0x10000], [1.5], [None]])
def test_register_values_must_be_16_bit(bad):
    with pytest.raises(regs.DecodeError):
        regs.decode(bad, "uint16")


def test_unknown_type_and_order():
    with pytest.raises(regs.DecodeError, match="unknown register type"):
        regs.decode([1], "int8")
    with pytest.raises(regs.DecodeError, match="byte_order"):
        regs.decode([1], "uint16", byte_order="middle")


@pytest.mark.parametrize(
    ("value", "scale", "offset", "expected", "expected_type"),
    [
        (100, 1.0, 0.0, 100, int),
        (100, 0.1, 0.0, 10.0, float),
        (-40, 0.5, -10.0, -30.0, float),
        (3, 1.0, 273.15, 276.15, float),
        (1.25, 2.0, 0.0, 2.5, float),
        (True, 10.0, 5.0, True, bool),  # booleans are never scaled
    ],
)
def test_scale_value(value, scale, offset, expected, expected_type):
    result = regs.scale_value(value, scale, offset)
    assert result == pytest.approx(expected)
    assert type(result) is expected_type


@pytest.mark.parametrize("registers", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_non_finite_float_is_rejected(registers):
    value = regs.decode(registers, "float32")
    assert not math.isfinite(value)
    with pytest.raises(regs.DecodeError, match="non-finite"):
        regs.scale_value(value)


@dataclass(frozen=True)
class R:
    name: str
    table: str
    address: int
    type: str


def test_plan_reads_coalesces_contiguous_values_per_table():
    maps = [
        R("a", "holding", 0, "uint16"),
        R("b", "holding", 1, "float32"),  # 1..2
        R("c", "holding", 3, "int16"),  # contiguous with b
        R("d", "holding", 10, "float64"),  # gap -> new block
        R("e", "input", 0, "int32"),
        R("f", "coil", 5, "bool"),
        R("g", "coil", 6, "bool"),
        R("h", "discrete", 0, "bool"),
        R("i", "holding", 1, "uint16"),  # overlaps b: same block
    ]
    blocks = regs.plan_reads(maps)
    described = [(b.table, b.address, b.count, [r.name for r in b.registers]) for b in blocks]
    assert described == [
        ("coil", 5, 2, ["f", "g"]),
        ("discrete", 0, 1, ["h"]),
        ("holding", 0, 4, ["a", "b", "i", "c"]),
        ("holding", 10, 4, ["d"]),
        ("input", 0, 2, ["e"]),
    ]


def test_plan_reads_respects_max_gap_and_protocol_limit():
    maps = [R(f"r{i}", "holding", i * 2, "uint16") for i in range(100)]  # every other register
    assert len(regs.plan_reads(maps)) == 100
    blocks = regs.plan_reads(maps, max_gap=1)
    assert [(b.address, b.count) for b in blocks] == [(0, 125), (126, 73)]  # split at the 125 limit
    assert all(b.count <= regs.MAX_REGISTERS_PER_READ for b in blocks)
    bits = [R(f"c{i}", "coil", i, "bool") for i in range(2500)]
    assert [b.count for b in regs.plan_reads(bits)] == [2000, 500]


def test_slice_for_picks_the_values_of_one_register():
    block = regs.plan_reads([R("a", "holding", 4, "uint16"), R("b", "holding", 5, "float32")])[0]
    values = [10, 0x3FC0, 0x0000]
    assert list(regs.slice_for(block, block.registers[1], values)) == [0x3FC0, 0x0000]
    assert regs.decode(regs.slice_for(block, block.registers[1], values), "float32") == 1.5
