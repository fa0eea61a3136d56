# SPDX-License-Identifier: Apache-2.0
"""The whole test bench wired together: local broker, cloud broker (TLS+ACL+passwords), cloud subscriber,
Modbus simulators and agent processes, with one ``close()`` that kills everything by PID."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from testsupport.certs import Pki
from testsupport.mosquitto import Broker, CloudAccounts, cloud_broker, local_broker
from testsupport.polling import wait_until
from testsupport.procs import free_port

from .agent import AgentProcess, write_config
from .cloud import CloudSubscriber
from .modbus_sim import ModbusSimProcess
from .publisher import LocalPublisher

IDENTITY = {
    "client_id": "ACME",
    "site_id": "PLANT1",
    "gateway_id": "GW01",
    "environment": "dev",
    "hostname": "gw01",
}
TOPIC_PREFIX = "ironlink/ACME/PLANT1/GW01"
ACCOUNTS = CloudAccounts(
    gateway_user="gw01-agent",
    gateway_password="gw-s3cret-pass",
    ingest_user="ingest",
    ingest_password="ingest-pass",
    topic_prefix=TOPIC_PREFIX,
)

METRICS = [
    {"name": "temperature", "type": "float", "unit": "degC", "min": -50, "max": 500},
    {"name": "pressure", "type": "float", "unit": "bar"},
    {"name": "rpm", "type": "int"},
    {"name": "running", "type": "bool"},
    {"name": "power", "type": "float", "unit": "kW"},
    {"name": "count", "type": "int"},
    {"name": "energy", "type": "float", "unit": "kWh"},
    {"name": "level", "type": "float"},
    {"name": "seq", "type": "int"},
    {"name": "sent_ns", "type": "int"},
    {"name": "alarm", "type": "bool"},
    {"name": "flow", "type": "float"},
]


class Stack:
    def __init__(self, tmp: Path, pki: Pki) -> None:
        tmp.chmod(0o755)
        self.tmp = tmp
        self.pki = pki
        self.agents: list[AgentProcess] = []
        self.sims: list[ModbusSimProcess] = []
        self._closers: list[Callable[[], None]] = []
        self._sentinels = 0
        self.local: Broker = local_broker(tmp / "local")
        self.cloud: Broker = cloud_broker(tmp / "cloud", pki, ACCOUNTS)
        self.subscriber = CloudSubscriber(
            self.cloud.ports["plain"], ACCOUNTS.ingest_user, ACCOUNTS.ingest_password, "ironlink/#"
        )
        try:  # a half-built bench must not leak the processes it already started
            self.local.start()
            self.cloud.start()
            self.subscriber.start()
        except BaseException:
            self.close()
            raise

    # -- building blocks ------------------------------------------------------------------------------

    def modbus_sim(self, **kw: Any) -> ModbusSimProcess:
        sim = ModbusSimProcess(log_dir=self.tmp, **kw)
        self.sims.append(sim)
        return sim.start()

    def base_config(self, *, mqtt: bool = True, modbus: list[dict] | None = None) -> dict:
        cfg: dict[str, Any] = {
            "identity": dict(IDENTITY),
            "uplink": {
                "host": "127.0.0.1",
                "port": self.cloud.ports["tls"],
                "tls": {
                    "ca_file": str(self.pki.ca_cert),
                    "cert_file": str(self.pki.client_cert),
                    "key_file": str(self.pki.client_key),
                },
                "username": ACCOUNTS.gateway_user,
                "password_env": "IRONLINK_TEST_UPLINK_PASSWORD",
                "batch_max_delay_ms": 50,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 1.0,
                "keepalive_s": 5,
            },
            "spool": {
                "path": str(self.tmp / "spool" / "spool.db"),
                "commit_window_ms": 50,
                "min_free_bytes": 0,
            },
            "metrics": copy.deepcopy(METRICS),
            "health": {"http_host": "127.0.0.1", "http_port": free_port()},
            "log_level": "INFO",
        }
        if mqtt:
            cfg["mqtt"] = {
                "host": "127.0.0.1",
                "port": self.local.ports["mqtt"],
                "topics": [
                    {
                        "topic": "factory/+/state",
                        "format": "json",
                        "machine_id_topic_level": 1,
                        "fields": {
                            "temp": "temperature",
                            "rpm": "rpm",
                            "on": "running",
                            "seq": "seq",
                            "sent_ns": "sent_ns",
                        },
                        "ts_field": "ts",
                        "status_field": "status",
                    },
                    {
                        "topic": "factory/+/pressure",
                        "format": "number",
                        "machine_id_topic_level": 1,
                        "fields": {"value": "pressure"},
                    },
                ],
            }
        if modbus:
            cfg["modbus"] = modbus
        return cfg

    def cloud_sentinel(self, timeout: float = 20) -> None:
        """Publish a marker through the cloud broker and wait until the subscriber has it.

        A negative check ("the agent delivered nothing") waits for this instead of sleeping: the broker
        forwards to the subscriber in the order it accepted messages, so once the marker, published after
        the forbidden attempt, has arrived, anything the broker accepted before it has arrived too.
        """
        self._sentinels += 1
        topic, payload = f"{TOPIC_PREFIX}/sentinel", f"sentinel-{self._sentinels}".encode()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-sentinel", protocol=mqtt.MQTTv311)
        client.username_pw_set(ACCOUNTS.gateway_user, ACCOUNTS.gateway_password)
        client.connect("127.0.0.1", self.cloud.ports["plain"], keepalive=10)
        client.loop_start()
        try:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout)
            assert info.is_published(), "the cloud broker did not take the sentinel"
        finally:
            client.disconnect()
            client.loop_stop()
        wait_until(lambda: self.subscriber.has(topic, payload), timeout, "the cloud sentinel")

    def agent(self, config: dict, name: str = "agent", password: str | None = None) -> AgentProcess:
        (self.tmp / "spool").mkdir(exist_ok=True)
        path = write_config(self.tmp / f"{name}.yaml", config)
        env = {"IRONLINK_TEST_UPLINK_PASSWORD": password or ACCOUNTS.gateway_password}
        agent = AgentProcess(path, self.tmp / f"{name}.log", config["health"]["http_port"], env=env)
        if "mqtt" in config:
            filters = [t["topic"] for t in config["mqtt"]["topics"]]
            agent.before_start = lambda: (len(self.local.log()), len(agent.log_text()))
            agent.after_start = lambda offsets: self._wait_subscribed(agent, offsets, filters)
        self.agents.append(agent)
        return agent

    def _wait_subscribed(
        self, agent: AgentProcess, offsets: Any, filters: list[str], timeout: float = 20
    ) -> None:
        """Until the local broker logged the agent's subscriptions or the agent resumed its persistent
        session: a message published before that has no subscriber, so it was never the agent's to lose."""
        broker_offset, agent_offset = offsets
        deadline = time.monotonic() + timeout
        while True:
            if all(f" {f}" in self.local.log()[broker_offset:] for f in filters):
                return
            for line in agent.log_text()[agent_offset:].splitlines():
                if '"mqtt_input_connected"' in line and '"session_present":true' in line:
                    return
            if time.monotonic() > deadline or not agent.alive:
                tail = agent.log_text()[-3000:]
                raise RuntimeError(f"agent did not subscribe on the local broker:\n{tail}")
            time.sleep(0.02)

    def publisher(self, **kw: Any) -> LocalPublisher:
        """A machine publishing on the local broker, disconnected at ``close()``."""
        pub = LocalPublisher(self.local.ports["mqtt"], **kw)
        self.on_close(pub.close)
        return pub

    def rewrite_config(self, agent: AgentProcess, config: dict) -> None:
        write_config(agent.config_path, config)

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    # -- teardown -------------------------------------------------------------------------------------

    def close(self) -> None:
        for fn in reversed(self._closers):
            with contextlib.suppress(Exception):
                fn()
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.kill9()
        for sim in self.sims:
            with contextlib.suppress(Exception):
                sim.stop()
        with contextlib.suppress(Exception):
            self.subscriber.stop()
        for broker in (self.local, self.cloud):
            with contextlib.suppress(Exception):
                broker.kill()

    def diagnostics(self) -> str:
        parts = []
        for agent in self.agents:
            parts.append(f"--- {agent.log_path.name} (last 3000 chars)\n{agent.log_text()[-3000:]}")
        parts.append(f"--- cloud broker log (last 2000)\n{self.cloud.log()[-2000:]}")
        return "\n".join(parts)
