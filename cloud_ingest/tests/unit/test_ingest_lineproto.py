# SPDX-License-Identifier: Apache-2.0
"""Line protocol escaping and point formatting (InfluxDB 1.x rules)."""

from __future__ import annotations

import pytest
from ironlink_ingest.lineproto import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    format_value,
    line,
    series_key,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("telemetry", "telemetry"),
        ("cpu load", "cpu\\ load"),
        ("a,b", "a\\,b"),
        ("a=b", "a=b"),  # '=' needs no escape in a measurement
        ('q"uote', 'q"uote'),
    ],
)
def test_measurement_escaping(raw: str, escaped: str) -> None:
    assert escape_measurement(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("PRESS-01", "PRESS-01"),
        ("machine.a_b", "machine.a_b"),
        ("with space", "with\\ space"),
        ("a,b", "a\\,b"),
        ("k=v", "k\\=v"),
        ("all , = three", "all\\ \\,\\ \\=\\ three"),
        ('q"uote', 'q"uote'),  # quotes are literal in tags
        ("back\\slash", "back\\slash"),  # a backslash not before a special char is literal
    ],
)
def test_tag_and_field_key_escaping(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


@pytest.mark.parametrize("bad", ["", "new\nline", "cr\rx", "trailing\\"])
def test_unrepresentable_keys_are_refused(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_key(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (-42, "-42i"),
        (2**63 - 1, "9223372036854775807i"),
        (-(2**63), "-9223372036854775808i"),
        (21.37, "21.37"),
        (5.0, "5.0"),
        (-0.0, "-0.0"),
        (1e20, "1e+20"),
        (1.5e-7, "1.5e-07"),
        ("auto", '"auto"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("multi\nline", '"multi\nline"'),  # newlines are allowed inside a quoted string field
        ("comma, = space", '"comma, = space"'),
        ("ünïcødé ✓", '"ünïcødé ✓"'),
    ],
)
def test_field_values(value: object, text: str) -> None:
    assert format_value(value) == text  # type: ignore[arg-type]


def test_bool_is_not_formatted_as_int() -> None:
    assert format_value(True) == "true"  # bool is an int subclass: checked first


def test_unsupported_value_type() -> None:
    with pytest.raises(LineProtocolError):
        format_value(None)  # type: ignore[arg-type]


def test_series_key_sorts_tags() -> None:
    assert (
        series_key("telemetry", [("site_id", "S"), ("client_id", "C")]) == "telemetry,client_id=C,site_id=S"
    )


def test_full_line() -> None:
    got = line("gateway_status", {"gateway_id": "GW 1", "client_id": "A"}, {"state": "on,line", "n": 3}, 17)
    assert got == 'gateway_status,client_id=A,gateway_id=GW\\ 1 state="on,line",n=3i 17'


def test_no_fields_is_an_error() -> None:
    with pytest.raises(LineProtocolError):
        line("m", {}, {}, 1)
