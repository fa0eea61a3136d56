"""Behaviour of the cloud broker converged by fleet_pki + cloud_broker, checked over the network with MQTT 5.

Every test is a real client on the controller talking TLS to the broker container's address: the accounts
come from the same derivation fleet_pki uses (its filter plugin and the seed file of this run), the
certificates from the run's PKI directory. The last test changes the inventory (one gateway removed, one
revoked), re-converges with ansible-playbook, checks that both lost access, then converges the full inventory
again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from testsupport.mqtt_tls import Client, foreign_certificate, refused, tls_alert
from testsupport.playbook import ansible_playbook

BROKER = "ironlink-cb-broker"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
PKI = EPHEMERAL / "pki"
INGEST = "ironlink-ingest"
PASSWORD_PORT = 8883
MTLS_PORT = 8884
NOT_AUTHORIZED = 135

GW_A = "ACME-PACK/PLANT-1/GW-01"
GW_B = "ACME-PACK/PLANT-1/GW-02"  # revoked by the re-converge test
GW_Z = "ZAM-WELD/SITE-A/GW-01"  # removed from the inventory by the re-converge test
GW_Z_HOST = "cb-zam-sa-gw01"

pytestmark = pytest.mark.timeout(900)


def _secret(name: str) -> str:
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def _derive():
    # The derivation behind ironlink.fleet.account_passwords (standard library only: loaded by path).
    plugin = PROJECT / "collections/ansible_collections/ironlink/fleet/plugins/plugin_utils/_passwords.py"
    spec = importlib.util.spec_from_file_location("ironlink_passwords", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.derive_password


def password(account: str, version: int = 1) -> str:
    return _derive()(_secret("mqtt_seed"), f"mqtt/{account}/v{version}")


def cert_files(name: str) -> tuple[Path, Path]:
    base = PKI / "gateways" / name.replace("/", ".")
    return base.with_suffix(base.suffix + ".crt"), base.with_suffix(base.suffix + ".key")


def topic(name: str, leaf: str) -> str:
    return f"ironlink/{name}/{leaf}"


@pytest.fixture(scope="module")
def broker_ip() -> str:
    out = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", BROKER],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def connect(ip: str, port: int, *args: str, **kwargs: Path) -> Client:
    """A client of this run's fleet CA; certificate keys are decrypted with this run's key passphrase."""
    return Client(ip, port, *args, ca=PKI / "ca/ca.crt", key_password=_secret("key_passphrase"), **kwargs)


@pytest.fixture
def ingest(broker_ip):
    client = connect(broker_ip, PASSWORD_PORT, INGEST, password(INGEST))
    assert client.ok, f"ingest cannot connect: {client.connack} {client.error}"
    client.subscribe("$share/ingest/ironlink/+/+/+/telemetry", "ironlink/+/+/+/status")
    yield client
    client.close()


def publish_sentinel(broker_ip: str, ingest: Client, payload: bytes) -> list[str]:
    """Publish an allowed telemetry message as GW_A; once ``ingest`` has it, return where ``payload`` arrived.

    For negative checks: ``payload`` was published (or refused) before, so had it been delivered, it would be
    in before the sentinel.
    """
    gateway = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    assert gateway.ok, f"CONNACK {gateway.connack} {gateway.error}"
    sentinel = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_A, "telemetry"), sentinel) == 0
    gateway.close()
    return ingest.received_before(payload, sentinel)


def test_gateway_password_publishes_in_own_tree(broker_ip, ingest):
    gateway = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    assert gateway.ok, f"CONNACK {gateway.connack} {gateway.error}"
    for leaf in ("telemetry", "status"):
        payload = uuid.uuid4().bytes
        assert gateway.publish(topic(GW_A, leaf), payload) == 0
        assert ingest.received(payload) == [topic(GW_A, leaf)]
    gateway.close()


def test_gateway_certificate_publishes_in_own_tree(broker_ip, ingest):
    cert, key = cert_files(GW_Z)
    gateway = connect(broker_ip, MTLS_PORT, cert=cert, key=key)  # no password: the CN is the user name
    assert gateway.ok, f"CONNACK {gateway.connack} {gateway.error}"
    payload = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_Z, "telemetry"), payload) == 0
    assert ingest.received(payload) == [topic(GW_Z, "telemetry")]
    gateway.close()


@pytest.mark.parametrize("port", [PASSWORD_PORT, MTLS_PORT])
def test_publish_into_another_gateways_tree_is_denied(broker_ip, ingest, port):
    if port == PASSWORD_PORT:
        gateway = connect(broker_ip, port, GW_A, password(GW_A))
    else:
        cert, key = cert_files(GW_A)
        gateway = connect(broker_ip, port, cert=cert, key=key)
    assert gateway.ok
    payload = uuid.uuid4().bytes
    for victim in (GW_B, GW_Z):  # same client other gateway, other client
        assert gateway.publish(topic(victim, "telemetry"), payload) == NOT_AUTHORIZED
    assert gateway.publish("ironlink/other", payload) == NOT_AUTHORIZED
    gateway.close()
    # Mosquitto 2.0.11 may drop a connection after denied publishes: the sentinel, allowed and published after
    # them, goes out on a connection of its own. Once the ingest has it, the denied ones would be in too.
    assert publish_sentinel(broker_ip, ingest, payload) == []


def test_gateway_reads_only_its_own_commands(broker_ip):
    a = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    b = connect(broker_ip, PASSWORD_PORT, GW_B, password(GW_B))
    assert a.ok and b.ok
    a.subscribe("ironlink/#")
    b.subscribe(topic(GW_B, "command"), topic(GW_B, "command/#"))
    payload = uuid.uuid4().bytes
    assert b.publish(topic(GW_B, "command/reboot"), payload) == 0
    assert b.received(payload) == [topic(GW_B, "command/reboot")]
    sentinel = uuid.uuid4().bytes  # routed after B's command: had A been sent that, A would have it first
    assert a.publish(topic(GW_A, "command/reboot"), sentinel) == 0
    assert a.received_before(payload, sentinel) == []
    a.close()
    b.close()


def test_ingest_cannot_publish(broker_ip, ingest):
    # A second ingest connection publishes; the fixture's, subscribed, watches: Mosquitto 2.0.11 closes a
    # connection after denied publishes, so the publisher could not also be the witness.
    publisher = connect(broker_ip, PASSWORD_PORT, INGEST, password(INGEST))
    assert publisher.ok
    payload = uuid.uuid4().bytes
    assert publisher.publish(topic(GW_A, "telemetry"), payload) == NOT_AUTHORIZED
    assert publisher.publish(topic(GW_A, "command"), payload) == NOT_AUTHORIZED
    publisher.close()
    assert publish_sentinel(broker_ip, ingest, payload) == []


def test_ingest_reads_only_telemetry_and_status(broker_ip, ingest):
    ingest.subscribe("#")
    gateway = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    payload = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_A, "events"), payload) == 0
    sentinel = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_A, "telemetry"), sentinel) == 0
    assert ingest.received_before(payload, sentinel) == []
    gateway.close()


def test_plaintext_mqtt_is_refused(broker_ip):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((broker_ip, 1883), timeout=5).close()


def test_wrong_password_is_refused(broker_ip):
    client = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A) + "x")
    assert refused(client)
    assert client.connack in (134, 135)  # bad user name or password / not authorized


def test_unknown_user_is_refused(broker_ip):
    client = connect(broker_ip, PASSWORD_PORT, "ACME-PACK/PLANT-1/GW-99", password("ACME-PACK/PLANT-1/GW-99"))
    assert refused(client)


def test_mtls_listener_needs_a_certificate(broker_ip):
    assert refused(connect(broker_ip, MTLS_PORT, GW_A, password(GW_A)))


def test_certificate_of_another_ca_is_refused(broker_ip, tmp_path):
    cert, key = foreign_certificate(tmp_path, GW_A, _secret("key_passphrase"))
    assert refused(connect(broker_ip, MTLS_PORT, cert=cert, key=key))
    # Refused for the right reason: the broker does not know the issuing CA (alert 48, unknown_ca).
    alert = tls_alert(
        broker_ip, MTLS_PORT, ca=PKI / "ca/ca.crt", cert=cert, key=key, key_password=_secret("key_passphrase")
    )
    assert alert == "TLSV1_ALERT_UNKNOWN_CA"


def _converge(inventory_hosts: dict | None, tmp_path: Path, extra: dict | None = None) -> None:
    inventory_dir = EPHEMERAL / "inventory"
    sources = [inventory_dir / "ansible_inventory.yml"]
    if inventory_hosts is not None:
        hosts_file = tmp_path / "hosts.yml"
        hosts_file.write_text(yaml.safe_dump(inventory_hosts))
        sources.append(hosts_file)
    else:
        sources = [inventory_dir]
    extra_args = ["-e", json.dumps(extra)] if extra else []
    ansible_playbook(
        SCENARIO / "converge.yml",
        *extra_args,
        inventory=sources,
        config=EPHEMERAL / "ansible.cfg",
        check=True,
    )


def test_removed_and_revoked_gateways_lose_access(broker_ip, tmp_path):
    """Drop GW_Z from the inventory and revoke GW_B; re-converge; both are out; restore the full inventory."""
    saved = {}
    for name in (GW_B, GW_Z):
        for path in cert_files(name):
            shutil.copy(path, tmp_path / path.name)
        saved[name] = tuple(tmp_path / p.name for p in cert_files(name))
        client = connect(broker_ip, MTLS_PORT, cert=saved[name][0], key=saved[name][1])
        assert client.ok, f"{name} cannot connect before the change"
        client.close()

    hosts = yaml.safe_load((EPHEMERAL / "inventory" / "hosts").read_text())
    del hosts["all"]["children"]["gateways"]["hosts"][GW_Z_HOST]
    _converge(hosts, tmp_path, {"fleet_pki_revoked_gateways": [GW_B]})
    try:
        for name in (GW_B, GW_Z):
            by_password = connect(broker_ip, PASSWORD_PORT, name, password(name))
            assert refused(by_password), f"{name}: password still works"
            cert, key = saved[name]
            by_certificate = connect(broker_ip, MTLS_PORT, cert=cert, key=key)
            assert refused(by_certificate), f"{name}: certificate still works"
        assert not cert_files(GW_Z)[0].exists() and not cert_files(GW_B)[0].exists()
        survivor = connect(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
        assert survivor.ok
        survivor.close()
    finally:
        _converge(None, tmp_path)

    # Back in the inventory: new certificates (new serials), the old ones stay on the CRL.
    for name in (GW_B, GW_Z):
        cert, key = cert_files(name)
        fresh = connect(broker_ip, MTLS_PORT, cert=cert, key=key)
        assert fresh.ok, f"{name}: new certificate refused"
        fresh.close()
        assert refused(connect(broker_ip, MTLS_PORT, cert=saved[name][0], key=saved[name][1]))
        client = connect(broker_ip, PASSWORD_PORT, name, password(name))
        assert client.ok
        client.close()


def test_broker_log_has_no_error_lines(host):
    """From the package's first start on: no SIGHUP met a new listener set, nothing failed to load.

    The first converge changes mosquitto.conf (new listeners) with the password file and the ACL: only the
    restart may run (roles/cloud_broker/handlers/main.yml); a reload would log "Error: It is not currently
    possible to add/remove listeners when reloading the config file.". `OpenSSL Error[…]` lines are the
    clients the tests above make the broker refuse, not broker errors, and do not match.
    """
    log = host.file("/var/log/mosquitto/mosquitto.log").content_string
    errors = [line for line in log.splitlines() if re.search(r"\bError: |Error found at", line)]
    assert errors == []


VALIDATOR = "/usr/local/libexec/ironlink/mosquitto-validate"
BROKEN = {
    "config": "listener 8883\nno_such_option true\n",
    "password-file": "ironlink-ingest:not-a-hash\n",
    "acl-file": "user ironlink-ingest\ntopic sometimes ironlink/#\n",
}
INSTALLED = {
    "config": "/etc/mosquitto/mosquitto.conf",
    "password-file": "/etc/mosquitto/ironlink.passwd",
    "acl-file": "/etc/mosquitto/ironlink.acl",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_validator_refuses_a_broken_file_and_the_broker_keeps_running(host, kind):
    """What `validate:` runs: a broken candidate is refused, the installed one passes, the broker stays up."""
    pid = host.check_output("systemctl show -p MainPID --value mosquitto.service")
    candidate = f"/tmp/broken-{kind}"
    host.run(f"printf '%s' {shlex.quote(BROKEN[kind])} > {candidate}")
    refused_run = host.run(f"{VALIDATOR} {kind} {candidate}")
    assert refused_run.rc == 1, refused_run.stdout + refused_run.stderr
    accepted = host.run(f"{VALIDATOR} {kind} {INSTALLED[kind]}")
    assert accepted.rc == 0, accepted.stderr
    assert host.service("mosquitto.service").is_running
    assert host.check_output("systemctl show -p MainPID --value mosquitto.service") == pid
