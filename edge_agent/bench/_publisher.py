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

    acked = 0
    lock = threading.Lock()

    def on_publish(client, userdata, mid, reason_code, properties) -> None:
        nonlocal acked
        with lock:
            acked += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()

    rng = random.Random(7)
    temps = [20.0 + 3 * m for m in range(args.machines)]
    rpm = [1500 + 10 * m for m in range(args.machines)]
    running = [True] * args.machines
    step = 0
    seq = args.first_seq
    pending: dict[int, list[dict]] = {m: [] for m in range(args.machines)}
    t_start = time.time()
    t0 = time.monotonic()
    sent = 0
    published_msgs = 0
    while sent < args.count:
        for m in range(args.machines):
            if sent >= args.count:
                break
            temps[m] = round(temps[m] + rng.choice((-0.01, 0.0, 0.0, 0.01)), 2)
            rpm[m] = max(0, rpm[m] + rng.choice((-3, -1, 0, 0, 1, 3)))
            if rng.random() < 0.001:
                running[m] = not running[m]
            doc: dict = {"temp": temps[m], "rpm": rpm[m], "on": running[m], "ts": T0 + step * 100}
            if args.profile == "latency":
                doc["seq"] = seq
                doc["ts"] = int(time.time() * 1000)
            seq += 1
            sent += 1
            pending[m].append(doc)
            if len(pending[m]) >= args.per_message or sent >= args.count:
                batch = pending[m]
                pending[m] = []
                if args.profile == "latency":
                    now_ns = time.time_ns()
                    for d in batch:
                        d["sent_ns"] = now_ns
                payload = json.dumps(batch[0] if len(batch) == 1 else batch)
                client.publish(f"factory/PRESS-{m:02d}/state", payload, qos=1)
                published_msgs += 1
            if args.rate:
                delay = t0 + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        step += 1
    for m, batch in pending.items():  # leftovers
        if batch:
            client.publish(f"factory/PRESS-{m:02d}/state", json.dumps(batch), qos=1)
            published_msgs += 1
    t_sent = time.time()
    deadline = time.monotonic() + 120
    while acked < published_msgs and time.monotonic() < deadline:
        time.sleep(0.005)
    t_acked = time.time()
    client.disconnect()
    client.loop_stop()
    print(
        json.dumps(
            {
                "readings": sent,
                "messages": published_msgs,
                "acked_messages": acked,
                "t_start": t_start,
                "t_sent": t_sent,
                "t_acked": t_acked,
            }
        ),
        flush=True,
    )
    sys.exit(0 if acked >= published_msgs else 1)


if __name__ == "__main__":
    main()
