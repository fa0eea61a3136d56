"""Behaviour of the cloud_storage host, checked over InfluxDB's HTTP API (curl inside the container).

Clients of the scenario inventory: ZAM-WELD -> ironlink_zam_weld, ACME-PACK -> ironlink_acme_pack.
Passwords are the ones converge generated into the ephemeral directory. Tests that change state (restore,
removed client) come last and put the converged state back.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from testsupport.playbook import ansible_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
API = "http://127.0.0.1:8086"
DB_A = "ironlink_zam_weld"
DB_B = "ironlink_acme_pack"
BACKUP_DIR = "/var/backups/influxdb"
HOUR_NS = 3600 * 10**9


def password(name):
    return (EPHEMERAL / "passwords" / name).read_text().split()[0]


ADMIN = ("admin", password("admin"))
A_WRITE = ("ironlink_zam_weld_write", password("zam_weld_write"))
A_READ = ("ironlink_zam_weld_read", password("zam_weld_read"))
B_WRITE = ("ironlink_acme_pack_write", password("acme_pack_write"))
B_READ = ("ironlink_acme_pack_read", password("acme_pack_read"))


def curl(host, path, auth=None, form=None, body=None):
    """Return (HTTP status, parsed JSON body or raw text)."""
    cmd = "curl -sS -w '\\n%%{http_code}' -X POST"
    args = []
    if auth:
        cmd += " -u %s"
        args.append(f"{auth[0]}:{auth[1]}")
    for key, value in (form or {}).items():
        cmd += " --data-urlencode %s"
        args.append(f"{key}={value}")
    if body is not None:
        cmd += " --data-binary %s"
        args.append(body)
    cmd += " %s"
    args.append(API + path)
    out = host.check_output(cmd, *args)
    text, _, status = out.rpartition("\n")
    try:
        return int(status), json.loads(text) if text else None
    except ValueError:
        return int(status), text


def query(host, q, auth, db=None):
    form = {"q": q}
    if db:
        form["db"] = db
    return curl(host, "/query", auth, form)


def write(host, db, lines, auth, rp=None):
    path = f"/write?db={db}" + (f"&rp={rp}" if rp else "")
    return curl(host, path, auth, body="\n".join(lines))


def rows(result):
    """The rows of the first series of the first statement, as dicts."""
    series = result["results"][0].get("series", [])
    if not series:
        return []
    return [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]


def hours_ago(hours):
    now = int(time.time()) // 3600 * 3600
    return (now - hours * 3600) * 10**9


def test_unauthenticated_requests_are_refused(host):
    status, body = query(host, "SHOW DATABASES", None)
    assert status == 401, body
    status, _ = write(host, DB_A, ["m value=1"], None)
    assert status == 401


def test_one_database_per_client_with_its_retention_policies(host):
    status, body = query(host, "SHOW DATABASES", ADMIN)
    assert status == 200
    names = {r["name"] for r in rows(body)}
    assert {DB_A, DB_B} <= names
    for db in (DB_A, DB_B):
        _, body = query(host, f'SHOW RETENTION POLICIES ON "{db}"', ADMIN)
        policies = {r["name"]: r for r in rows(body)}
        assert set(policies) == {"raw", "rollup_1h"}  # no "autogen"
        assert policies["raw"]["default"] is True
        assert policies["raw"]["duration"] == "720h0m0s"
        assert policies["rollup_1h"]["duration"] == "17520h0m0s"


def test_write_user_writes_its_own_database_only(host):
    assert write(host, DB_A, [f"probe,gw=GW-01 value=1 {hours_ago(1)}"], A_WRITE)[0] == 204
    status, body = write(host, DB_B, [f"probe,gw=GW-01 value=1 {hours_ago(1)}"], A_WRITE)
    assert status == 403, body
    status, body = query(host, f'SELECT * FROM "{DB_A}"."raw"."probe"', A_WRITE)
    assert status != 200 or "error" in json.dumps(body), "a write user must not read"


def test_read_user_reads_its_own_database_only_and_cannot_write(host):
    write(host, DB_A, [f"probe,gw=GW-02 value=2 {hours_ago(1)}"], A_WRITE)
    status, body = query(host, 'SELECT count(value) FROM "probe"', A_READ, db=DB_A)
    assert status == 200, body
    assert rows(body)[0]["count"] >= 1
    status, body = query(host, 'SELECT count(value) FROM "probe"', A_READ, db=DB_B)
    assert status == 403 or "not authorized" in json.dumps(body), body
    assert write(host, DB_A, ["probe value=3"], A_READ)[0] == 403
    assert query(host, "SHOW USERS", A_READ)[0] == 403


def test_continuous_query_definition_produces_rollups(host):
    """Run the stored CQ's own SELECT ... INTO over a past hour, then read the rollup as the read user."""
    status, body = query(host, "SHOW CONTINUOUS QUERIES", ADMIN)
    assert status == 200
    stored = {
        (s["name"], name): text for s in body["results"][0]["series"] for name, text in s.get("values", [])
    }
    assert (DB_A, "cq_rollup_1h") in stored and (DB_B, "cq_rollup_1h") in stored
    cq = stored[(DB_B, "cq_rollup_1h")]
    assert "RESAMPLE EVERY 1h FOR 2h" in cq

    start = hours_ago(3)
    points = [
        f'machine,site=SITE-A,gw=GW-01 temp=10,state="run" {start + 60 * 10**9}',
        f'machine,site=SITE-A,gw=GW-01 temp=20,state="stop" {start + 120 * 10**9}',
        f"machine,site=SITE-A,gw=GW-01 temp=60 {start + 180 * 10**9}",
        f"machine,site=SITE-A,gw=GW-02 temp=5 {start + 60 * 10**9}",
    ]
    assert write(host, DB_B, points, B_WRITE)[0] == 204

    select = re.search(r"BEGIN (.*) GROUP BY (.*) END$", cq)
    assert select, cq
    statement = (
        f"{select.group(1)} WHERE time >= {start} AND time < {start + HOUR_NS} GROUP BY {select.group(2)}"
    )
    status, body = query(host, statement, ADMIN)
    assert status == 200 and "error" not in json.dumps(body), body

    status, body = query(host, 'SELECT * FROM "rollup_1h"."machine" GROUP BY *', B_READ, db=DB_B)
    assert status == 200, body
    series = {
        s["tags"]["gw"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in body["results"][0]["series"]
    }
    gw1 = series["GW-01"]
    assert gw1["mean_temp"] == 30 and gw1["min_temp"] == 10 and gw1["max_temp"] == 60
    assert gw1["last_temp"] == 60 and gw1["last_state"] == "stop"
    assert series["GW-02"]["mean_temp"] == 5
    assert {s["tags"]["site"] for s in body["results"][0]["series"]} == {"SITE-A"}  # tags kept


def test_backup_timer_is_enabled(host):
    timer = host.service("ironlink-influxdb-backup.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_influxdb_config_validates_and_enforces_auth(host):
    merged = host.check_output("influxd config -config /etc/influxdb/influxdb.conf 2>/dev/null")
    assert re.search(r"^\s*auth-enabled = true$", merged, re.M)
    assert re.search(r'^bind-address = "127\.0\.0\.1:8088"$', merged, re.M)


def backups(host):
    out = host.check_output(f"find {BACKUP_DIR} -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'")
    return sorted(out.split())


def test_backup_wipe_restore_reads_the_same_points(host):
    points = [f"restore_probe,gw=GW-0{i} value={i}.5 {hours_ago(2) + i * 10**9}" for i in range(1, 6)]
    assert write(host, DB_A, points, A_WRITE)[0] == 204
    select = 'SELECT * FROM "restore_probe" ORDER BY time'
    before = rows(query(host, select, A_READ, db=DB_A)[1])
    assert len(before) == 5

    host.check_output("systemctl start ironlink-influxdb-backup.service")
    backup = backups(host)[-1]
    assert re.fullmatch(r"\d{8}T\d{6}Z", backup)

    assert query(host, f'DROP DATABASE "{DB_A}"', ADMIN)[0] == 200
    assert DB_A not in {r["name"] for r in rows(query(host, "SHOW DATABASES", ADMIN)[1])}

    ansible_playbook(
        "playbooks/cloud/storage_restore.yml",
        "-e",
        f"storage_restore_database={DB_A}",
        "-e",
        f"storage_restore_backup={backup}",
        check=True,
    )
    after = rows(query(host, select, A_READ, db=DB_A)[1])
    assert after == before
    # Grants and the continuous query came back with the role's provisioning.
    assert write(host, DB_A, [f"restore_probe value=9 {hours_ago(1)}"], A_WRITE)[0] == 204
    _, body = query(host, "SHOW CONTINUOUS QUERIES", ADMIN)
    assert any(s["name"] == DB_A and s.get("values") for s in body["results"][0]["series"])


def test_restore_refuses_to_overwrite_a_live_database(host):
    backup = backups(host)[-1]
    result = ansible_playbook(
        "playbooks/cloud/storage_restore.yml",
        "-e",
        f"storage_restore_database={DB_A}",
        "-e",
        f"storage_restore_backup={backup}",
    )
    assert result.returncode != 0
    assert "storage_restore_replace" in result.stdout


def test_backup_retention_keeps_the_newest(host):
    for _ in range(4):
        host.check_output("systemctl start ironlink-influxdb-backup.service")
        time.sleep(1.1)
    assert len(backups(host)) == 3


@pytest.mark.parametrize("group", ["gateways_without_acme"])
def test_removed_client_loses_access_but_keeps_data(host, group):
    ansible_playbook(
        SCENARIO_DIR / "converge.yml",
        "--tags",
        "cloud_storage_provision",
        "-e",
        f"cloud_storage_gateway_group={group}",
        check=True,
    )
    try:
        assert write(host, DB_B, ["gone value=1"], B_WRITE)[0] == 401
        assert query(host, "SHOW DATABASES", B_READ)[0] == 401
        assert DB_B in {r["name"] for r in rows(query(host, "SHOW DATABASES", ADMIN)[1])}
        _, body = query(host, 'SELECT count(*) FROM "rollup_1h"."machine"', ADMIN, db=DB_B)
        assert rows(body), "the removed client's data is kept"
    finally:
        ansible_playbook(SCENARIO_DIR / "converge.yml", "--tags", "cloud_storage_provision", check=True)
    assert write(host, DB_B, [f"back value=1 {hours_ago(1)}"], B_WRITE)[0] == 204
