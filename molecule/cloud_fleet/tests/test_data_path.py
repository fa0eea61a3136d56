"""The data path end to end: agents on two gateways of two clients -> broker -> ingest -> storage, as
playbooks/cloud.yml converged it. Readings come from a real pymodbus server (PLC-1) and from MQTT messages
published to each gateway's local Mosquitto."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import time
import uuid

import pytest
from fleet import (
    AGENT_PORT,
    DB,
    GW_A,
    GW_B,
    IDENTITY,
    INGEST_PORTS,
    admin,
    health,
    host,
    metric_sum,
    metrics,
    publish_series,
    query,
    rows,
    seqs,
    user,
    wait_unit_done,
)
from testsupport.polling import wait_until

pytestmark = pytest.mark.timeout(600)


def client_of(gateway: str) -> str:
    return gateway.split("/", maxsplit=1)[0]


def set_register(gateway: str, value: int) -> None:
    """Holding register 0 of the gateway's Modbus simulator, through its control port."""
    command = json.dumps({"op": "set", "table": "holding", "address": 0, "values": [value]})
    script = (
        "import socket; s = socket.create_connection(('127.0.0.1', 5021)); "
        f"s.sendall({command!r}.encode() + b'\\n'); answer = s.recv(200); assert b'true' in answer, answer"
    )
    host(gateway).check_output(f"/opt/ironlink/venv/bin/python -c {shlex.quote(script)}")


@pytest.mark.parametrize("gateway", [GW_A, GW_B])
def test_agent_is_up_and_connected(gateway: str) -> None:
    wait_until(
        lambda: health(gateway, AGENT_PORT).get("status") == "ok",
        60,
        f"{gateway}'s agent to be healthy",
        interval=1.0,
    )
    assert metric_sum(metrics(gateway, AGENT_PORT), "ironlink_agent_uplink_connected") == 1


@pytest.mark.parametrize("gateway", [GW_A, GW_B])
def test_modbus_readings_land_in_own_database_with_identity_tags(gateway: str) -> None:
    client = client_of(gateway)
    value = 215 if gateway == GW_A else 340  # temperature = register * 0.1
    set_register(gateway, value)
    latest = "SELECT * FROM telemetry WHERE machine_id = 'PLC-1' ORDER BY time DESC LIMIT 1"
    expected = [value / 10]
    wait_until(
        lambda: [r["temperature"] for r in rows(latest, client)] == expected,
        60,
        f"{expected} from PLC-1",
        interval=1.0,
    )
    point = rows(latest, client)[0]  # SELECT * returns the tags as columns
    expected = dataclasses.asdict(IDENTITY[gateway])
    assert {k: point[k] for k in expected} == expected
    assert point["machine_id"] == "PLC-1"


def test_each_client_database_holds_only_its_own_client() -> None:
    for gateway in (GW_A, GW_B):
        client = client_of(gateway)
        wait_until(
            lambda c=client: rows("SELECT count(temperature) FROM telemetry", c),
            60,
            f"points of {client}",
            interval=1.0,
        )
        keys = '"client_id", "site_id", "gateway_id"'
        found = rows(f"SHOW TAG VALUES FROM telemetry WITH KEY IN ({keys})", client)
        identity = IDENTITY[gateway]
        assert {(r["key"], r["value"]) for r in found} == {
            ("client_id", identity.client_id),
            ("site_id", identity.site_id),
            ("gateway_id", identity.gateway_id),
        }


def test_mqtt_sensor_readings_arrive_once_each() -> None:
    sensor = f"SENSOR-{uuid.uuid4().hex[:6].upper()}"
    unit = publish_series(GW_B, sensor, 40, rate=20)
    wait_until(
        lambda: sorted(seqs("ZAM-WELD", sensor)) == list(range(40)),
        60,
        f"40 readings of {sensor}",
        interval=1.0,
    )
    assert host(GW_B).run(f"systemctl is-active {unit}").stdout.strip() != "failed"
    assert seqs("ACME-PACK", sensor) == []


def test_read_users_are_confined_to_their_database() -> None:
    for own, other in (("ACME-PACK", "ZAM-WELD"), ("ZAM-WELD", "ACME-PACK")):
        status, body = query("SELECT count(*) FROM telemetry", user(own, "read"), DB[own])
        assert status == 200 and "error" not in body["results"][0], body
        status, body = query("SELECT count(*) FROM telemetry", user(own, "read"), DB[other])
        assert status == 403 or "not authorized" in json.dumps(body), (own, other, status, body)
        # the ingest's write user cannot read, not even its own client
        status, body = query("SELECT count(*) FROM telemetry", user(own, "write"), DB[own])
        assert status == 403 or "not authorized" in json.dumps(body), (own, status, body)


