# SPDX-License-Identifier: Apache-2.0
"""The MQTT transport against a real Mosquitto on loopback ports: TLS (CA, client certificate, CRL on
either side), refused peers named by cause, and reconnect after a broker restart driven by ``Backoff``."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ironlink_service import mqtt
from ironlink_service.backoff import Backoff
from testsupport.certs import Pki, _leaf
from testsupport.mosquitto import Broker, local_broker, secure_broker
from testsupport.polling import wait_until
from testsupport.programs import require

pytestmark = pytest.mark.integration

USER, PASSWORD = "svc", "svc-secret"
CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
SERVER_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
)
CA_CNF = """\
[ca]
default_ca = ca_default
[ca_default]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 3
certificate = ca.crt
private_key = ca.key
"""


@dataclass(frozen=True)
class Tls:
    """The fields ``mqtt.tls_context`` reads (the daemons' TLS config dataclasses have the same)."""

    ca_file: Path | None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    ca_data: str | None = None
    crl_file: Path | None = None


@dataclass(frozen=True)
class Revocation:
    """Leaves of the test CA that its CRL revokes, and the CRL."""

    client_cert: Path
    client_key: Path
    server_cert: Path
    server_key: Path
    crl: Path
    misnamed_cert: Path  # not revoked: valid, but for another host name
    misnamed_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _programs() -> None:
    require("openssl", "mosquitto", "mosquitto_passwd")


@pytest.fixture(scope="module")
def revoked(pki: Pki) -> Revocation:
    """A client and a server certificate from the test CA, both revoked by the CA's CRL; and a valid server
    certificate for another host name."""
    d = pki.dir
    _leaf(d, "revoked-client", "ca", "gw-revoked", CLIENT_EXT)
    _leaf(d, "revoked-server", "ca", "localhost", SERVER_EXT)
    _leaf(
        d,
        "misnamed-server",
        "ca",
        "elsewhere",
        SERVER_EXT.replace("IP:127.0.0.1,DNS:localhost", "DNS:elsewhere"),
    )
    (d / "ca.cnf").write_text(CA_CNF)
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("1000\n")
    for cert in ("revoked-client.crt", "revoked-server.crt"):
        _openssl("ca", "-config", "ca.cnf", "-revoke", cert, cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl", cwd=d)
    for p in d.iterdir():
        p.chmod(0o644)
    names = ("revoked-client", "revoked-server")
    client, server = ((d / f"{n}.crt", d / f"{n}.key") for n in names)
    return Revocation(*client, *server, d / "ca.crl", d / "misnamed-server.crt", d / "misnamed-server.key")


def _tls_broker(d: Path, pki: Pki, crl: Path | None = None) -> Broker:
    """A broker requiring a CA-signed client certificate and a password; with ``crl`` it also refuses
    client certificates the CRL revokes (Mosquitto's per-listener ``crlfile``)."""
    b = secure_broker(
        "svc", d, pki, [(USER, PASSWORD)], f"user {USER}\ntopic readwrite #\n", max_packet_size=65536
    )
    if crl is not None:
        b.conf = b.conf.replace("tls_version tlsv1.2\n", f"tls_version tlsv1.2\ncrlfile {crl}\n")
    return b


@pytest.fixture
def broker_dir(world_dir: Path, request: pytest.FixtureRequest) -> Path:
    return world_dir / "svc" / request.node.name.replace("[", "-").replace("]", "")


@pytest.fixture
def tls_broker(broker_dir: Path, pki: Pki, revoked: Revocation) -> Iterator[Broker]:
    b = _tls_broker(broker_dir, pki, revoked.crl).start()
    yield b
    b.kill()


def _options(broker: Broker, tls: Tls | None, **kw: object) -> mqtt.ClientOptions:
    port = broker.ports["tls" if tls is not None else "mqtt"]
    opts = mqtt.ClientOptions("127.0.0.1", port, "svc-test", tls=tls, username=USER, password=PASSWORD)
    return replace(opts, **kw)


async def _connect_and_close(opts: mqtt.ClientOptions) -> mqtt.Connection:
    conn = await mqtt.connect(opts)
    try:
        assert conn.client.is_connected()
    finally:
        await mqtt.close(conn.client)
    return conn


def _refusal(opts: mqtt.ClientOptions) -> mqtt.ConnectFailed:
    with pytest.raises(mqtt.ConnectFailed) as info:
        asyncio.run(_connect_and_close(opts))
    return info.value


def _assert_refused_in_handshake(exc: mqtt.ConnectFailed, alert: str, broker: Broker) -> None:
    """The broker refused our certificate: its TLS alert names the reason (cause ``tls``). With TLS 1.3 the
    client sends its certificate after its own side of the handshake is done, and the broker's close can
    overtake the alert: the client then sees only EOF (cause ``network``) and the broker's log says why."""
    if exc.cause == "tls":
        assert alert in exc.detail
    else:
        assert exc.cause == "network" and "EOF" in exc.detail, exc
        wait_until(lambda: "certificate verify failed" in broker.log(), 5, "the broker's verify failure")


@pytest.mark.parametrize("ca", ["file", "data"])
def test_ca_and_client_certificate_connect(tls_broker: Broker, pki: Pki, ca: str):
    tls = Tls(pki.ca_cert, pki.client_cert, pki.client_key)
    if ca == "data":
        tls = replace(tls, ca_file=None, ca_data=pki.ca_cert.read_text())
    asyncio.run(_connect_and_close(_options(tls_broker, tls)))


def test_context_is_tls12_or_later_with_hostname_check(pki: Pki):
    ctx = mqtt.tls_context(Tls(pki.ca_cert))
    assert ctx.minimum_version >= mqtt.ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname
    assert ctx.verify_mode == mqtt.ssl.CERT_REQUIRED
    assert not ctx.verify_flags & mqtt.ssl.VERIFY_CRL_CHECK_LEAF


def test_wrong_ca_is_refused(tls_broker: Broker, pki: Pki):
    exc = _refusal(_options(tls_broker, Tls(pki.wrong_ca_cert, pki.client_cert, pki.client_key)))
    assert exc.cause == "tls_verify"
    assert "certificate verify failed" in exc.detail


def test_hostname_is_checked(broker_dir: Path, pki: Pki, revoked: Revocation):
    """A server certificate from the right CA, issued for another name, is refused."""
    b = _tls_broker(
        broker_dir, replace(pki, server_cert=revoked.misnamed_cert, server_key=revoked.misnamed_key)
    )
    b.start()
    try:
        exc = _refusal(_options(b, Tls(pki.ca_cert, pki.client_cert, pki.client_key)))
        assert exc.cause == "tls_verify"
        assert "IP address mismatch" in exc.detail
    finally:
        b.kill()


def test_client_certificate_of_another_ca_is_refused(tls_broker: Broker, pki: Pki):
    exc = _refusal(_options(tls_broker, Tls(pki.ca_cert, pki.wrong_client_cert, pki.wrong_client_key)))
    _assert_refused_in_handshake(exc, "unknown ca", tls_broker)


def test_revoked_client_certificate_is_refused(tls_broker: Broker, pki: Pki, revoked: Revocation):
    valid = Tls(pki.ca_cert, pki.client_cert, pki.client_key)
    asyncio.run(_connect_and_close(_options(tls_broker, valid)))  # the CRL refuses only what it lists
    exc = _refusal(
        _options(tls_broker, replace(valid, cert_file=revoked.client_cert, key_file=revoked.client_key))
    )
    _assert_refused_in_handshake(exc, "certificate revoked", tls_broker)


def test_client_checks_the_crl_for_the_server_certificate(broker_dir: Path, pki: Pki, revoked: Revocation):
    server = replace(pki, server_cert=revoked.server_cert, server_key=revoked.server_key)
    b = _tls_broker(broker_dir, server).start()
    try:
        tls = Tls(pki.ca_cert, pki.client_cert, pki.client_key)
        asyncio.run(_connect_and_close(_options(b, tls)))  # without the CRL the revocation goes unseen
        exc = _refusal(_options(b, replace(tls, crl_file=revoked.crl)))
        assert exc.cause == "tls_verify"
        assert "certificate revoked" in exc.detail
    finally:
        b.kill()


def test_crl_of_the_ca_accepts_a_valid_server(tls_broker: Broker, pki: Pki, revoked: Revocation):
    tls = Tls(pki.ca_cert, pki.client_cert, pki.client_key, crl_file=revoked.crl)
    assert mqtt.tls_context(tls).verify_flags & mqtt.ssl.VERIFY_CRL_CHECK_LEAF
    asyncio.run(_connect_and_close(_options(tls_broker, tls)))


def test_bad_password_is_named_auth(tls_broker: Broker, pki: Pki):
    tls = Tls(pki.ca_cert, pki.client_cert, pki.client_key)
    exc = _refusal(replace(_options(tls_broker, tls), password="wrong"))
    assert exc.cause == "auth"


def test_mqtt_311_persistent_session(broker_dir: Path):
    """Protocol 3.1.1 with clean_start=False (clean session off): the broker keeps the session."""
    b = local_broker(broker_dir).start()
    try:
        opts = replace(_options(b, None), protocol=mqtt.MQTTv311, clean_start=False, username=None)
        first = asyncio.run(_connect_and_close(opts))
        second = asyncio.run(_connect_and_close(opts))
        assert (first.session_present, second.session_present) == (False, True)
    finally:
        b.kill()


class RecordingBackoff(Backoff):
    def __init__(self, initial: float, cap: float) -> None:
        super().__init__(initial=initial, cap=cap)
        self.delays: list[float] = []
        self.resets = 0

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay

    def reset(self) -> None:
        self.resets += 1
        super().reset()


def test_reconnect_after_broker_restart_uses_the_backoff(broker_dir: Path):
    """The broker goes away: every attempt waits a bounded, growing Backoff delay (paho's own reconnect
    is off); once it is back a fresh client connects, and a healthy connection resets the backoff."""
    b = local_broker(broker_dir).start()
    backoff = RecordingBackoff(initial=0.2, cap=0.8)
    failures: list[mqtt.ConnectFailed] = []
    sessions: list[mqtt.Connection] = []

    async def session(conn: mqtt.Connection) -> None:
        sessions.append(conn)
        conn.healthy = len(sessions) > 1
        await conn.lost.wait()

    async def main() -> None:
        stop = asyncio.Event()
        opts = replace(_options(b, None), username=None)
        task = asyncio.create_task(
            mqtt.maintain(opts, session, stop, backoff, on_failure=lambda exc, _d: failures.append(exc))
        )
        try:
            await asyncio.to_thread(wait_until, lambda: sessions, 10, "first connection")
            await asyncio.to_thread(b.stop)
            await asyncio.to_thread(wait_until, lambda: len(failures) >= 4, 20, "four failed attempts")
            await asyncio.to_thread(b.start)
            await asyncio.to_thread(wait_until, lambda: len(sessions) >= 2, 20, "reconnect")
            stop.set()
            sessions[-1].client.disconnect()  # the session returns once its connection is lost
            await asyncio.wait_for(task, 10)
        finally:
            stop.set()
            task.cancel()

    try:
        asyncio.run(main())
    finally:
        b.kill()
    assert {f.cause for f in failures} == {"network"}
    assert sessions[0].client is not sessions[1].client
    assert sessions[0].lost.is_set() and sessions[0].lost_reason
    # One delay after the first connection was lost, one per failed attempt; none reset in between, so
    # delay i lies in [c/2, c] with c = min(cap, initial * 2**i).
    assert len(backoff.delays) == len(failures) + 1, backoff.delays
    for i, delay in enumerate(backoff.delays):
        ceiling = min(0.8, 0.2 * 2**i)
        assert ceiling / 2 <= delay <= ceiling, (i, backoff.delays)
    assert backoff.resets == 1  # only after the second, healthy connection
