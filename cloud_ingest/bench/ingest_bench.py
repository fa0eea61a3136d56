# SPDX-License-Identifier: Apache-2.0
"""ironlink-ingest benchmark on this machine: real Mosquitto (TLS ingest listener), real influxd 1.6.7, the
worker(s) as real processes.

    source .venv/bin/activate          # from the repo root; the test helpers come from PYTHONPATH:
    PYTHONPATH=tests python cloud_ingest/bench/ingest_bench.py [--readings 200000] [--batch 1000] \
        [--latency-s 20]

1. Throughput, 1 and 2 workers: the workers' persistent sessions exist, the workers are stopped, a backlog
   of ``--readings`` readings (agent-format batches of ``--batch`` from 3 gateways of 2 clients) is published
   and queued by the broker, then the workers start; readings/s = readings / (time until the last is
   written, from worker start). The exact count is then checked with InfluxQL COUNT.
2. Latency at 1,000 readings/s, 1 worker: one gateway publishes a batch of 200 every 200 ms (the agent's
   ``batch_max_delay_ms`` default) for ``--latency-s``; a poller runs ``SELECT COUNT`` every 10 ms and notes
   when each batch became queryable. Reported: p50/p99/max publish -> queryable.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ironlink_contract import wire
from testsupport.certs import make_pki
from testsupport.influxdb import InfluxServer
from testsupport.ingest_broker import (
    GATEWAYS,
    Gateway,
    IngestProcess,
    ingest_broker,
    ingest_config,
    make_rows,
)

CLIENTS = {"ACME": ("acme_writer", "acme-w-pw"), "BETA-CO": ("beta_writer", "beta-w-pw")}
DB = {"ACME": "ironlink_acme", "BETA-CO": "ironlink_beta_co"}


def total_count(influx: InfluxServer) -> int:
    return sum(influx.count(db, "telemetry", "rpm") for db in DB.values())


def throughput(d: Path, pki, workers: int, readings: int, batch: int) -> dict:
    broker = ingest_broker(d / "broker", pki).start()
    influx = InfluxServer(d / "influx").start()
    procs: list[IngestProcess] = []
    gws: list[Gateway] = []
    try:
        for client, (user, password) in CLIENTS.items():
            influx.create_client_db(DB[client], user, password)
        cfgs = [
            ingest_config(d / f"i{n}.yml", broker, pki, influx.url, CLIENTS, d / "state", log_level="warning")
            for n in range(1, workers + 1)
        ]
        procs = [IngestProcess(cfg, str(n), d) for n, cfg in enumerate(cfgs, 1)]
        for p in procs:  # create the persistent sessions, then stop: the broker queues for them
            p.config.write_text(p.config.read_text().replace("log_level: warning", "log_level: info"))
            p.start()
            p.stop()
        gws = [Gateway(broker.ports["plain"], g) for g in GATEWAYS]
        per_gw = readings // len(gws)
        t_enc = time.perf_counter()
        payloads = []
        for gi, g in enumerate(gws):
            for first in range(1, per_gw + 1, batch):
                n = min(batch, per_gw + 1 - first)
                rows = make_rows(first, n, machines=5)
                payloads.append((g, wire.encode_batch(_ident(g), f"bench{gi}", rows)))
        enc_s = time.perf_counter() - t_enc
        for g, payload in payloads:
            g.publish(payload)
        for g in gws:
            g.wait_acked(120)
        sent = per_gw * len(gws)
        cpu0 = _cpu(influx.proc.pid)
        for p in procs:
            p.start()
        samples = []  # (t, written): the rate is taken between 10 % and 90 % (start-up and tail excluded)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            written = sum(p.metric("readings_written_total") for p in procs)
            samples.append((time.monotonic(), written))
            if written >= sent:
                break
            time.sleep(0.05)
        t10 = next(t for t, n in samples if n >= 0.1 * sent)
        t90 = next(t for t, n in samples if n >= 0.9 * sent)
        first = next(t for t, n in samples if n > 0)
        elapsed = samples[-1][0] - first
        worker_cpu = sum(_cpu(p.proc.pid) for p in procs)
        influx_cpu = _cpu(influx.proc.pid) - cpu0
        time.sleep(0.5)
        stored = total_count(influx)
        per_worker = [int(p.metric("readings_written_total")) for p in procs]
        lat = [
            p.metric("write_latency_seconds_sum") / max(1, p.metric("write_latency_seconds_count"))
            for p in procs
        ]
        return {
            "workers": workers,
            "readings": sent,
            "batch": batch,
            "seconds_first_to_last_write": round(elapsed, 2),
            "readings_per_s": round(0.8 * sent / (t90 - t10)),
            "readings_per_s_first_to_last": round(sent / elapsed),
            "worker_cpu_us_per_reading": round(1e6 * worker_cpu / sent, 1),
            "influxd_cpu_us_per_reading": round(1e6 * influx_cpu / sent, 1),
            "stored_exact": stored == sent,
            "stored": stored,
            "per_worker": per_worker,
            "mean_write_s": [round(x, 4) for x in lat],
            "encode_s": round(enc_s, 2),
            "loadavg": _load(),
        }
    finally:
        for g in gws:
            g.close()
        for p in procs:
            p.kill()
        broker.kill()
        influx.kill()


def _ident(g: Gateway):
    from testsupport.ingest_broker import identity

    return identity(g.account)


def latency(d: Path, pki, seconds: float, rate: int = 1000, batch_delay_s: float = 0.2) -> dict:
    broker = ingest_broker(d / "broker", pki).start()
    influx = InfluxServer(d / "influx").start()
    proc = None
    gw = None
    try:
        for client, (user, password) in CLIENTS.items():
            influx.create_client_db(DB[client], user, password)
        cfg = ingest_config(d / "i1.yml", broker, pki, influx.url, CLIENTS, d / "state")
        proc = IngestProcess(cfg, "1", d).start()
        gw = Gateway(broker.ports["plain"], GATEWAYS[0])
        per_batch = int(rate * batch_delay_s)
        n_batches = int(seconds / batch_delay_s)
        t_start_ms = int(time.time() * 1000)
        sent_at: list[float] = []
        seen_at: dict[int, float] = {}
        done = threading.Event()

        def poll() -> None:
            q = f"SELECT COUNT(rpm) FROM telemetry WHERE time >= {t_start_ms - 1000}ms"
            while not done.is_set():
                res = influx.query(q, DB["ACME"])[0]
                n = res["series"][0]["values"][0][1] if "series" in res else 0
                now = time.monotonic()
                k = n // per_batch
                for b in range(k):
                    seen_at.setdefault(b, now)
                if k >= n_batches:
                    return
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        seq = 1
        next_t = time.monotonic()
        for _ in range(n_batches):
            rows = make_rows(seq, per_batch, machines=5, t0=t_start_ms, step_ms=1)  # ts ~ now, unique
            payload = wire.encode_batch(_ident(gw), "latency", rows)
            sent_at.append(time.monotonic())
            gw.publish(payload)
            seq += per_batch
            next_t += batch_delay_s
            time.sleep(max(0.0, next_t - time.monotonic()))
        poller.join(60)
        done.set()
        lat = sorted(seen_at[b] - sent_at[b] for b in range(n_batches) if b in seen_at)

        def pct(p: float) -> float:  # nearest rank
            return lat[max(0, math.ceil(p * len(lat)) - 1)]

        return {
            "rate_readings_per_s": rate,
            "batch": per_batch,
            "batches": n_batches,
            "measured": len(lat),
            "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p90_ms": round(pct(0.90) * 1000, 1),
            "p99_ms": round(pct(0.99) * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1),
            "ingest_write_latency_mean_ms": round(
                1000
                * proc.metric("write_latency_seconds_sum")
                / max(1, proc.metric("write_latency_seconds_count")),
                1,
            ),
            "ingest_batch_latency_mean_ms": round(
                1000
                * proc.metric("batch_latency_seconds_sum")
                / max(1, proc.metric("batch_latency_seconds_count")),
                1,
            ),
            "loadavg": _load(),
            "note": "publish -> COUNT query sees the batch; includes the 10 ms poll interval and query time",
        }
    finally:
        if gw:
            gw.close()
        if proc:
            proc.kill()
        broker.kill()
        influx.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--latency-s", type=float, default=20.0)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    root.chmod(0o755)
    pki = make_pki(root / "pki")
    results: dict = {"python": platform.python_version(), "cpus": _cpus(), "loadavg_before": _load()}
    if not args.skip_throughput:
        for workers in (1, 2):
            results[f"throughput_{workers}w"] = throughput(
                root / f"t{workers}", pki, workers, args.readings, args.batch
            )
            print(json.dumps(results[f"throughput_{workers}w"]), flush=True)
    results["latency_1000_per_s"] = latency(root / "lat", pki, args.latency_s)
    print(json.dumps(results["latency_1000_per_s"]), flush=True)
    print(json.dumps(results, indent=2))


def _cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    import os

    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> list[str]:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[:3]


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
