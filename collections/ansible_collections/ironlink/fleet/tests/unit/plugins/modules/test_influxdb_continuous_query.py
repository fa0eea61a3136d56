# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of ironlink.fleet.influxdb_continuous_query and module_utils/_influxdb.py: the pure functions.

The module against a real influxd (create, replace, drop: check -> apply -> idempotent; stored text; errors)
is the integration target tests/integration/targets/influxdb_continuous_query.
"""

from __future__ import annotations

import pytest
from ansible_collections.ironlink.fleet.plugins.module_utils import _influxdb as influx
from ansible_collections.ironlink.fleet.plugins.modules import influxdb_continuous_query as cq_module

ROLLUP = (
    'SELECT mean(*), min(*), max(*), last(*) INTO "ironlink_zam_weld"."rollup_1h".:MEASUREMENT '
    'FROM "ironlink_zam_weld"."raw"./.*/ GROUP BY time(1h), *'
)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (3600 * 10**9, "1h"),
        (7200 * 10**9, "2h"),
        (90 * 60 * 10**9, "90m"),
        (86400 * 10**9, "1d"),
        (14 * 86400 * 10**9, "2w"),
        (30 * 86400 * 10**9, "30d"),
        (1500 * 10**6, "1500ms"),
        (1001, "1001ns"),
    ],
)
def test_format_duration_like_influxdb(nanoseconds, text):
    assert influx.format_duration(nanoseconds) == text


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("1h", 3600 * 10**9), ("60m", 3600 * 10**9), ("1h30m", 5400 * 10**9), ("1w", 7 * 86400 * 10**9)],
)
def test_parse_duration(text, nanoseconds):
    assert influx.parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "1h 30m", "-1h", "1.5h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not an InfluxQL duration"):
        influx.parse_duration(text)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("rollup_1h", "rollup_1h"),
        ("ironlink_zam_weld", "ironlink_zam_weld"),
        ("Mixed_Case", "Mixed_Case"),
        ("name", '"name"'),
        ("select", '"select"'),
        ("1h", '"1h"'),
        ("with-dash", '"with-dash"'),
        ('quote"d', '"quote\\"d"'),
    ],
)
def test_quote_ident(name, quoted):
    assert influx.quote_ident(name) == quoted


def test_build_create_statement():
    assert influx.build_create_statement("cq", "db", "SELECT  mean(*)\n INTO a.b.:MEASUREMENT FROM c") == (
        "CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT mean(*) INTO a.b.:MEASUREMENT FROM c END"
    )
    assert influx.build_create_statement("cq", "my-db", "SELECT 1", "1h", "2h") == (
        'CREATE CONTINUOUS QUERY cq ON "my-db" RESAMPLE EVERY 1h FOR 2h BEGIN SELECT 1 END'
    )
    assert "RESAMPLE FOR 2h BEGIN" in influx.build_create_statement("cq", "db", "SELECT 1", None, "2h")


# (as written in a playbook, as InfluxDB 1.6.7 stores and prints it): must compare equal.
EQUIVALENT = [
    (
        influx.build_create_statement("cq_rollup_1h", "ironlink_zam_weld", ROLLUP, "1h", "2h"),
        "CREATE CONTINUOUS QUERY cq_rollup_1h ON ironlink_zam_weld RESAMPLE EVERY 1h FOR 2h BEGIN "
        "SELECT mean(*), min(*), max(*), last(*) INTO ironlink_zam_weld.rollup_1h.:MEASUREMENT "
        "FROM ironlink_zam_weld.raw./.*/ GROUP BY time(1h), * END",
    ),
    (
        'create continuous query "cq3" on "db" resample every 60m for 120m begin '
        'select MEAN("value") as "Mean" '
        'into "db"."rp"."Agg" from "db"."raw"."cpu" where "host" = \'a b\' group by time(60m, 5m), '
        '"host" fill(none) end',
        "CREATE CONTINUOUS QUERY cq3 ON db RESAMPLE EVERY 1h FOR 2h BEGIN SELECT mean(value) AS Mean INTO "
        "db.rp.Agg FROM db.raw.cpu WHERE host = 'a b' GROUP BY time(1h, 5m), host fill(none) END",
    ),
    (
        'CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT max("name") INTO db.rp.m FROM db.raw.m '
        "GROUP BY time(1d),* END",
        'CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT max("name") INTO db.rp.m FROM db.raw.m '
        "GROUP BY time(1d), * END",
    ),
]

DIFFERENT = [
    (EQUIVALENT[0][0], EQUIVALENT[0][1].replace("max(*), ", "")),
    (EQUIVALENT[0][0], EQUIVALENT[0][1].replace("FOR 2h", "FOR 3h")),
    (EQUIVALENT[0][0], EQUIVALENT[0][1].replace("time(1h)", "time(1d)")),
    (EQUIVALENT[1][0], EQUIVALENT[1][1].replace("'a b'", "'a  b'")),
    (EQUIVALENT[1][0], EQUIVALENT[1][1].replace("AS Mean", "AS mean")),
    (EQUIVALENT[0][0], EQUIVALENT[0][1].replace("/.*/", "/cpu.*/")),
]


@pytest.mark.parametrize(("written", "stored"), EQUIVALENT)
def test_normalise_matches_influxdb_canonical_text(written, stored):
    assert influx.normalise(written) == influx.normalise(stored)


@pytest.mark.parametrize(("written", "stored"), DIFFERENT)
def test_normalise_keeps_real_differences(written, stored):
    assert influx.normalise(written) != influx.normalise(stored)


@pytest.mark.parametrize("statement", ["SELECT 'open", 'SELECT "open', "SELECT * FROM /open"])
def test_tokenize_rejects_unterminated(statement):
    with pytest.raises(ValueError, match="unterminated"):
        influx.tokenize(statement)


def test_tokenize_division_is_not_a_regex():
    assert influx.tokenize("SELECT a / 2 FROM m") == ["SELECT", "a", "/", "2", "FROM", "m"]


@pytest.mark.parametrize(
    ("current", "desired", "action"),
    [
        ("", None, "none"),
        ("CREATE CONTINUOUS QUERY a ON b BEGIN SELECT 1 END", None, "drop"),
        ("", "CREATE CONTINUOUS QUERY a ON b BEGIN SELECT 1 END", "create"),
        (
            "CREATE CONTINUOUS QUERY a ON b BEGIN SELECT 1 END",
            "create continuous query a on b begin select 1 end",
            "none",
        ),
        (
            "CREATE CONTINUOUS QUERY a ON b BEGIN SELECT 1 END",
            "CREATE CONTINUOUS QUERY a ON b BEGIN SELECT 2 END",
            "replace",
        ),
    ],
)
def test_decide(current, desired, action):
    assert cq_module.decide(current, desired) == action


def test_parse_show_continuous_queries():
    results = [
        {
            "statement_id": 0,
            "series": [
                {"name": "_internal", "columns": ["name", "query"]},
                {
                    "name": "db1",
                    "columns": ["name", "query"],
                    "values": [["cq_a", "CREATE A"], ["cq_b", "CREATE B"]],
                },
                {"name": "db2", "columns": ["name", "query"], "values": [["cq_a", "CREATE C"]]},
            ],
        }
    ]
    assert influx.parse_show_continuous_queries(results) == {
        ("db1", "cq_a"): "CREATE A",
        ("db1", "cq_b"): "CREATE B",
        ("db2", "cq_a"): "CREATE C",
    }
    assert influx.parse_show_continuous_queries([{"statement_id": 0}]) == {}
