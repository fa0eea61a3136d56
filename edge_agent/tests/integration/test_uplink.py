# SPDX-License-Identifier: Apache-2.0
"""Uplink against a real Mosquitto (TLS + client cert + password + ACL, MQTT v5) from tests/support."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ironlink_agent.config import SpoolConfig, TlsConfig, UplinkConfig
from ironlink_agent.metrics import AgentMetrics
from ironlink_agent.spool import Spool
from ironlink_agent.uplink import Uplink
from ironlink_contract.model import Identity, Reading
from ironlink_contract.wire import decode_batch
from ironlink_service.backoff import full_jitter
from paho.mqtt.enums import CallbackAPIVersion
from testsupport.certs import make_pki
from testsupport.mosquitto import CloudAccounts, cloud_broker
from testsupport.polling import wait_until

pytestmark = pytest.mark.integration

IDENTITY = Identity("ACME", "PLANT1", "GW1", "dev", "gw1")
ACCOUNTS = CloudAccounts("gw1", "gw-secret-1", "ingest", "ingest-secret", IDENTITY.topic_prefix)


def _open_dir(prefix: str) -> Path:
    """pytest's tmp dirs are 0700; Mosquitto runs as user ``mosquitto`` and must reach its files."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def pki():
    d = _open_dir("a2-pki-")
    yield make_pki(d / "pki")
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def broker(pki):
    d = _open_dir("a2-cloud-")
    b = cloud_broker(d / "cloud", pki, ACCOUNTS).start()
    yield b
    b.kill()
    shutil.rmtree(d, ignore_errors=True)


class Ingest:
    """A plain-listener QoS 1 subscriber that decodes batches into documents."""

    def __init__(self, port: int) -> None:
        self.docs: list[dict] = []
        self.status: list[dict] = []
        self.lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ingest-test", protocol=mqtt.MQTTv5)
        c.username_pw_set(ACCOUNTS.ingest_user, ACCOUNTS.ingest_password)
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.subscribe("ironlink/#", qos=1)
        c.loop_start()
        self.client = c

    def _on_message(self, _c, _u, msg) -> None:
        with self.lock:
            if msg.topic.endswith("/telemetry"):
                self.docs.extend(decode_batch(msg.payload).documents())
            elif msg.topic.endswith("/status") and msg.payload:
                self.status.append(json.loads(msg.payload))

    def wait_docs(self, n: int, timeout: float = 15) -> list[dict]:
        def enough() -> list[dict] | None:
            with self.lock:
                return list(self.docs) if len(self.docs) >= n else None

        return wait_until(enough, timeout, f"{n} documents", interval=0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def uplink_cfg(broker, pki, **kw) -> UplinkConfig:
    cfg = UplinkConfig(
        host="127.0.0.1",
        port=broker.ports["tls"],
        tls=TlsConfig(ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key),
        username=ACCOUNTS.gateway_user,
        password=ACCOUNTS.gateway_password,
        client_id="GW1-agent",
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
    )
    return replace(cfg, **kw)


class Harness:
    def __init__(self, tmp_path: Path, cfg: UplinkConfig) -> None:
        self.metrics = AgentMetrics()
        sc = SpoolConfig(path=tmp_path / "spool.db", min_free_bytes=0)
        self.spool = Spool.from_config(sc, self.metrics)
        self.spool.open()
        self.uplink = Uplink(cfg, IDENTITY, self.spool, self.metrics, shutdown_timeout_s=2)
        self.spool.on_commit = self.uplink.notify_committed
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.uplink.run(self.stop))

    def start(self) -> Harness:
        self.thread.start()
        return self

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.spool.close()


def readings(n: int, start: int = 0) -> list[Reading]:
    base = 1_763_800_000_000
    return [Reading("M1", base + (start + i) * 100, {"temp": 20 + (start + i) % 10 / 10}) for i in range(n)]


def test_full_jitter_is_bounded():
    delays = [full_jitter(a, 1.0, 60.0) for a in range(20) for _ in range(50)]
    assert all(0 <= d <= 60 for d in delays)
    assert max(full_jitter(0, 1.0, 60.0) for _ in range(200)) <= 1.0