def test_one_hour_rollup_cq_exists_and_the_one_minute_tier_runs_by_itself() -> None:
    status, body = query("SHOW CONTINUOUS QUERIES", admin())
    assert status == 200, body
    stored = {
        (s["name"], name): text for s in body["results"][0]["series"] for name, text in s.get("values", [])
    }
    for db in DB.values():
        assert "RESAMPLE EVERY 1h FOR 2h" in stored[(db, "cq_rollup_1h")]
    # InfluxDB runs the 1-minute CQ on its own schedule: rolled-up agent data appears without any help.
    for client in DB:
        wait_until(
            lambda c=client: rows('SELECT count(*) FROM "rollup_1m"."telemetry"', c),
            200,
            f"InfluxDB's own 1-minute rollup of {client}",
            interval=5,
        )
    # The 1-hour CQ fires on the hour: run its stored SELECT ... INTO over the current hour now.
    cq = stored[(DB["ACME-PACK"], "cq_rollup_1h")]
    select = re.search(r"BEGIN (.*) GROUP BY (.*) END$", cq)
    assert select, cq
    status, body = query(f"{select.group(1)} WHERE time > now() - 1h GROUP BY {select.group(2)}", admin())
    assert status == 200 and "error" not in json.dumps(body), body
    rolled = rows('SELECT * FROM "rollup_1h"."telemetry" WHERE machine_id = \'PLC-1\'', "ACME-PACK")
    assert rolled and rolled[0]["gateway_id"] == "GW-01" and rolled[0]["mean_temperature"] is not None


def _outage(gateway: str, machine: str, service: str, down_check) -> None:
    """Publish 5 readings/s for 75 s; stop ``service`` on the cloud host from 5 s to 65 s; every reading must
    be stored exactly once afterwards, and no agent may have dropped anything."""
    client = client_of(gateway)
    machine = f"{machine}-{uuid.uuid4().hex[:6].upper()}"  # a fresh series, also when the tests run again
    count = 375
    unit = publish_series(gateway, machine, count, rate=5)
    time.sleep(5)
    cloud = host("cloud")
    cloud.check_output(f"systemctl stop {service}")
    try:
        time.sleep(10)
        down_check()
        time.sleep(50)
    finally:
        cloud.check_output(f"systemctl start {service}")
    wait_unit_done(gateway, unit)
    wait_until(
        lambda: len(seqs(client, machine)) >= count, 180, f"all {count} readings of {machine}", interval=2
    )
    stored = seqs(client, machine)
    assert sorted(stored) == list(range(count)), f"missing {sorted(set(range(count)) - set(stored))[:20]}"
    assert metric_sum(metrics(gateway, AGENT_PORT), "ironlink_agent_readings_dropped_total") == 0


def test_storage_outage_of_a_minute_loses_nothing() -> None:
    def ingest_sees_influx_down() -> None:
        assert health("cloud", INGEST_PORTS[0]).get("influx_up") is False

    _outage(GW_A, "OUTAGE-DB", "influxdb", ingest_sees_influx_down)
    assert all(health("cloud", p).get("influx_up") for p in INGEST_PORTS)


def test_broker_outage_of_a_minute_loses_nothing() -> None:
    def agent_sees_broker_down() -> None:
        assert metric_sum(metrics(GW_B, AGENT_PORT), "ironlink_agent_uplink_connected") == 0

    _outage(GW_B, "OUTAGE-MQ", "mosquitto", agent_sees_broker_down)
    wait_until(
        lambda: metric_sum(metrics(GW_B, AGENT_PORT), "ironlink_agent_uplink_connected") == 1,
        60,
        "the agent to reconnect",
        interval=1.0,
    )


def test_broker_restart_during_a_storage_outage_loses_nothing() -> None:
    """Readings held unacknowledged by the ingest while InfluxDB is down survive a broker restart: the
    workers write them once InfluxDB is back, and what arrives in between is re-sent by the agent."""
    machine = f"RESTART-{uuid.uuid4().hex[:6].upper()}"
    cloud = host("cloud")
    cloud.check_output("systemctl stop influxdb")
    try:
        unit = publish_series(GW_A, machine, 100, rate=10)
        time.sleep(15)
        cloud.check_output("systemctl restart mosquitto")
        time.sleep(10)
    finally:
        cloud.check_output("systemctl start influxdb")
    wait_unit_done(GW_A, unit)
    wait_until(
        lambda: cloud.run("curl -sf http://10.89.79.10:8086/ping").rc == 0,
        60,
        "InfluxDB to answer",
        interval=1.0,
    )
    wait_until(
        lambda: len(seqs("ACME-PACK", machine)) >= 100, 120, f"all 100 readings of {machine}", interval=2
    )
    assert sorted(seqs("ACME-PACK", machine)) == list(range(100))
