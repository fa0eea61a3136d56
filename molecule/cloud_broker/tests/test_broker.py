"""Behaviour of the cloud broker converged by fleet_pki + cloud_broker, checked over the network with MQTT 5.

Every test is a real client on the controller talking TLS to the broker container's address: the accounts
come from the same derivation fleet_pki uses (its filter plugin and the seed file of this run), the
certificates from the run's PKI directory. The last test changes the inventory (one gateway removed, one
revoked), re-converges with ansible-playbook, checks that both lost access, then converges the full inventory
again.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

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
    plugin = PROJECT / "roles/fleet_pki/filter_plugins/fleet_pki.py"
    spec = importlib.util.spec_from_file_location("fleet_pki", plugin)
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


class Client:
    """A connected MQTT 5 client over TLS that records CONNACK, PUBACK reason codes and received messages."""

    def __init__(self, ip, port, username=None, password=None, cert=None, key=None, ca=PKI / "ca/ca.crt"):
        self.connected = threading.Event()
        self.done = threading.Event()
        self.connack = None
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        client_id = f"t-{uuid.uuid4().hex[:10]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        context = ssl.create_default_context(cafile=str(ca))  # verifies the broker: CA and the address as SAN
        if cert:
            context.load_cert_chain(str(cert), str(key), password=_secret("key_passphrase"))
        self.client.tls_set_context(context)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.error = None
        try:
            self.client.connect(ip, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
            return
        self.client.loop_start()
        self.done.wait(10)

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties):
        self.connack = reason_code.value
        if not reason_code.is_failure:
            self.connected.set()
        self.done.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        self.connected.clear()
        self.done.set()

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        self.pubacks[mid] = reason_code.value

    def _on_message(self, _client, _userdata, message):
        self.messages.append((message.topic, message.payload))

    @property
    def ok(self) -> bool:
        return self.error is None and self.connected.is_set()

    def publish(self, topic_name: str, payload: bytes) -> int:
        info = self.client.publish(topic_name, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.pubacks[info.mid]

    def subscribe(self, *filters: str) -> None:
        result, _mid = self.client.subscribe([(f, 1) for f in filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.5)

    def received(self, payload: bytes, wait: float = 5.0) -> list[str]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = [t for t, p in self.messages if p == payload]
            if found:
                return found
            time.sleep(0.05)
        return []

    def close(self) -> None:
        if self.error is None:
            self.client.disconnect()
            self.client.loop_stop()


def refused(client: Client) -> bool:
    """The broker did not let the client in: TLS failed, CONNACK refused, or the connection was dropped."""
    if client.error is not None:
        return True
    # TLS 1.3: a rejected client certificate shows up after the client's side of the handshake.
    time.sleep(0.5)
    result = not client.connected.is_set()
    client.close()
    return result


@pytest.fixture
def ingest(broker_ip):
    client = Client(broker_ip, PASSWORD_PORT, INGEST, password(INGEST))
    assert client.ok, f"ingest cannot connect: {client.connack} {client.error}"
    client.subscribe("$share/ingest/ironlink/+/+/+/telemetry", "ironlink/+/+/+/status")
    yield client
    client.close()


def test_gateway_password_publishes_in_own_tree(broker_ip, ingest):
    gateway = Client(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    assert gateway.ok, f"CONNACK {gateway.connack} {gateway.error}"
    for leaf in ("telemetry", "status"):
        payload = uuid.uuid4().bytes
        assert gateway.publish(topic(GW_A, leaf), payload) == 0
        assert ingest.received(payload) == [topic(GW_A, leaf)]
    gateway.close()


def test_gateway_certificate_publishes_in_own_tree(broker_ip, ingest):
    cert, key = cert_files(GW_Z)
    gateway = Client(broker_ip, MTLS_PORT, cert=cert, key=key)  # no password: the CN is the user name
    assert gateway.ok, f"CONNACK {gateway.connack} {gateway.error}"
    payload = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_Z, "telemetry"), payload) == 0
    assert ingest.received(payload) == [topic(GW_Z, "telemetry")]
    gateway.close()


@pytest.mark.parametrize("port", [PASSWORD_PORT, MTLS_PORT])
def test_publish_into_another_gateways_tree_is_denied(broker_ip, ingest, port):
    if port == PASSWORD_PORT:
        gateway = Client(broker_ip, port, GW_A, password(GW_A))
    else:
        cert, key = cert_files(GW_A)
        gateway = Client(broker_ip, port, cert=cert, key=key)
    assert gateway.ok
    payload = uuid.uuid4().bytes
    for victim in (GW_B, GW_Z):  # same client other gateway, other client
        assert gateway.publish(topic(victim, "telemetry"), payload) == NOT_AUTHORIZED
    assert gateway.publish("ironlink/other", payload) == NOT_AUTHORIZED
    assert ingest.received(payload, wait=2) == []
    gateway.close()


def test_gateway_reads_only_its_own_commands(broker_ip):
    a = Client(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    b = Client(broker_ip, PASSWORD_PORT, GW_B, password(GW_B))
    assert a.ok and b.ok
    a.subscribe("ironlink/#")
    b.subscribe(topic(GW_B, "command"), topic(GW_B, "command/#"))
    payload = uuid.uuid4().bytes
    assert b.publish(topic(GW_B, "command/reboot"), payload) == 0
    assert b.received(payload) == [topic(GW_B, "command/reboot")]
    assert a.received(payload, wait=1) == []
    a.close()
    b.close()


def test_ingest_cannot_publish(broker_ip, ingest):
    payload = uuid.uuid4().bytes
    assert ingest.publish(topic(GW_A, "telemetry"), payload) == NOT_AUTHORIZED
    assert ingest.publish(topic(GW_A, "command"), payload) == NOT_AUTHORIZED
    assert ingest.received(payload, wait=1) == []


def test_ingest_reads_only_telemetry_and_status(broker_ip, ingest):
    ingest.subscribe("#")
    gateway = Client(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
    payload = uuid.uuid4().bytes
    assert gateway.publish(topic(GW_A, "events"), payload) == 0
    assert ingest.received(payload, wait=1.5) == []
    gateway.close()


def test_plaintext_mqtt_is_refused(broker_ip):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((broker_ip, 1883), timeout=5).close()


def test_wrong_password_is_refused(broker_ip):
    client = Client(broker_ip, PASSWORD_PORT, GW_A, password(GW_A) + "x")
    assert refused(client)
    assert client.connack in (134, 135)  # bad user name or password / not authorized


def test_unknown_user_is_refused(broker_ip):
    client = Client(broker_ip, PASSWORD_PORT, "ACME-PACK/PLANT-1/GW-99", password("ACME-PACK/PLANT-1/GW-99"))
    assert refused(client)


def test_mtls_listener_needs_a_certificate(broker_ip):
    assert refused(Client(broker_ip, MTLS_PORT, GW_A, password(GW_A)))


def _foreign_certificate(tmp_path: Path, common_name: str) -> tuple[Path, Path]:
    """A CA of its own and a client certificate with a gateway's CN signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the Ironlink CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "foreign.crt", tmp_path / "foreign.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(_secret("key_passphrase").encode()),
        )
    )
    return cert_path, key_path


