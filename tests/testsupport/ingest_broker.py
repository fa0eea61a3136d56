# SPDX-License-Identifier: Apache-2.0
"""A cloud broker for the ingest tests: several gateway accounts (one topic tree each), an ingest account.

The agent tests' ``mosquitto.cloud_broker`` has a single gateway account; the ingest needs gateways of two
clients and a second gateway of the same client (spoofing), so this is ``mosquitto.secure_broker`` with its
own accounts and ACL (and a larger ``max_packet_size``). Listeners: TLS (client certificate *and* password,
the ingest's way in) and a plain password listener on loopback for the test publishers (the ACL applies
to both). No per-session queue limit (``max_queued_messages 0``): the ingest's session must hold
everything published during an outage.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from ironlink_contract import wire
from ironlink_contract.model import Identity, Reading
from paho.mqtt.enums import CallbackAPIVersion

from . import procs
from .certs import Pki
from .mosquitto import Broker, secure_broker

INGEST_USER = "ingest"
INGEST_PASSWORD = "ingest-s3cret-pw"


@dataclass(frozen=True)
class GatewayAccount:
    client_id: str
    site_id: str
    gateway_id: str
    user: str
    password: str

    @property
    def prefix(self) -> str:
        return f"ironlink/{self.client_id}/{self.site_id}/{self.gateway_id}"


GATEWAYS = (
    GatewayAccount("ACME", "PLANT1", "GW01", "gw-acme-1", "acme1-pw"),
    GatewayAccount("ACME", "PLANT1", "GW02", "gw-acme-2", "acme2-pw"),
    GatewayAccount("BETA-CO", "SITE9", "GW01", "gw-beta-1", "beta1-pw"),
)


def ingest_broker(d: Path, pki: Pki, gateways: tuple[GatewayAccount, ...] = GATEWAYS) -> Broker:
    users = [(INGEST_USER, INGEST_PASSWORD)] + [(g.user, g.password) for g in gateways]
    acl = (
        "".join(f"user {g.user}\ntopic write {g.prefix}/#\n\n" for g in gateways)
        + f"user {INGEST_USER}\ntopic read ironlink/#\n"
    )
    return secure_broker("ingest-cloud", d, pki, users, acl, max_packet_size=10_000_000)


# -- the ingest worker as a real process, and gateway-side publishers ---------------------------------


T0 = 1_763_800_000_000


def identity(g: GatewayAccount, environment: str = "dev") -> Identity:
    return Identity(g.client_id, g.site_id, g.gateway_id, environment, g.gateway_id.lower())


def make_rows(
    first_seq: int, n: int, machines: int = 2, t0: int = T0, step_ms: int = 100
) -> list[tuple[int, bytes]]:
    """``n`` readings, seqs ``first_seq..``, machines interleaved in runs; ts ``t0 + seq * step_ms``."""
    rows = []
    for i in range(n):
        seq = first_seq + i
        m = i % machines
        r = Reading(
            f"PRESS-{m:02d}",
            t0 + seq * step_ms,
            {"temperature": 20.0 + (seq % 500) / 100, "rpm": 1500 + seq % 7, "running": seq % 11 != 0},
            status="running" if seq % 3 else None,
            quality="good",
        )
        rows.append((seq, wire.pack_reading(r)))
    rows.sort(key=lambda row: (row[0] % machines, row[0]))
    return rows


class Gateway:
    """A gateway's cloud connection (plain listener, its own account): publishes batches QoS 1."""

    def __init__(self, port: int, account: GatewayAccount) -> None:
        self.account = account
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{account.user}-{time.time_ns()}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(account.user, account.password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, payload: bytes, topic: str | None = None, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(
            topic or f"{self.account.prefix}/telemetry", payload, qos=qos, retain=retain
        )
        self.infos.append(info)

    def batch(self, spool_id: str, rows: list[tuple[int, bytes]], ident: Identity | None = None) -> None:
        self.publish(wire.encode_batch(ident or identity(self.account), spool_id, rows))

    def status(self, doc: dict) -> None:
        self.publish(json.dumps(doc).encode(), f"{self.account.prefix}/status", retain=True)

    def wait_acked(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise AssertionError("publish not acknowledged by the broker")
        self.infos.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_config(
    path: Path,
    broker: Broker,
    pki: Pki,
    influx_url: str,
    clients: dict[str, tuple[str, str]],
    state_dir: Path,
    **overrides: object,
) -> Path:
    cfg: dict = {
        "broker": {
            "host": "127.0.0.1",
            "port": broker.ports["tls"],
            "tls": {
                "ca_file": str(pki.ca_cert),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
            "username": INGEST_USER,
            "password_env": "INGEST_BROKER_PASSWORD",
            "share_group": "ingest",
            "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0,
        },
        "influxdb": {"url": influx_url, "backoff_initial_s": 0.2, "backoff_max_s": 1.0, "timeout_s": 5},
        "clients": {c: {"username": u, "password": p} for c, (u, p) in clients.items()},
        "state_dir": str(state_dir),
        "health": {"http_port": 0},
        "log_level": "info",
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def ingest_env() -> dict[str, str]:
    return {**os.environ, "INGEST_BROKER_PASSWORD": INGEST_PASSWORD}


class IngestProcess(procs.ProcessOwner):
    """``ironlink-ingest run`` as a subprocess (python -m, the venv's interpreter); stop is SIGTERM by PID."""

    def __init__(self, config: Path, instance: str, log_dir: Path) -> None:
        self.config = config
        self.instance = instance
        self.log_path = log_dir / f"ingest-{instance}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def command(self) -> list[str]:
        cli = [sys.executable, "-m", "ironlink_ingest.cli"]
        return [*cli, "run", "-c", str(self.config), "--instance", self.instance]

    def start(self, timeout: float = 20.0) -> IngestProcess:
        offset = len(self.log())  # a restart appends to the same log
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ingest_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log()[offset:].splitlines():
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("event") == "health_listening":
                        self.port = doc["port"]
                    if doc.get("event") == "broker_connected" and self.port:
                        return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"ingest {self.instance} did not connect:\n{self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, name: str) -> list[dict]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if doc.get("event") == name:
                    out.append(doc)
        return out

    def get(self, path: str) -> str:
        assert self.port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of ``ironlink_ingest_<name>`` series whose labels include ``labels``."""
        total = 0.0
        for line in self.get("/metrics").splitlines():
            if line.startswith("#") or not line.startswith(f"ironlink_ingest_{name}"):
                continue
            series, _, value = line.rpartition(" ")
            base, _, label_text = series.partition("{")
            if base != f"ironlink_ingest_{name}":
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM to the group, SIGKILL after ``timeout``; the exit code, None when it had to be killed."""
        return self._terminate(timeout, group=True)
