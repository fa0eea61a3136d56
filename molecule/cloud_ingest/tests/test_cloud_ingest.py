"""Behaviour of the deployed ingest: both instances run hardened, answer /health, and a batch published by
a gateway account lands in the client's database exactly once."""

from __future__ import annotations

import json
import time

import pytest

PUBLISH = r"""
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from ironlink_agent.contract import wire
from ironlink_agent.contract.model import Identity, Reading
ident = Identity("ACME", "PLANT1", "GW01", "prod", "gw01")
def row(s):
    return (s, wire.pack_reading(Reading("PRESS-01", int(sys.argv[1]) * 1000 + s, {"rpm": s, "t": 1.5})))
rows = [row(s) for s in range(1, 101)]
payload = wire.encode_batch(ident, "molecule" + sys.argv[1], rows)
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="molecule-gw", protocol=mqtt.MQTTv5)
c.username_pw_set("gw-acme-1", "gw-test-pw")
c.connect("127.0.0.1", 1883)
c.loop_start()
infos = [c.publish("ironlink/ACME/PLANT1/GW01/telemetry", payload, qos=1) for _ in range(3)]
for i in infos:
    i.wait_for_publish(10)
c.disconnect()
"""


def _count(host) -> int:
    out = host.check_output(
        "curl -sf -u admin:admin-test-pw -G http://127.0.0.1:8086/query --data-urlencode db=ironlink_acme "
        "--data-urlencode 'q=SELECT COUNT(rpm) FROM telemetry'"
    )
    series = json.loads(out)["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


@pytest.mark.parametrize("instance", [1, 2])
def test_instances_run_and_are_healthy(host, instance: int) -> None:
    assert host.service(f"ironlink-ingest@{instance}").is_running
    assert host.service(f"ironlink-ingest@{instance}").is_enabled
    doc = None
    for _ in range(50):
        cmd = host.run(f"curl -s http://127.0.0.1:{9819 + instance}/health")
        if cmd.rc == 0 and cmd.stdout:
            doc = json.loads(cmd.stdout)
            if doc["status"] == "ok":
                break
        time.sleep(0.2)
    assert doc is not None and doc["status"] == "ok", doc
    assert doc["instance"] == str(instance) and doc["broker_connected"] and doc["influx_up"]


def test_runs_as_system_user_without_capabilities(host) -> None:
    pid = host.check_output("systemctl show -p MainPID --value ironlink-ingest@1")
    status = host.file(f"/proc/{pid}/status").content_string
    assert "CapEff:\t0000000000000000" in status
    assert host.check_output(f"ps -o user= -p {pid}") == "ironlink-ingest"


def test_config_is_not_world_readable(host) -> None:
    f = host.file("/etc/ironlink/ingest.yml")
    assert f.mode == 0o640 and f.user == "root" and f.group == "ironlink-ingest"


def test_exposure_score(host) -> None:
    out = host.check_output("systemd-analyze security ironlink-ingest@1.service --no-pager | tail -1")
    score = float(out.split("exposure level for ironlink-ingest@1.service:")[1].split()[0])
    print(f"systemd-analyze security: {out}")
    assert score <= 2.0, out


def test_batch_lands_once_in_the_client_database(host) -> None:
    before = _count(host)
    host.check_output(f"/opt/ironlink/ingest/venv/bin/python -c '{PUBLISH}' {int(time.time())}")
    for _ in range(100):
        if _count(host) >= before + 100:
            break
        time.sleep(0.1)
    time.sleep(1)
    assert _count(host) == before + 100  # three copies of one batch (new timestamps each run), stored once
