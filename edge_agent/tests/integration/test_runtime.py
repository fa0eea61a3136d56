# SPDX-License-Identifier: Apache-2.0
"""The whole agent: real local Mosquitto → MqttInput → spool → uplink → real TLS cloud Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ironlink_agent.config import parse_config
from ironlink_agent.metrics import AgentMetrics
from ironlink_agent.runtime import Runtime, supervise
from paho.mqtt.enums import CallbackAPIVersion
from test_uplink import ACCOUNTS, IDENTITY, Ingest, _open_dir, cloud_broker
from testsupport.certs import make_pki
from testsupport.mosquitto import local_broker
from testsupport.polling import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env():
    d = _open_dir("a2-rt-")
    pki = make_pki(d / "pki")
    cloud = cloud_broker(d / "cloud", pki, ACCOUNTS).start()
    local = local_broker(d / "local").start()
    yield d, pki, cloud, local
    cloud.kill()
    local.kill()
    shutil.rmtree(d, ignore_errors=True)


def agent_config(d: Path, pki, cloud, local, **spool):
    return {
        "identity": {
            "client_id": IDENTITY.client_id,
            "site_id": IDENTITY.site_id,
            "gateway_id": IDENTITY.gateway_id,
            "environment": "dev",
            "hostname": "gw1",
        },
        "uplink": {
            "host": "127.0.0.1",
            "port": cloud.ports["tls"],
            "tls": {
                "ca_file": str(pki.ca_cert),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
            "username": ACCOUNTS.gateway_user,
            "password": ACCOUNTS.gateway_password,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        },
        "spool": {"path": str(d / "spool.db"), "min_free_bytes": 0, **spool},
        "health": {"http_port": 0, "health_file": str(d / "health.json")},
        "metrics": [{"name": "temperature", "type": "float", "min": -50, "max": 150}],
        "mqtt": {
            "host": "127.0.0.1",
            "port": local.ports["mqtt"],
            "topics": [
                {
                    "topic": "plant/+/temp",
                    "format": "json",
                    "machine_id_topic_level": 1,
                    "fields": {"t": "temperature"},
                    "ts_field": "ts",
                }
            ],
        },
    }


class Agent:
    def __init__(self, config) -> None:
        self.rt = Runtime(config, install_signal_handlers=False)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.rt.run()), daemon=True)

    def __enter__(self) -> Agent:
        self.thread.start()
        assert self.rt.ready.wait(15)
        return self

    def __exit__(self, *exc) -> None:
        self.rt.request_stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_end_to_end_with_dead_letter_and_health(env, tmp_path):
    _d, pki, cloud, local = env
    work = _open_dir("a2-agent-")
    config = parse_config(agent_config(work, pki, cloud, local))
    ingest = Ingest(cloud.ports["plain"])
    pub = publisher(local.ports["mqtt"])
    try:
        with Agent(config) as agent:
            rt = agent.rt
            wait_until(
                lambda: rt.uplink.connected and rt.mqtt_input.connected.is_set(),
                15,
                "both MQTT connections",
            )
            ts = int(time.time() * 1000)
            infos = [
                pub.publish(f"plant/M{i % 3}/temp", json.dumps({"t": 20 + i / 100, "ts": ts + i}), qos=1)
                for i in range(300)
            ]
            infos.append(
                pub.publish("plant/M1/temp", json.dumps({"t": 999, "ts": ts}), qos=1)
            )  # out of bounds
            for info in infos:
                info.wait_for_publish(5)
            docs = ingest.wait_docs(300)
            assert {doc["machine_id"] for doc in docs} == {"M0", "M1", "M2"}
            wait_until(
                lambda: rt.metrics.total("readings_dead_lettered_total") == 1,
                15,
                "one dead letter",
            )
            wait_until(lambda: rt.spool.snapshot().depth == 0, 15, "an empty spool")
            assert rt.metrics.get("readings_received_total", source="mqtt") == 300
            assert rt.metrics.get("readings_accepted_total") == 300
            assert rt.metrics.get("readings_dead_lettered_total", reason="out_of_bounds") == 1

            base = f"http://127.0.0.1:{rt.health_server.port}"
            with urllib.request.urlopen(base + "/health", timeout=5) as resp:
                health = json.loads(resp.read())
                assert resp.status == 200
            assert health["status"] == "ok", health
            assert health["spool"]["dead_letters"] == 1
            with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
            assert "ironlink_agent_readings_forwarded_total 300" in text
            assert 'ironlink_agent_readings_received_total{source="mqtt"} 300' in text
            assert "ironlink_agent_uplink_connected 1" in text
            wait_until((work / "health.json").exists, 15, "the health file")
        # after a clean stop: retained offline status, nothing left behind
        wait_until(
            lambda: ingest.status and ingest.status[-1] == {"state": "offline"},
            15,
            "the offline status",
        )
    finally:
        pub.disconnect()
        pub.loop_stop()
        ingest.close()
        shutil.rmtree(work, ignore_errors=True)


def test_supervise_restarts_a_failing_task():
    metrics = AgentMetrics()
    calls = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(10)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            supervise("flaky", flaky, stop, metrics, backoff_initial_s=0.01, backoff_max_s=0.02)
        )
        for _ in range(100):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        task.cancel()

    asyncio.run(main())
    assert len(calls) == 3
    assert metrics.get("restarts_total", task="flaky") == 2


AGENT_SCRIPT = """
import sys
from ironlink_agent import cli, cli_run
cli.REGISTRARS.extend(r for r in cli_run.REGISTRARS if r not in cli.REGISTRARS)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_kill9_during_outage_loses_nothing(env):
    """Readings acked to the local broker are in the spool; the rest the local broker redelivers."""
    _d, pki, cloud, local = env
    work = _open_dir("a2-kill-")
    raw = agent_config(work, pki, cloud, local)
    raw["uplink"]["port"] = 1  # the cloud is unreachable: an outage
    cfg_path = work / "agent.yml"
    cfg_path.write_text(json.dumps(raw))
    cmd = [sys.executable, "-c", AGENT_SCRIPT, "run", "-c", str(cfg_path)]
    log = open(work / "agent.log", "ab")  # noqa: SIM115
    pub = publisher(local.ports["mqtt"])
    procs = []
    try:
        proc = subprocess.Popen(cmd, stderr=log, start_new_session=True)
        procs.append(proc)
        wait_until((work / "health.json").exists, 20, "the health file")
        ts = int(time.time() * 1000)
        n = 3000
        infos = [
            pub.publish(f"plant/M{i % 5}/temp", json.dumps({"t": 20.5, "ts": ts + i}), qos=1)
            for i in range(n)
        ]
        infos[n // 2].wait_for_publish(10)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream
        for info in infos:
            info.wait_for_publish(10)
        proc.wait(10)
        pub.disconnect()
        pub.loop_stop()
        # restart: the local broker redelivers what was not acked; stop it gracefully
        proc = subprocess.Popen(cmd, stderr=log, start_new_session=True)
        procs.append(proc)

        def spooled() -> int:
            from ironlink_agent.status import spool_stats

            return spool_stats(work / "spool.db")["readings"]

        try:
            wait_until(lambda: spooled() >= n, 30, f"{n} spooled readings")
        except AssertionError:
            raise AssertionError(
                f"{spooled()} spooled\n" + (work / "agent.log").read_text()[-3000:]
            ) from None
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
        from ironlink_agent.status import export

        with open(work / "export.jsonl", "w") as fh:
            export(work / "spool.db", "readings", fh)
        rows = [json.loads(line) for line in (work / "export.jsonl").read_text().splitlines()]
        tss = {row["ts"] for row in rows}
        assert tss >= {ts + i for i in range(n)}  # at-least-once: every reading is in the spool
        assert len(rows) == n  # and redeliveries of committed-but-unacked messages were not spooled twice
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        shutil.rmtree(work, ignore_errors=True)
