"""What the cloud_fleet tests share: the hosts and identities, this run's credentials, MQTT clients and
agent-format batches, InfluxDB queries over HTTP from the controller, metrics scraping inside the containers.
Polling is testsupport.polling.wait_until, MQTT over TLS testsupport.mqtt_tls (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from functools import cache
from pathlib import Path

import testinfra
from ironlink_contract import wire
from ironlink_contract.model import Identity, Reading
from testsupport.mqtt_tls import Client
from testsupport.polling import wait_until

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
CLOUD_IP = "10.89.79.10"
PASSWORD_PORT = 8883
MTLS_PORT = 8884

GW_A = "ACME-PACK/PLANT-1/GW-01"  # password login (8883)
GW_B = "ZAM-WELD/SITE-A/GW-01"  # certificate login (mutual TLS, 8884)
DB = {"ACME-PACK": "ironlink_acme_pack", "ZAM-WELD": "ironlink_zam_weld"}
HOSTS = {"cloud": "ironlink-cf-cloud", GW_A: "ironlink-cf-gw-a", GW_B: "ironlink-cf-gw-b"}
# As molecule.yml's inventory gives them: what every reading of the gateway must be tagged with.
IDENTITY = {
    GW_A: Identity("ACME-PACK", "PLANT-1", "GW-01", "prod", "acme-pack-plant-1-gw-01"),
    GW_B: Identity("ZAM-WELD", "SITE-A", "GW-01", "prod", "zam-weld-site-a-gw-01"),
}
AGENT_PORT = 9810  # the agent's /health and /metrics on each gateway
INGEST_PORTS = (9820, 9821)  # ingest workers 1 and 2 on the cloud host


@cache
def host(name: str):
    return testinfra.get_host(f"podman://{HOSTS[name]}")


@cache
def credentials() -> dict:
    """Written by side_effect.yml from fleet_pki_credentials (0600, in the run's ephemeral directory)."""
    return json.loads((EPHEMERAL / "test-credentials.json").read_text())


def ca_cert() -> Path:
    return Path(credentials()["ca_cert"])


def password(gateway: str) -> str:
    """The gateway's MQTT password, derived by fleet_pki."""
    return credentials()["gateways"][gateway]


def connect(
    port: int,
    username: str | None = None,
    secret: str | None = None,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    key_password: str | None = None,
) -> Client:
    """An MQTT 5 client to the cloud broker that trusts the fleet CA."""
    return Client(
        CLOUD_IP, port, username, secret, ca=ca_cert(), cert=cert, key=key, key_password=key_password
    )


def batch(identity: Identity, machine: str, count: int) -> bytes:
    """An agent-format telemetry batch of ``count`` readings of ``machine`` (temperature = seq), new spool."""
    ts = int(time.time() * 1000)
    seqs_ = range(1, count + 1)
    readings = [(s, wire.pack_reading(Reading(machine, ts + s, {"temperature": float(s)}))) for s in seqs_]
    return wire.encode_batch(identity, f"test{uuid.uuid4().hex[:8]}", readings)


def user(client: str, kind: str) -> tuple[str, str]:
    """The InfluxDB user of one client: kind is write or read."""
    return f"{DB[client]}_{kind}", credentials()["storage"][client][kind]


def admin() -> tuple[str, str]:
    return "admin", credentials()["admin_password"]


def query(statement: str, who: tuple[str, str], db: str | None = None) -> tuple[int, dict]:
    """GET /query on the cloud host as ``who``; returns the HTTP status and the JSON body."""
    params = {"q": statement, "epoch": "ms"} | ({"db": db} if db else {})
    request = urllib.request.Request(f"http://{CLOUD_IP}:8086/query?{urllib.parse.urlencode(params)}")
    token = base64.b64encode(f"{who[0]}:{who[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def rows(statement: str, client: str) -> list[dict]:
    """Rows of a query on the client's database as its read user (a failed query fails the test)."""
    status, body = query(statement, user(client, "read"), DB[client])
    result = body["results"][0]
    assert status == 200 and "error" not in result, body
    out = []
    for series in result.get("series", []):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)) | series.get("tags", {}))
    return out


def seqs(client: str, machine: str) -> list[int]:
    """Every stored ``seq`` of one machine (duplicates would show: a point per timestamp)."""
    return [int(r["seq"]) for r in rows(f"SELECT seq FROM telemetry WHERE machine_id = '{machine}'", client)]


def metrics(name: str, port: int) -> dict[str, float]:
    """Prometheus text of a service inside a container (its endpoint listens on the container's loopback)."""
    text = host(name).check_output(f"curl -sf http://127.0.0.1:{port}/metrics")
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric_sum(values: dict[str, float], name: str, label: str = "") -> float:
    """Sum of the series of metric ``name`` that carry ``label`` (such as ``reason="spoofed"``)."""
    return sum(v for k, v in values.items() if k.split("{")[0] == name and label in k)


def ingest_sum(name: str, label: str = "") -> float:
    """One ingest metric summed over both workers."""
    return sum(metric_sum(metrics("cloud", port), name, label) for port in INGEST_PORTS)


def health(name: str, port: int) -> dict:
    out = host(name).run(f"curl -s http://127.0.0.1:{port}/health")
    return json.loads(out.stdout) if out.stdout else {}


def publish_series(gateway: str, machine: str, count: int, rate: float) -> str:
    """Publish seq 0..count-1 of ``machine`` to the gateway's local broker at ``rate``/s, in the background
    (a transient systemd unit, so it survives this call); returns the unit name."""
    unit = f"ironlink-test-pub-{machine.lower()}"
    payload = '"{\\"seq\\": $i}"'
    script = (
        f"for i in $(seq 0 {count - 1}); do "
        f"mosquitto_pub -q 1 -t factory/{machine}/state -m {payload}; sleep {1 / rate:.3f}; done"
    )
    host(gateway).check_output(f"systemd-run --unit {unit} --collect bash -c '{script}'")
    return unit


def wait_unit_done(gateway: str, unit: str) -> None:
    """Wait until a transient unit of ``publish_series`` has finished."""
    wait_until(
        lambda: host(gateway).run(f"systemctl is-active {unit}").rc != 0,
        60,
        f"{unit} to finish",
        interval=1.0,
    )
