"""The ingest as the cloud_ingest role deployed it: hardened instances, healthy, and a batch redelivered three
times is stored once."""

from __future__ import annotations

import uuid

import pytest
from fleet import (
    GW_A,
    IDENTITY,
    INGEST_PORTS,
    PASSWORD_PORT,
    batch,
    connect,
    health,
    host,
    password,
    rows,
)
from testsupport.polling import wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("instance", [1, 2])
def test_instances_run_and_are_healthy(instance: int) -> None:
    cloud = host("cloud")
    assert cloud.service(f"ironlink-ingest@{instance}").is_running
    assert cloud.service(f"ironlink-ingest@{instance}").is_enabled
    port = INGEST_PORTS[instance - 1]
    wait_until(
        lambda: health("cloud", port).get("status") == "ok", 30, f"instance {instance} healthy", interval=1.0
    )
    doc = health("cloud", port)
    assert doc["instance"] == str(instance) and doc["broker_connected"] and doc["influx_up"]


def test_runs_as_system_user_without_capabilities() -> None:
    cloud = host("cloud")
    pid = cloud.check_output("systemctl show -p MainPID --value ironlink-ingest@1")
    assert "CapEff:\t0000000000000000" in cloud.file(f"/proc/{pid}/status").content_string
    assert cloud.check_output(f"ps -o user= -p {pid}") == "ironlink-ingest"


def test_config_is_not_world_readable() -> None:
    f = host("cloud").file("/etc/ironlink/ingest.yml")
    assert f.mode == 0o640 and f.user == "root" and f.group == "ironlink-ingest"


def test_exposure_score() -> None:
    out = host("cloud").check_output(
        "systemd-analyze security ironlink-ingest@1.service --no-pager | tail -1"
    )
    score = float(out.split("exposure level for ironlink-ingest@1.service:")[1].split()[0])
    assert score <= 2.0, out


def test_a_batch_sent_three_times_is_stored_once() -> None:
    machine = f"DUP-{uuid.uuid4().hex[:6].upper()}"
    payload = batch(IDENTITY[GW_A], machine, 100)
    gateway = connect(PASSWORD_PORT, GW_A, password(GW_A))
    assert gateway.ok, (gateway.connack, gateway.error)
    # One sentinel batch per ingest worker, published after the three copies: the workers share one
    # subscription, which Mosquitto hands out in turn, so once every sentinel is stored each worker has
    # handled what it got before it, the copies included.
    sentinels = [f"SENTINEL-{uuid.uuid4().hex[:6].upper()}" for _ in INGEST_PORTS]
    try:
        assert [gateway.publish(f"ironlink/{GW_A}/telemetry", payload) for _ in range(3)] == [0, 0, 0]
        for sentinel in sentinels:
            assert gateway.publish(f"ironlink/{GW_A}/telemetry", batch(IDENTITY[GW_A], sentinel, 1)) == 0
    finally:
        gateway.close()
    for sentinel in sentinels:
        sentinel_query = f"SELECT count(temperature) FROM telemetry WHERE machine_id = '{sentinel}'"
        wait_until(
            lambda q=sentinel_query: rows(q, "ACME-PACK"), 30, f"the sentinel {sentinel}", interval=0.5
        )
    query = f"SELECT count(temperature) FROM telemetry WHERE machine_id = '{machine}'"
    assert rows(query, "ACME-PACK")[0]["count"] == 100