def test_forwards_and_deletes_after_puback(tmp_path, broker, pki):
    ingest = Ingest(broker.ports["plain"])
    h = Harness(tmp_path, uplink_cfg(broker, pki, batch_max_readings=500)).start()
    try:
        for i in range(20):
            h.spool.submit(readings(100, i * 100))
        docs = ingest.wait_docs(2000)
        ids = {d["message_id"] for d in docs}
        assert len(ids) == 2000
        assert all(i.startswith(h.spool.spool_id + ":") for i in ids)
        wait_until(lambda: h.spool.snapshot().depth == 0, 15, "an empty spool")
        assert h.metrics.get("readings_forwarded_total") == 2000
        wait_until(
            lambda: any(s["state"] == "online" for s in ingest.status),
            15,
            "the online status",
        )
        online = next(s for s in ingest.status if s["state"] == "online")
        assert {"version", "uptime_s", "spool_depth", "oldest_reading_age_s"} <= online.keys()
        h.close()
        wait_until(
            lambda: ingest.status[-1] == {"state": "offline"}, 15, "the offline status"
        )  # a clean stop publishes offline
    finally:
        if h.thread.is_alive():
            h.close()
        ingest.close()


def test_backlog_is_sent_newest_batch_first(tmp_path, broker, pki):
    cfg = uplink_cfg(broker, pki, batch_max_readings=100, max_inflight=1)
    metrics = AgentMetrics()
    spool = Spool.from_config(SpoolConfig(path=tmp_path / "spool.db", min_free_bytes=0), metrics)
    spool.open()
    spool.submit(readings(1000))
    assert spool.wait_idle(10)
    spool.close()
    ingest = Ingest(broker.ports["plain"])
    h = Harness(tmp_path, cfg).start()
    try:
        docs = ingest.wait_docs(1000)
        seqs = [int(d["message_id"].split(":")[1]) for d in docs]
        assert seqs[:100] == list(range(901, 1001))  # newest batch first
        assert seqs[100:] == list(range(1, 901))  # then the backlog, oldest first
    finally:
        h.close()
        ingest.close()


def test_oldest_first_is_fifo(tmp_path, broker, pki):
    cfg = uplink_cfg(broker, pki, batch_max_readings=100, max_inflight=1, order="oldest_first")
    ingest = Ingest(broker.ports["plain"])
    h = Harness(tmp_path, cfg)
    h.spool.submit(readings(500))
    assert h.spool.wait_idle(10)
    h.start()
    try:
        docs = ingest.wait_docs(500)
        assert [int(d["message_id"].split(":")[1]) for d in docs] == list(range(1, 501))
    finally:
        h.close()
        ingest.close()


def test_acl_refusal_keeps_rows(tmp_path, broker, pki, caplog):
    """MQTT v5 PUBACK reason 135 (ACL) means not delivered: rows stay, failure is counted and logged."""
    h = Harness(tmp_path, uplink_cfg(broker, pki))
    h.uplink.telemetry_topic = "ironlink/OTHER/PLANT1/GW1/telemetry"  # outside the gateway's ACL
    h.start()
    try:
        with caplog.at_level(logging.ERROR):
            h.spool.submit(readings(10))
            wait_until(
                lambda: h.metrics.total("uplink_publish_failures_total") >= 1,
                15,
                "a refused publish",
            )
        assert h.metrics.get("uplink_publish_failures_total", reason="135") >= 1
        assert h.spool.snapshot().depth == 10
        assert h.metrics.get("readings_forwarded_total") == 0
        assert any(getattr(r, "event", "") == "uplink_publish_refused" for r in caplog.records)
    finally:
        h.close()


