# SPDX-License-Identifier: Apache-2.0
"""The line protocol and the HTTP writer against a real influxd 1.6.7: what is written reads back exactly,
and the response classification (permanent vs transient) matches what InfluxDB really answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from ironlink_ingest.config import ClientCredentials, InfluxConfig
from ironlink_ingest.influx import InfluxClient
from ironlink_ingest.lineproto import line
from testsupport.influxdb import InfluxServer
from testsupport.programs import require

pytestmark = pytest.mark.integration

TRICKY_TAGS = {"machine_id": "PRESS 1,a=b", "site_id": 'q"uote', "gateway_id": "back\\slash"}
TRICKY_FIELDS = {
    "s_quote": 'say "hi"',
    "s_backslash": "C:\\path\\",
    "s_newline": "two\nlines",
    "s_specials": "comma, = space",
    "s_unicode": "ünïcødé ✓",
    "i_max": 2**63 - 1,
    "i_min": -(2**63),
    "f_big": 1e20,
    "f_small": 1.5e-7,
    "f_negzero": -0.0,
    "b_true": True,
    "b_false": False,
    "field with space": 1.0,
}


@pytest.fixture(scope="module")
def influx(world_dir: Path):
    require("influxd")
    server = InfluxServer(world_dir / "influx-lineproto").start()
    server.create_client_db("ironlink_acme", "acme_writer", "acme-pw")
    server.create_client_db("ironlink_beta", "beta_writer", "beta-pw")
    try:
        yield server
    finally:
        server.kill()


def client(influx: InfluxServer) -> InfluxClient:
    return InfluxClient(InfluxConfig(url=influx.url, timeout_s=5))


ACME = ClientCredentials("ACME", "ironlink_acme", "acme_writer", "acme-pw")


def test_tricky_values_round_trip(influx: InfluxServer) -> None:
    body = line("telemetry", TRICKY_TAGS, TRICKY_FIELDS, 1_763_800_000_123)
    outcome = client(influx).write(ACME, body.encode())
    assert outcome.ok, outcome
    rows = influx.rows("SELECT * FROM telemetry", "ironlink_acme")
    assert len(rows) == 1
    row = rows[0]
    assert row["time"] == 1_763_800_000_123
    for key, value in TRICKY_TAGS.items():
        assert row[key] == value
    for key, value in TRICKY_FIELDS.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            continue  # JSON numbers lose int64 precision in the query response; checked below
        assert row[key] == value, key
    text = influx.query('SELECT "i_max" FROM telemetry', "ironlink_acme")
    assert text[0]["series"][0]["values"][0][1] == pytest.approx(2**63 - 1)


def test_identical_point_is_overwritten_not_duplicated(influx: InfluxServer) -> None:
    body = line("dup", {"machine_id": "M1"}, {"v": 1.0}, 1_763_800_000_000).encode()
    for _ in range(3):
        assert client(influx).write(ACME, body).ok
    assert influx.count("ironlink_acme", "dup") == 1


def test_classification_against_real_responses(influx: InfluxServer) -> None:
    c = client(influx)
    bad = c.write(ACME, b"telemetry,machine_id=M1 v=1.0 notatimestamp")
    assert not bad.ok and bad.permanent and bad.status == 400 and bad.reason == "bad_data"
    assert c.write(ACME, line("conflict", {"m": "x"}, {"v": 1.0}, 1).encode()).ok
    conflict = c.write(ACME, line("conflict", {"m": "x"}, {"v": "text"}, 2).encode())
    assert conflict.permanent and "conflict" in conflict.error
    wrong_db = ClientCredentials("ACME", "ironlink_beta", "acme_writer", "acme-pw")
    denied = c.write(wrong_db, b"m v=1 1")
    assert not denied.ok and not denied.permanent and denied.reason == "auth"  # tenant isolation: 403
    badpw = c.write(ClientCredentials("ACME", "ironlink_acme", "acme_writer", "nope"), b"m v=1 1")
    assert badpw.reason == "auth" and badpw.status == 401
    missing = c.write(ClientCredentials("X", "ironlink_missing", "admin", influx.admin_password), b"m v=1 1")
    assert missing.reason == "database_not_found" and not missing.permanent
    assert c.ping()
    down = InfluxClient(InfluxConfig(url="http://127.0.0.1:9", timeout_s=1)).write(ACME, b"m v=1 1")
    assert not down.ok and not down.permanent and down.reason == "unavailable"
