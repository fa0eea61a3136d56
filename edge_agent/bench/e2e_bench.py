# SPDX-License-Identifier: Apache-2.0
"""End-to-end benchmark of the gateway agent on this machine (prints figures; not a test).

    source .venv/bin/activate          # from the repo root; the test helpers come from PYTHONPATH:
    PYTHONPATH=tests:edge_agent/tests python edge_agent/bench/e2e_bench.py           # all phases, 2-3 min
    PYTHONPATH=tests:edge_agent/tests python edge_agent/bench/e2e_bench.py --quick   # smaller counts, < 1 min

Path: publisher process -> local Mosquitto -> agent process (``python -m ironlink_agent run``) -> cloud
Mosquitto (TLS 1.2, client certificate + password, ACL) -> subscriber (decodes with contract.wire).
The agent runs with the production defaults of config.py (batch 2000 / 200 ms, commit window 1000 ms,
max_inflight 8); only ports, paths and the uplink reconnect backoff (0.2..1 s, so recovery does not wait on
a 60 s backoff) differ.

Phases (each a fresh broker pair and agent; every process is killed by PID at the end, also on error):
1. throughput: N readings as fast as the publisher can, 1 reading per MQTT message (what machines do),
   then 20 readings per message (JSON arrays): readings/s end to end, agent CPU-s per 10k, bytes/reading.
   capacity: N readings (1 per message) queued in the local broker first, then the agent started: the
   agent's own ceiling, independent of how fast one Python publisher process can go.
2. latency: 200 readings/s for S seconds; publisher stamps ``sent_ns``; p50/p99/max end-to-end latency.
3. drain: cloud broker down, N readings spooled, broker back: drain rate (readings/s).
4. kill -9: cloud down, publisher streaming, agent killed mid-stream and restarted, cloud back: lost
   readings (acknowledged to the publisher but never delivered) and duplicates.
Peak RSS is the agent's VmHWM over each phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.stack import TOPIC_PREFIX, Stack
from testsupport.certs import make_pki
from testsupport.polling import wait_until

HERE = Path(__file__).resolve().parent

PUBLISHER = HERE / "_publisher.py"
TELEMETRY_TOPIC = f"{TOPIC_PREFIX}/telemetry"
# MQTT 5 PUBLISH QoS 1 header: fixed header (1 + 2..3 length bytes) + topic (2 + len) + packet id (2)
# + property length (1); the PUBACK back is 4 bytes. TLS 1.2 AES-GCM adds 29 bytes per record (<= 16 KiB).
MQTT_OVERHEAD = 1 + 3 + 2 + len(TELEMETRY_TOPIC) + 2 + 1


def bench_config(stack: Stack) -> dict:
    cfg = stack.base_config(mqtt=True)
    up = cfg["uplink"]
    for key in ("batch_max_delay_ms", "keepalive_s"):
        up.pop(key, None)
    cfg["spool"].pop("commit_window_ms", None)
    cfg["spool"]["min_free_bytes"] = 64 * 1024 * 1024
    cfg["log_level"] = "WARNING"
    return cfg


def publisher(port: int, *, wait: bool = True, **kw: object) -> dict | subprocess.Popen:
    cmd = [sys.executable, str(PUBLISHER), "--port", str(port)]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    if not wait:
        return proc
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads(out.strip().splitlines()[-1])


def uplink_bytes_sent(cloud_tls_port: int) -> int:
    """TCP payload bytes the agent has sent on its connection(s) to the cloud TLS listener (TLS+MQTT)."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( dport = :{cloud_tls_port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return sum(int(tok.split(":")[1]) for tok in out.split() if tok.startswith("bytes_sent:"))


def docs_count(stack: Stack) -> int:
    return len(stack.subscriber.message_ids())