def test_no_subscriber_keeps_rows_until_a_consumer_subscribes(tmp_path, broker, pki, caplog):
    """PUBACK 0x10 (no matching subscribers): the broker dropped the batch; the rows stay and are re-sent."""
    h = Harness(tmp_path, uplink_cfg(broker, pki)).start()
    ingest = None
    try:
        with caplog.at_level(logging.WARNING):
            h.spool.submit(readings(10))
            wait_until(
                lambda: h.metrics.get("uplink_publish_failures_total", reason="16") >= 1,
                15,
                "a PUBACK 0x10 (no subscribers)",
            )
        assert h.spool.snapshot().depth == 10
        assert h.metrics.get("readings_forwarded_total") == 0
        assert any(getattr(r, "event", "") == "uplink_no_subscribers" for r in caplog.records)
        ingest = Ingest(broker.ports["plain"])
        assert len({d["message_id"] for d in ingest.wait_docs(10)}) == 10
        wait_until(lambda: h.spool.snapshot().depth == 0, 15, "an empty spool")
        assert h.metrics.get("readings_forwarded_total") == 10
    finally:
        h.close()
        if ingest is not None:
            ingest.close()


def test_identity_outside_acl_is_logged_and_backs_off(tmp_path, broker, pki, caplog):
    """Mosquitto answers PUBACK 135 to the status publish and closes the connection: say so, back off."""
    h = Harness(tmp_path, uplink_cfg(broker, pki, backoff_initial_s=0.05, backoff_max_s=5))
    h.uplink.telemetry_topic = "ironlink/OTHER/PLANT1/GW1/telemetry"
    h.uplink.status_topic = "ironlink/OTHER/PLANT1/GW1/status"
    h.spool.submit(readings(10))
    with caplog.at_level(logging.INFO):
        h.start()
        try:
            time.sleep(3)
        finally:
            h.close()
    refused = [r for r in caplog.records if getattr(r, "event", "") == "uplink_publish_refused"]
    assert refused, "refusal not logged"
    assert "Not authorized" in refused[0].getMessage()
    connects = [r for r in caplog.records if getattr(r, "event", "") == "uplink_connected"]
    assert 1 <= len(connects) <= 12  # growing backoff, not one reconnect per backoff_initial_s
    assert h.spool.snapshot().depth == 10


@pytest.mark.parametrize(
    ("change", "cause", "text"),
    [
        ("wrong_ca", "tls_verify", "certificate verify failed"),
        ("bad_password", "auth", "CONNACK refused"),
        ("wrong_client_cert", "tls", "unknown ca"),
    ],
)
def test_connect_failures_are_named(tmp_path, broker, pki, caplog, change, cause, text):
    if change == "wrong_ca":
        cfg = uplink_cfg(broker, pki, tls=TlsConfig(pki.wrong_ca_cert, pki.client_cert, pki.client_key))
    elif change == "wrong_client_cert":
        cfg = uplink_cfg(broker, pki, tls=TlsConfig(pki.ca_cert, pki.wrong_client_cert, pki.wrong_client_key))
    else:
        cfg = uplink_cfg(broker, pki, password="wrong-password")
    h = Harness(tmp_path, cfg)
    h.spool.submit(readings(5))
    h.start()
    try:
        with caplog.at_level(logging.ERROR):
            wait_until(
                lambda: h.metrics.get("uplink_connect_failures_total", cause=cause) >= 1,
                15,
                f"a connect failure ({cause})",
            )
        msgs = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "uplink_connect_failed"]
        assert any(text in m for m in msgs), msgs
        assert h.spool.wait_idle(5)
        assert h.spool.snapshot().depth == 5
        assert not h.uplink.connected
    finally:
        h.close()


def test_outage_then_drain(tmp_path, broker, pki):
    ingest_port = broker.ports["plain"]
    h = Harness(tmp_path, uplink_cfg(broker, pki)).start()
    try:
        wait_until(lambda: h.uplink.connected, 15, "the uplink to connect")
        broker.stop()
        wait_until(lambda: not h.uplink.connected, 15, "the uplink to notice the broker stopped")
        for i in range(10):
            h.spool.submit(readings(300, i * 300))
        assert h.spool.wait_idle(10)
        assert h.spool.snapshot().depth == 3000
        broker.start()
        ingest = Ingest(ingest_port)
        try:
            docs = ingest.wait_docs(3000, timeout=30)
            assert len({d["message_id"] for d in docs}) == 3000
            wait_until(lambda: h.spool.snapshot().depth == 0, 15, "an empty spool")
        finally:
            ingest.close()
    finally:
        h.close()
