# SPDX-License-Identifier: Apache-2.0
"""Issue 13 §1: a CA rotation keeps the old and new CA trusted side by side; no gateway is locked out.

The real fleet_pki role runs each step on the controller (lab inventory, throw-away IRONLINK_LAB_DIR).
A real Mosquitto serves the broker's mutual-TLS listener from what the role publishes (trust bundle, server
certificate, CRL bundle), as roles/cloud_broker installs it, and restarts at each step: Mosquitto 2.0 reloads
no CA or CRL on SIGHUP, so roles/cloud_broker restarts it too. Two gateways: A is converged after every step;
B lags (it keeps its first certificate and CA file until the reissue step is done). At every step both must
get in, and B's connection from before the rotation must come back after each restart. After the finish step
the old CA's certificate is refused: the old CA is really gone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from testsupport.mosquitto import Broker, certificate_broker
from testsupport.mqtt_tls import Client, refused
from testsupport.pki_runs import PKI_PLAYBOOK, changed, lab_init, run_pki, snapshot
from testsupport.playbook import output
from testsupport.polling import wait_until

# The broker's certificate must name the address the test connects to (SANs come from the inventory).
SERVER_NAMES = '{"fleet_pki_server_extra_names": ["127.0.0.1"]}'
BROKER = "lab-cloud-01"
GATEWAYS = {"A": "LAB-CO/SITE-A/GW-01", "B": "LAB-CO/SITE-B/GW-01"}
RECONNECT_TIMEOUT = 30.0


def step_args(step: str) -> tuple[str, ...]:
    return ("-e", "fleet_pki_rotate_ca=lab", "-e", f"fleet_pki_rotate_ca_step={step}")


@dataclass
class Fleet:
    """The lab's PKI on the controller, a broker, and the gateways' files as the roles install them."""

    lab: Path
    playbook: Path
    broker: Broker
    installed: Path

    @property
    def pki(self) -> Path:
        return self.lab / "pki"

    @property
    def key_password(self) -> str:
        return (self.lab / "secrets" / "key_passphrase").read_text().strip()

    def record(self) -> dict:
        return json.loads((self.pki / "fleet.json").read_text())

    def published(self) -> tuple[Path, Path]:
        """The CA and CRL files fleet_pki publishes (fleet_pki_credentials.ca_cert and .crl)."""
        trust = self.pki / "trust"
        if trust.is_dir():
            return trust / "ca.pem", trust / "crl.pem"
        return self.pki / "ca" / "ca.crt", self.pki / "ca" / "crl.pem"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_pki(self.lab, self.playbook, "-e", SERVER_NAMES, *args)

    def step(self, step: str) -> None:
        result = self.run(*step_args(step))
        assert result.returncode == 0, output(result)
        again = self.run()  # between steps an ordinary run keeps the rotation where it is
        assert again.returncode == 0 and changed(again) == 0, output(again)

    def converge_broker(self, session: Client | None = None) -> None:
        """Install the published files (the server key decrypted, as the broker role does) and restart. A
        ``session`` connected before must be dropped by the restart and come back with the files it has."""
        ca, crl = self.published()
        shutil.copyfile(ca, self.installed / "broker-ca.pem")
        shutil.copyfile(crl, self.installed / "broker-crl.pem")
        shutil.copyfile(self.pki / "servers" / f"{BROKER}.crt", self.installed / "broker.crt")
        key = serialization.load_pem_private_key(
            (self.pki / "servers" / f"{BROKER}.key").read_bytes(), self.key_password.encode()
        )
        (self.installed / "broker.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        for path in self.installed.glob("broker*"):
            path.chmod(0o644)  # read by user mosquitto; a throw-away key
        self.broker.stop()
        if session is not None:
            wait_until(
                lambda: not session.connected.is_set(), RECONNECT_TIMEOUT, "the restart to drop the session"
            )
        self.broker.start()
        if session is not None:
            wait_until(
                session.connected.is_set, RECONNECT_TIMEOUT, "the lagging gateway's session to reconnect"
            )

    def converge_gateway(self, gateway: str) -> None:
        """What the gateway's agent role installs: the published CA file, its certificate and key."""
        files = self.installed / gateway
        files.mkdir(exist_ok=True)
        shutil.copyfile(self.published()[0], files / "ca.pem")
        for suffix in ("crt", "key"):
            shutil.copyfile(
                self.pki / "gateways" / f"{GATEWAYS[gateway].replace('/', '.')}.{suffix}", files / suffix
            )

    def connect(self, gateway: str, files: Path | None = None) -> Client:
        files = files or self.installed / gateway
        return Client(
            "127.0.0.1",
            self.broker.ports["tls"],
            ca=files / "ca.pem",
            cert=files / "crt",
            key=files / "key",
            key_password=self.key_password,
        )

    def issuer(self, path: Path) -> str:
        name = x509.load_pem_x509_certificate(path.read_bytes()).issuer
        return name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def assert_gets_in(fleet: Fleet, gateway: str) -> None:
    client = fleet.connect(gateway)
    try:
        assert client.ok, (
            f"gateway {gateway} refused: {client.error or client.connack}\n{fleet.broker.new_log()}"
        )
        assert client.publish(f"ironlink/{GATEWAYS[gateway]}/rotation", b"ok") in (
            0,
            16,
        )  # 16: no subscribers
    finally:
        client.close()