def phase_throughput(stack: Stack, n: int, per_message: int) -> dict:
    agent = stack.agent(bench_config(stack), name=f"tp{per_message}").start()
    port = stack.local.ports["mqtt"]
    publisher(port, count=2000, per_message=per_message)  # warm-up (imports, caches, TLS session)
    wait_until(lambda: docs_count(stack) >= 2000, 60, "warm-up delivery")
    stack.subscriber.wait_quiet(0.5)
    base_docs, base_batches = docs_count(stack), len(stack.subscriber.batches())
    cpu0, wire0 = agent.cpu_seconds(), uplink_bytes_sent(stack.cloud.ports["tls"])
    res = publisher(port, count=n, per_message=per_message)
    wait_until(lambda: docs_count(stack) >= base_docs + n, 180, "throughput delivery")
    batches = stack.subscriber.batches()[base_batches:]
    t_last = batches[-1].t
    cpu = agent.cpu_seconds() - cpu0
    wire = uplink_bytes_sent(stack.cloud.ports["tls"]) - wire0
    payload = sum(len(b.payload) for b in batches)
    readings = sum(len(b.docs) for b in batches)
    out = {
        "per_message": per_message,
        "readings": n,
        "e2e_readings_per_s": n / (t_last - res["t_start"]),
        "publisher_readings_per_s": n / (res["t_acked"] - res["t_start"]),
        "agent_cpu_s_per_10k": cpu / n * 10_000,
        "batches": len(batches),
        "mean_batch_readings": readings / len(batches),
        "payload_bytes_per_reading": payload / readings,
        "payload_plus_mqtt_bytes_per_reading": (payload + len(batches) * (MQTT_OVERHEAD + 29)) / readings,
        "tcp_payload_bytes_per_reading_measured": wire / readings,
        "agent_vmhwm_kb": agent.hwm_kb(),
        "agent_rss_kb": agent.rss_kb(),
        "duplicates": readings - (docs_count(stack) - base_docs),
    }
    agent.stop()
    return out


def phase_capacity(stack: Stack, n: int) -> dict:
    """The agent's own ceiling at 1 reading per message, whatever the publisher can do: the readings wait
    in the local broker (the agent's persistent session) and the agent is started against that queue."""
    agent = stack.agent(bench_config(stack), name="capacity").start()
    agent.stop()
    publisher(stack.local.ports["mqtt"], count=n, per_message=1)
    t0 = time.time()
    agent.start(wait=False)
    wait_until(lambda: docs_count(stack) >= n, 240, "queued readings delivered")
    t_last = stack.subscriber.batches()[-1].t
    out = {
        "readings": n,
        "e2e_readings_per_s": n / (t_last - t0),
        "agent_cpu_s_per_10k_incl_startup": agent.cpu_seconds() / n * 10_000,
        "agent_vmhwm_kb": agent.hwm_kb(),
    }
    agent.stop()
    return out


def phase_latency(stack: Stack, rate: float, seconds: float) -> dict:
    agent = stack.agent(bench_config(stack), name="latency").start()
    port = stack.local.ports["mqtt"]
    publisher(port, count=400, rate=rate, profile="latency", first_seq=10_000_000)  # warm-up
    wait_until(lambda: docs_count(stack) >= 400, 30, "warm-up delivery")
    stack.subscriber.wait_quiet(0.5)
    base_batches = len(stack.subscriber.batches())
    n = int(rate * seconds)
    cpu0, wire0 = agent.cpu_seconds(), uplink_bytes_sent(stack.cloud.ports["tls"])
    publisher(port, count=n, rate=rate, profile="latency")
    wait_until(lambda: docs_count(stack) >= 400 + n, 60, "latency delivery")
    cpu = agent.cpu_seconds() - cpu0
    wire = uplink_bytes_sent(stack.cloud.ports["tls"]) - wire0
    lat_ms = []
    batches = stack.subscriber.batches()[base_batches:]
    for b in batches:
        for d in b.docs:
            lat_ms.append((b.t - d["metrics"]["sent_ns"] / 1e9) * 1000)
    lat_ms.sort()
    payload = sum(len(b.payload) for b in batches)
    out = {
        "rate": rate,
        "readings": len(lat_ms),
        "p50_ms": statistics.median(lat_ms),
        "p90_ms": lat_ms[int(0.90 * (len(lat_ms) - 1))],
        "p99_ms": lat_ms[int(0.99 * (len(lat_ms) - 1))],
        "max_ms": lat_ms[-1],
        "mean_batch_readings": len(lat_ms) / len(batches),
        "agent_cpu_s_per_10k": cpu / n * 10_000,
        "agent_cpu_percent": cpu / seconds * 100,
        "payload_bytes_per_reading": payload / len(lat_ms),
        "tcp_payload_bytes_per_reading_measured": wire / len(lat_ms),
        "agent_vmhwm_kb": agent.hwm_kb(),
    }
    agent.stop()
    return out


