"""Who may talk to the cloud: refused connections, and gateway A trying to write as client B (denied by the
broker's ACL in B's tree; dead-lettered as spoofing by the ingest in its own tree). None of it is stored."""

from __future__ import annotations

import secrets
import socket
import uuid
from pathlib import Path

import pytest
from fleet import (
    CLOUD_IP,
    DB,
    GW_A,
    GW_B,
    IDENTITY,
    MTLS_PORT,
    PASSWORD_PORT,
    batch,
    ca_cert,
    connect,
    ingest_sum,
    password,
    rows,
)
from testsupport.mqtt_tls import foreign_certificate, refused, tls_alert
from testsupport.polling import wait_until

pytestmark = pytest.mark.timeout(300)
NOT_AUTHORIZED = 135
KEY_PASSWORD = secrets.token_hex(12)  # of the foreign test key; gateway keys are not used from here


def spoofed() -> float:
    return ingest_sum("ironlink_ingest_rejected_total", 'reason="spoofed"')


def test_plaintext_mqtt_is_refused() -> None:
    with pytest.raises(ConnectionRefusedError):  # no plaintext listener outside dev
        socket.create_connection((CLOUD_IP, 1883), timeout=5).close()
    # an MQTT CONNECT in clear on the TLS port gets no CONNACK
    connect_packet = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])
    with socket.create_connection((CLOUD_IP, PASSWORD_PORT), timeout=5) as sock:
        sock.sendall(connect_packet)
        try:
            answer = sock.recv(4)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20"), answer


def test_gateway_password_works_and_a_wrong_one_is_refused() -> None:
    good = connect(PASSWORD_PORT, GW_A, password(GW_A))
    assert good.ok, (good.connack, good.error)
    good.close()
    assert refused(connect(PASSWORD_PORT, GW_A, password(GW_A) + "x"))
    assert refused(connect(PASSWORD_PORT, GW_A, password(GW_B)))  # another gateway's password


def test_mtls_listener_refuses_no_certificate_and_a_foreign_one(tmp_path: Path) -> None:
    assert refused(connect(MTLS_PORT, GW_B, password(GW_B)))
    cert, key = foreign_certificate(tmp_path, GW_B, KEY_PASSWORD)
    assert refused(connect(MTLS_PORT, cert=cert, key=key, key_password=KEY_PASSWORD))
    # Refused for the right reason: the broker does not know the issuing CA (TLS alert 48, unknown_ca), which
    # is what Mosquitto 2.0.11 on OpenSSL 3 answers a certificate of another CA with.
    alert = tls_alert(CLOUD_IP, MTLS_PORT, ca=ca_cert(), cert=cert, key=key, key_password=KEY_PASSWORD)
    assert alert == "TLSV1_ALERT_UNKNOWN_CA"


def test_gateway_a_cannot_publish_into_client_b() -> None:
    forbidden = f"SPOOF-ACL-{uuid.uuid4().hex[:6].upper()}"
    sentinel = f"SENTINEL-{uuid.uuid4().hex[:6].upper()}"
    a = connect(PASSWORD_PORT, GW_A, password(GW_A))
    assert a.ok, (a.connack, a.error)
    try:
        assert a.publish(f"ironlink/{GW_B}/telemetry", batch(IDENTITY[GW_B], forbidden, 10)) == NOT_AUTHORIZED
    finally:
        a.close()
    # A legitimate batch after the forbidden one: once it is stored, the forbidden one would be too. On a
    # connection of its own: Mosquitto 2.0.11 may close a connection after a denied publish.
    sender = connect(PASSWORD_PORT, GW_A, password(GW_A))
    assert sender.ok, (sender.connack, sender.error)
    try:
        assert sender.publish(f"ironlink/{GW_A}/telemetry", batch(IDENTITY[GW_A], sentinel, 10)) == 0
    finally:
        sender.close()
    sentinel_query = f"SELECT count(temperature) FROM telemetry WHERE machine_id = '{sentinel}'"
    wait_until(lambda: rows(sentinel_query, "ACME-PACK"), 60, f"the sentinel {sentinel}", interval=0.5)
    for client in DB:
        assert rows(f"SELECT * FROM telemetry WHERE machine_id = '{forbidden}'", client) == []


def test_claiming_client_b_in_own_tree_is_dead_lettered_as_spoofing() -> None:
    before = spoofed()
    a = connect(PASSWORD_PORT, GW_A, password(GW_A))
    assert a.ok, (a.connack, a.error)
    try:
        assert (
            a.publish(f"ironlink/{GW_A}/telemetry", batch(IDENTITY[GW_B], "SPOOF-ID", 10)) == 0
        )  # the broker allows it
    finally:
        a.close()
    # The ingest counts the batch as spoofed once it has decided: the rows are checked after that decision.
    wait_until(lambda: spoofed() > before, 30, "the spoofed batch to be counted", interval=0.5)
    assert spoofed() == before + 1
    for client in DB:
        assert rows("SELECT * FROM telemetry WHERE machine_id = 'SPOOF-ID'", client) == []