@pytest.fixture
def fleet(tmp_path: Path, world_dir: Path) -> Iterator[Fleet]:
    lab = tmp_path / "lab"
    result = lab_init(lab, "-e", SERVER_NAMES)
    assert result.returncode == 0, output(result)
    playbook = tmp_path / "pki.yml"
    playbook.write_text(PKI_PLAYBOOK)
    # Mosquitto runs as user mosquitto: its files live under the world-readable scratch root.
    installed = Path(tempfile.mkdtemp(dir=world_dir))
    installed.chmod(0o755)
    broker = certificate_broker(
        installed / "broker",
        cafile=installed / "broker-ca.pem",
        certfile=installed / "broker.crt",
        keyfile=installed / "broker.key",
        crlfile=installed / "broker-crl.pem",
    )
    fleet = Fleet(lab, playbook, broker, installed)
    try:
        yield fleet
    finally:
        broker.kill()
        shutil.rmtree(installed)


def test_rotation_keeps_every_gateway_connected_and_drops_the_old_ca(fleet: Fleet, tmp_path: Path) -> None:
    old_ca = fleet.record()["ca_common_name"]
    fleet.converge_broker()
    for gateway in GATEWAYS:
        fleet.converge_gateway(gateway)
        assert_gets_in(fleet, gateway)
    before_rotation = tmp_path / "B-before-rotation"
    shutil.copytree(fleet.installed / "B", before_rotation)
    lagging = fleet.connect("B")  # B's live session, never converged until the reissue step is done
    assert lagging.ok, lagging.error
    lagging.client.reconnect_delay_set(min_delay=1, max_delay=2)
    try:
        # begin: a new CA beside the old one; both trusted, no leaf certificate changes yet.
        leaves = {
            p: p.read_bytes() for p in [*fleet.pki.glob("gateways/*.crt"), *fleet.pki.glob("servers/*.crt")]
        }
        fleet.step("begin")
        new_ca = fleet.record()["rotation"]["ca_common_name"]
        assert new_ca == f"{old_ca} G2" and fleet.record()["rotation"]["step"] == "trust"
        assert {p: p.read_bytes() for p in leaves} == leaves
        ca, crl = fleet.published()
        assert ca.read_text().count("BEGIN CERTIFICATE") == 2 and crl.read_text().count("BEGIN X509 CRL") == 2
        fleet.converge_broker(session=lagging)
        fleet.converge_gateway("A")
        assert_gets_in(fleet, "A")
        assert_gets_in(fleet, "B")

        # reissue: gateway certificates from the new CA; the broker keeps its old-CA certificate, which B
        # (trusting only the old CA) must still accept, and B's old certificate is not revoked.
        fleet.step("reissue")
        for name in GATEWAYS.values():
            assert fleet.issuer(fleet.pki / "gateways" / f"{name.replace('/', '.')}.crt") == new_ca
        assert fleet.issuer(fleet.pki / "servers" / f"{BROKER}.crt") == old_ca
        fleet.converge_broker(session=lagging)
        fleet.converge_gateway("A")
        assert fleet.issuer(fleet.installed / "A" / "crt") == new_ca
        assert_gets_in(fleet, "A")
        assert_gets_in(fleet, "B")
    finally:
        lagging.close()
    fleet.converge_gateway("B")
    assert_gets_in(fleet, "B")

    # finish: the new CA is the fleet's, the broker's certificate follows, the old CA is trusted nowhere. The
    # gateways get in before their next converge (they trust both CAs) and after it.
    fleet.step("finish")
    record = fleet.record()
    assert record["ca_common_name"] == new_ca and record["generation"] == 2 and "rotation" not in record
    assert [r["ca_common_name"] for r in record["retired"]] == [old_ca]
    assert not (fleet.pki / "trust").exists() and not (fleet.pki / "ca-next").exists()
    assert fleet.issuer(fleet.pki / "servers" / f"{BROKER}.crt") == new_ca
    fleet.converge_broker()
    for gateway in GATEWAYS:
        assert_gets_in(fleet, gateway)
        fleet.converge_gateway(gateway)
        assert_gets_in(fleet, gateway)
    assert (fleet.installed / "A" / "ca.pem").read_text().count("BEGIN CERTIFICATE") == 1
    # A gateway still holding its certificate from the old CA (with a CA file that trusts the new one, so the
    # refusal is the broker's) is locked out now: the proof that the old CA is no longer trusted.
    shutil.copyfile(fleet.installed / "B" / "ca.pem", before_rotation / "ca.pem")
    assert refused(fleet.connect("B", before_rotation))


