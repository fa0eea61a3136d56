# SPDX-License-Identifier: Apache-2.0
"""Machine-side load generator for e2e_bench.py, run as its own process (so it does not share the GIL or the
CPU accounting of the bench driver). Prints one JSON summary line on stdout when done.

    python _publisher.py --port P --profile sensor --count 50000 [--rate 0] [--per-message 1]

Profiles:
- ``sensor``: the wire contract's reference workload (5 machines, ts every 100 ms, temperature with 0.01
  resolution drifting, rpm int, running bool), one machine per topic ``factory/PRESS-0<m>/state``.
- ``latency``: like sensor plus ``seq`` and ``sent_ns`` (time.time_ns() at publish) for end-to-end latency.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

T0 = 1_763_800_000_000


class SensorData:
    """The reference workload: per machine, temperature drifting by 0.01, rpm jittering, rarely toggling."""

    def __init__(self, machines: int, latency: bool, first_seq: int) -> None:
        self.rng = random.Random(7)
        self.temps = [20.0 + 3 * m for m in range(machines)]
        self.rpm = [1500 + 10 * m for m in range(machines)]
        self.running = [True] * machines
        self.latency = latency
        self.seq = first_seq

    def reading(self, m: int, step: int) -> dict:
        rng = self.rng
        self.temps[m] = round(self.temps[m] + rng.choice((-0.01, 0.0, 0.0, 0.01)), 2)
        self.rpm[m] = max(0, self.rpm[m] + rng.choice((-3, -1, 0, 0, 1, 3)))
        if rng.random() < 0.001:
            self.running[m] = not self.running[m]
        doc: dict = {"temp": self.temps[m], "rpm": self.rpm[m], "on": self.running[m], "ts": T0 + step * 100}
        if self.latency:
            doc["seq"] = self.seq
            doc["ts"] = int(time.time() * 1000)
        self.seq += 1
        return doc


class Publisher:
    def __init__(self, port: int) -> None:
        self.acked = 0
        self.published = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1

    def send(self, machine: int, docs: list[dict], stamp: bool) -> None:
        if stamp:
            now_ns = time.time_ns()
            for d in docs:
                d["sent_ns"] = now_ns
        payload = json.dumps(docs[0] if len(docs) == 1 else docs)
        self.client.publish(f"factory/PRESS-{machine:02d}/state", payload, qos=1)
        self.published += 1

    def wait_acked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.published and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--profile", choices=("sensor", "latency"), default="sensor")
    p.add_argument("--count", type=int, default=10_000, help="readings")
    p.add_argument("--rate", type=float, default=0.0, help="readings/s; 0 = as fast as possible")
    p.add_argument("--per-message", type=int, default=1, help="readings per MQTT message (JSON array)")
    p.add_argument("--first-seq", type=int, default=0)
    p.add_argument("--machines", type=int, default=5)
    args = p.parse_args()
    latency = args.profile == "latency"
    data = SensorData(args.machines, latency, args.first_seq)
    pub = Publisher(args.port)
    pending: dict[int, list[dict]] = {m: [] for m in range(args.machines)}
    t_start = time.time()
    t0 = time.monotonic()
    sent = step = 0
    while sent < args.count:
        for m in range(min(args.machines, args.count - sent)):
            pending[m].append(data.reading(m, step))
            sent += 1
            if len(pending[m]) >= args.per_message:
                pub.send(m, pending[m], latency)
                pending[m] = []
            if args.rate and (delay := t0 + sent / args.rate - time.monotonic()) > 0:
                time.sleep(delay)
        step += 1
    for m, docs in pending.items():  # leftovers
        if docs:
            pub.send(m, docs, latency)
    t_sent = time.time()
    pub.wait_acked(120)
    t_acked = time.time()
    pub.close()
    summary = {
        "readings": sent,
        "messages": pub.published,
        "acked_messages": pub.acked,
        "t_start": t_start,
        "t_sent": t_sent,
        "t_acked": t_acked,
    }
    print(json.dumps(summary), flush=True)
    sys.exit(0 if pub.acked >= pub.published else 1)


if __name__ == "__main__":
    main()