def phase_drain(stack: Stack, n: int) -> dict:
    cfg = bench_config(stack)
    agent = stack.agent(cfg, name="drain").start()
    stack.cloud.stop()
    wait_until(lambda: agent.metric("uplink_connected") == 0, 30, "outage noticed")
    res = publisher(stack.local.ports["mqtt"], count=n, per_message=1)
    wait_until(lambda: agent.metric("spool_depth_readings") >= n, 120, "backlog spooled")
    spool_rate = n / (time.time() - res["t_start"])
    before = len(stack.subscriber.batches())
    t_up = time.time()
    stack.cloud.start()
    wait_until(lambda: docs_count(stack) >= n, 180, "backlog drained")
    batches = stack.subscriber.batches()[before:]
    t_first, t_last = batches[0].t, batches[-1].t
    out = {
        "readings": n,
        "spool_in_rate_per_s": spool_rate,
        "reconnect_s": t_first - t_up,
        "drain_readings_per_s": n / (t_last - t_first) if t_last > t_first else float("inf"),
        "drain_incl_reconnect_per_s": n / (t_last - t_up),
        "batches": len(batches),
        "agent_vmhwm_kb": agent.hwm_kb(),
    }
    agent.stop()
    return out


def phase_kill9(stack: Stack, n: int, rate: float) -> dict:
    cfg = bench_config(stack)
    agent = stack.agent(cfg, name="kill9").start()
    stack.cloud.stop()
    wait_until(lambda: agent.metric("uplink_connected") == 0, 30, "outage noticed")
    pub = publisher(stack.local.ports["mqtt"], wait=False, count=n, rate=rate, profile="latency")
    time.sleep(n / rate / 2)
    agent.kill9()
    killed_after = agent.log_text().count("\n")
    out_text, _ = pub.communicate(timeout=120)
    res = json.loads(out_text.strip().splitlines()[-1])
    agent.start()
    stack.cloud.start()
    with contextlib.suppress(AssertionError):  # wait_until's timeout
        wait_until(lambda: docs_count(stack) >= n, 120, "delivery after kill -9")
    stack.subscriber.wait_quiet(2.0)
    seqs = [d["metrics"]["seq"] for d in stack.subscriber.docs()]
    by_seq: dict[int, set[str]] = {}
    for d in stack.subscriber.docs():
        by_seq.setdefault(d["metrics"]["seq"], set()).add(d["message_id"])
    out = {
        "published": res["readings"],
        "acked_by_local_broker": res["acked_messages"],
        "delivered_unique_readings": len(set(seqs)),
        "lost": len(set(range(n)) - set(seqs)),
        "duplicates_same_message_id": len(seqs) - len(stack.subscriber.message_ids()),
        "duplicates_new_message_id": sum(len(v) - 1 for v in by_seq.values()),
        "log_lines_before_kill": killed_after,
    }
    agent.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    ap.add_argument("--phases", default="throughput,latency,drain,kill9")
    args = ap.parse_args()
    n_tp = 20_000 if args.quick else 50_000
    n_drain = 20_000 if args.quick else 50_000
    lat_s = 10 if args.quick else 20
    phases = args.phases.split(",")

    root = Path(tempfile.mkdtemp(prefix="ironlink-bench-"))
    root.chmod(0o755)
    pki = make_pki(root / "pki")
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, kernel {platform.release()}",
        "load_avg_at_start": os.getloadavg(),
    }
    t0 = time.time()

    def run(name: str, fn, *a) -> None:
        d = root / name
        d.mkdir()
        stack = Stack(d, pki)
        try:
            results[name] = fn(stack, *a)
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            stack.close()
        print(f"{name}: {json.dumps(results[name], indent=None, default=str)}", flush=True)

    try:
        if "throughput" in phases:
            run("throughput_1_per_msg", phase_throughput, n_tp, 1)
            run("throughput_20_per_msg", phase_throughput, n_tp, 20)
            run("capacity_1_per_msg", phase_capacity, n_tp)
        if "latency" in phases:
            run("latency_200_per_s", phase_latency, 200.0, lat_s)
        if "drain" in phases:
            run("drain", phase_drain, n_drain)
        if "kill9" in phases:
            run("kill9", phase_kill9, 10_000, 2000.0)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