def test_certificate_of_another_ca_is_refused(broker_ip, tmp_path):
    cert, key = _foreign_certificate(tmp_path, GW_A)
    assert refused(Client(broker_ip, MTLS_PORT, cert=cert, key=key))


def _converge(inventory_hosts: dict | None, tmp_path: Path, extra: dict | None = None) -> None:
    inventory_dir = EPHEMERAL / "inventory"
    sources = ["-i", str(inventory_dir / "ansible_inventory.yml")]
    if inventory_hosts is not None:
        hosts_file = tmp_path / "hosts.yml"
        hosts_file.write_text(yaml.safe_dump(inventory_hosts))
        sources += ["-i", str(hosts_file)]
    else:
        sources = ["-i", str(inventory_dir)]
    command = ["ansible-playbook", *sources, str(SCENARIO / "converge.yml")]
    if extra:
        command += ["-e", json.dumps(extra)]
    env = dict(os.environ)
    env.setdefault("ANSIBLE_ROLES_PATH", str(PROJECT / "roles"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(PROJECT / "collections"))
    env.setdefault("ANSIBLE_CONFIG", str(EPHEMERAL / "ansible.cfg"))
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_removed_and_revoked_gateways_lose_access(broker_ip, tmp_path):
    """Drop GW_Z from the inventory and revoke GW_B; re-converge; both are out; restore the full inventory."""
    saved = {}
    for name in (GW_B, GW_Z):
        for path in cert_files(name):
            shutil.copy(path, tmp_path / path.name)
        saved[name] = tuple(tmp_path / p.name for p in cert_files(name))
        client = Client(broker_ip, MTLS_PORT, cert=saved[name][0], key=saved[name][1])
        assert client.ok, f"{name} cannot connect before the change"
        client.close()

    hosts = yaml.safe_load((EPHEMERAL / "inventory" / "hosts").read_text())
    del hosts["all"]["children"]["gateways"]["hosts"][GW_Z_HOST]
    _converge(hosts, tmp_path, {"fleet_pki_revoked_gateways": [GW_B]})
    try:
        for name in (GW_B, GW_Z):
            by_password = Client(broker_ip, PASSWORD_PORT, name, password(name))
            assert refused(by_password), f"{name}: password still works"
            cert, key = saved[name]
            by_certificate = Client(broker_ip, MTLS_PORT, cert=cert, key=key)
            assert refused(by_certificate), f"{name}: certificate still works"
        assert not cert_files(GW_Z)[0].exists() and not cert_files(GW_B)[0].exists()
        survivor = Client(broker_ip, PASSWORD_PORT, GW_A, password(GW_A))
        assert survivor.ok
        survivor.close()
    finally:
        _converge(None, tmp_path)

    # Back in the inventory: new certificates (new serials), the old ones stay on the CRL.
    for name in (GW_B, GW_Z):
        cert, key = cert_files(name)
        fresh = Client(broker_ip, MTLS_PORT, cert=cert, key=key)
        assert fresh.ok, f"{name}: new certificate refused"
        fresh.close()
        assert refused(Client(broker_ip, MTLS_PORT, cert=saved[name][0], key=saved[name][1]))
        client = Client(broker_ip, PASSWORD_PORT, name, password(name))
        assert client.ok
        client.close()


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
