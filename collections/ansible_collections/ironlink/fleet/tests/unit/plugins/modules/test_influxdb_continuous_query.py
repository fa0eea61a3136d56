# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of ironlink.fleet.influxdb_continuous_query and module_utils/_influxdb.py.

Pure functions are parametrized. The module itself runs against a real ``influxd`` (InfluxDB 1.x,
/usr/bin/influxd) started by the fixture on free loopback ports with auth enabled, and stopped by PID
(SIGTERM, then SIGKILL) when the test ends.
Skipped when influxd is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from ansible.module_utils.testing import patch_module_args
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


# --- against a real influxd -------------------------------------------------------------------------------

INFLUXD = shutil.which("influxd")
ADMIN_PASSWORD = "unit-test-only-admin"  # a throwaway server on loopback, removed with tmp_path


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Function scope on purpose: ansible-test runs unit tests with pytest-forked, where a module-scoped fixture is
# set up in each test's child process and never torn down (leaving influxd running).
@pytest.fixture
def influxd(tmp_path):
    if not INFLUXD:
        # CI must not pass by skipping: scripts/setup.sh installs influxdb.
        if os.environ.get("CI"):
            pytest.fail("influxd (InfluxDB 1.x) is not installed (scripts/setup.sh installs it)")
        pytest.skip("influxd (InfluxDB 1.x) is not installed")
    base = tmp_path
    http_port, rpc_port = _free_port(), _free_port()
    config = base / "influxdb.conf"
    config.write_text(
        f'reporting-enabled = false\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{base}/meta"\n  retention-autocreate = false\n'
        f'[data]\n  dir = "{base}/data"\n  wal-dir = "{base}/wal"\n  query-log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  auth-enabled = true\n  log-enabled = false\n'
    )
    log = (base / "influxd.log").open("wb")
    proc = subprocess.Popen([INFLUXD, "run", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        api = influx.InfluxDBAPI(port=http_port, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                # First-user path: the only statement an empty auth-enabled server accepts unauthenticated.
                api.query(f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
                break
            except influx.InfluxDBError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        admin = influx.InfluxDBAPI(port=http_port, username="admin", password=ADMIN_PASSWORD, timeout=5)
        admin.query('CREATE DATABASE "db1"')
        admin.query('CREATE RETENTION POLICY "raw" ON "db1" DURATION 30d REPLICATION 1 DEFAULT')
        admin.query('CREATE RETENTION POLICY "rollup_1h" ON "db1" DURATION 730d REPLICATION 1')
        for database, policy in (
            ("db", "raw"),
            ("db", "rp"),
            ("ironlink_zam_weld", "raw"),
            ("ironlink_zam_weld", "rollup_1h"),
        ):
            admin.query(f'CREATE DATABASE "{database}"')
            admin.query(f'CREATE RETENTION POLICY "{policy}" ON "{database}" DURATION 30d REPLICATION 1')
        yield {"port": http_port, "api": admin, "anonymous": api}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run_module(capsys, args, check_mode=False, diff=False):
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    if diff:
        args = {**args, "_ansible_diff": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        cq_module.main()
    return json.loads(capsys.readouterr().out)


def stored(server):
    return influx.parse_show_continuous_queries(server["api"].query("SHOW CONTINUOUS QUERIES"))


def module_args(server, **extra):
    args = {
        "port": server["port"],
        "username": "admin",
        "password": ADMIN_PASSWORD,
        "database": "db1",
        "name": "cq_rollup_1h",
        "query": ROLLUP.replace("ironlink_zam_weld", "db1"),
        "resample_every": "1h",
        "resample_for": "2h",
    }
    args.update(extra)
    return args


def test_module_lifecycle_against_real_influxd(influxd, capsys):
    args = module_args(influxd)

    result = run_module(capsys, args, check_mode=True, diff=True)
    assert result["changed"] and result["action"] == "create"
    assert result["diff"] == {"before": "", "after": result["statement"] + "\n"}
    assert ("db1", "cq_rollup_1h") not in stored(influxd), "check mode must not create"

    result = run_module(capsys, args)
    assert result["changed"] and result["action"] == "create"
    assert ("db1", "cq_rollup_1h") in stored(influxd)

    result = run_module(capsys, args)
    assert not result["changed"] and result["action"] == "none"
    assert result["current"] == stored(influxd)[("db1", "cq_rollup_1h")]

    # Same query in another spelling: still unchanged.
    result = run_module(
        capsys,
        {
            **args,
            "query": args["query"].replace('"', "").lower().replace(":measurement", ":MEASUREMENT"),
            "resample_every": "60m",
        },
    )
    assert not result["changed"], result

    changed_args = {**args, "resample_for": "3h"}
    result = run_module(capsys, changed_args, check_mode=True, diff=True)
    assert result["changed"] and result["action"] == "replace"
    assert "FOR 2h" in result["diff"]["before"] and "FOR 3h" in result["diff"]["after"]
    assert "FOR 2h" in stored(influxd)[("db1", "cq_rollup_1h")], "check mode must not replace"

    result = run_module(capsys, changed_args)
    assert result["changed"] and result["action"] == "replace"
    assert "FOR 3h" in stored(influxd)[("db1", "cq_rollup_1h")]
    assert not run_module(capsys, changed_args)["changed"]

    absent = {**args, "state": "absent"}
    result = run_module(capsys, absent, check_mode=True)
    assert result["changed"] and result["action"] == "drop"
    assert ("db1", "cq_rollup_1h") in stored(influxd)
    assert run_module(capsys, absent)["changed"]
    assert ("db1", "cq_rollup_1h") not in stored(influxd)
    assert not run_module(capsys, absent)["changed"]


@pytest.mark.parametrize(("written", "expected"), EQUIVALENT)
def test_influxdb_stores_the_canonical_text_we_normalise_to(influxd, written, expected):
    """Create each statement as written; InfluxDB's stored text is the expected one and compares equal."""
    api = influxd["api"]
    api.query(written)
    name, database = expected.split()[3], expected.split()[5]
    try:
        text = stored(influxd)[(database, name)]
        assert text == expected
        assert influx.normalise(text) == influx.normalise(written)
    finally:
        api.query(f"DROP CONTINUOUS QUERY {name} ON {database}")


def test_errors_carry_the_server_message(influxd, capsys):
    result = run_module(capsys, module_args(influxd, password="wrong"))
    assert result["failed"] and "authorization failed" in result["msg"] and result["status"] == 401

    result = run_module(
        capsys, module_args(influxd, query="SELECT mean(*) INTO db1.rollup_1h.:MEASUREMENT FROM")
    )
    assert result["failed"] and "failed" in result["msg"] and not result["changed"]
    assert ("db1", "cq_rollup_1h") not in stored(influxd)

    result = run_module(capsys, module_args(influxd, resample_for="2 hours"))
    assert result["failed"] and "resample_for" in result["msg"]

    result = run_module(capsys, module_args(influxd, port=_free_port()))
    assert result["failed"] and "cannot reach InfluxDB" in result["msg"]


def test_anonymous_access_is_refused(influxd):
    with pytest.raises(influx.InfluxDBError) as excinfo:
        influxd["anonymous"].query("SHOW CONTINUOUS QUERIES")
    assert excinfo.value.status == 401