def test_steps_run_in_order_and_refusals_change_nothing(fleet: Fleet) -> None:
    before = snapshot(fleet.lab)
    for step, expected in [
        ("reissue", "no CA rotation of fleet lab is in progress"),
        ("finish", "no CA rotation of fleet lab is in progress"),
    ]:
        result = fleet.run(*step_args(step))
        assert result.returncode != 0 and expected in output(result), output(result)
    wrong = fleet.run("-e", "fleet_pki_rotate_ca=prod", "-e", "fleet_pki_rotate_ca_step=begin")
    assert wrong.returncode != 0
    assert "-e fleet_pki_rotate_ca=lab" in output(wrong) and "got fleet_pki_rotate_ca=prod" in output(wrong)
    assert snapshot(fleet.lab) == before

    fleet.step("begin")
    begun = snapshot(fleet.lab)
    early = fleet.run(*step_args("finish"))
    assert early.returncode != 0 and "is at step trust" in output(early), output(early)
    assert snapshot(fleet.lab) == begun


def test_finish_refuses_while_a_gateway_holds_an_old_ca_certificate(fleet: Fleet, tmp_path: Path) -> None:
    cert = fleet.pki / "gateways" / f"{GATEWAYS['B'].replace('/', '.')}.crt"
    old_certificate = cert.read_bytes()
    fleet.step("begin")
    fleet.step("reissue")
    cert.write_bytes(
        old_certificate
    )  # e.g. the PKI directory restored from a backup taken before the reissue
    before = snapshot(fleet.lab)
    result = fleet.run(*step_args("finish"))
    assert result.returncode != 0
    assert "hold no certificate from the new CA" in output(result) and GATEWAYS["B"] in output(result), (
        output(result)
    )
    assert snapshot(fleet.lab) == before
