# SPDX-License-Identifier: Apache-2.0
"""An MQTT 5 test client over TLS for the cloud scenarios (cloud_broker, cloud_fleet).

It records CONNACK, PUBACK reason codes and received messages, tells a refused connection from an accepted
one, and names the TLS alert a broker answers a client certificate with.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from testsupport.polling import wait_until

# The broker's answers come in on paho's network thread: how long a test waits for one before failing.
ANSWER_TIMEOUT = 10.0


class Client:
    """A connected MQTT 5 client over TLS that records CONNACK, PUBACK reason codes and received messages."""

    def __init__(
        self,
        ip: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        ca: Path,
        cert: Path | None = None,
        key: Path | None = None,
        key_password: str | None = None,
    ) -> None:
        self.connected = threading.Event()
        self.done = threading.Event()
        self.connack = None
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list] = {}
        self.messages: list[tuple[str, bytes]] = []
        client_id = f"t-{uuid.uuid4().hex[:10]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        context = ssl.create_default_context(cafile=str(ca))  # verifies the broker: CA and the address as SAN
        if cert:
            context.load_cert_chain(str(cert), str(key), password=key_password)
        self.client.tls_set_context(context)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.error = None
        try:
            self.client.connect(ip, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
            return
        self.client.loop_start()
        self.done.wait(ANSWER_TIMEOUT)

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

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        self.subacks[mid] = list(reason_codes)

    def _on_message(self, _client, _userdata, message):
        self.messages.append((message.topic, message.payload))

    @property
    def ok(self) -> bool:
        return self.error is None and self.connected.is_set()

    def publish(self, topic_name: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0: accepted, 135: not authorized)."""
        info = self.client.publish(topic_name, payload, qos=1)
        wait_until(lambda: info.mid in self.pubacks, ANSWER_TIMEOUT, f"the PUBACK of {topic_name}", 0.05)
        return self.pubacks[info.mid]

    def subscribe(self, *filters: str) -> None:
        """Subscribe and wait for the SUBACK: the broker delivers what is published after this returns."""
        self.subacks.clear()
        result, mid = self.client.subscribe([(f, 1) for f in filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        wait_until(lambda: mid in self.subacks, ANSWER_TIMEOUT, f"the SUBACK of {filters}", 0.05)

    def _found(self, payload: bytes) -> list[str]:
        return [t for t, p in self.messages if p == payload]

    def received(self, payload: bytes, wait: float = 5.0) -> list[str]:
        """The topics ``payload`` arrived on, waiting up to ``wait`` s for the first."""
        try:
            return wait_until(lambda: self._found(payload), wait, "the message", 0.05)
        except AssertionError:
            return []

    def received_before(self, payload: bytes, sentinel: bytes, wait: float = 10.0) -> list[str]:
        """The topics ``payload`` arrived on by the time ``sentinel`` (published after it) arrived.

        A negative check: ``sentinel`` must arrive, so an empty answer means "not delivered", not "slow".
        """
        wait_until(lambda: self._found(sentinel), wait, "the sentinel published after the message", 0.05)
        return self._found(payload)

    def close(self) -> None:
        if self.error is None:
            self.client.disconnect()
            self.client.loop_stop()


def refused(client: Client) -> bool:
    """The broker did not let the client in: TLS failed, CONNACK refused, or the connection was dropped."""
    if client.error is not None:
        return True
    # The client waited for the broker's answer (a CONNACK, or the connection closed: with TLS 1.3 a rejected
    # client certificate shows up after the client's side of the handshake); none in time is not a refusal.
    assert client.done.is_set(), "no CONNACK and no disconnect from the broker"
    result = not client.connected.is_set()
    client.close()
    return result


def tls_alert(
    ip: str,
    port: int,
    *,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    key_password: str | None = None,
) -> str:
    """The TLS alert the broker answers this client with, as OpenSSL names it (``TLSV1_ALERT_UNKNOWN_CA``).

    With TLS 1.3 the server checks the client's certificate after the client's side of the handshake, so the
    alert arrives on the first read. Nothing is sent: data the broker has not read when it closes would turn
    its close into a reset, which can discard the alert. "" when the broker keeps the connection open (it
    waits for a CONNECT: the certificate was accepted).
    """
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key), password=key_password)
    with socket.create_connection((ip, port), timeout=ANSWER_TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=ip) as tls:
                tls.recv(1)
        except ssl.SSLError as exc:
            return exc.reason or str(exc)
        except TimeoutError:
            return ""
    return ""


def foreign_certificate(directory: Path, common_name: str, key_password: str) -> tuple[Path, Path]:
    """A CA of its own and a client certificate with a gateway's CN signed by it (key encrypted)."""
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
    cert_path, key_path = directory / "foreign.crt", directory / "foreign.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(key_password.encode()),
        )
    )
    return cert_path, key_path
