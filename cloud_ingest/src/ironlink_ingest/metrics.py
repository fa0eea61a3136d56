# SPDX-License-Identifier: Apache-2.0
"""The ingest's Prometheus metrics: the agent's thread-safe ``Metrics`` store with the ``ironlink_ingest_``
prefix, plus histograms and per-gateway gauges rendered from the fleet tracker (bounded label sets)."""

from __future__ import annotations

import threading
from bisect import bisect_left

from ironlink_service.metrics import Metrics, number

from ironlink_ingest.fleet import Fleet

PREFIX = "ironlink_ingest_"
HELP: dict[str, str] = {
    "messages_received_total": "MQTT messages received, by kind (telemetry, status).",
    "readings_received_total": "Readings in received, decodable, authentic batches.",
    "readings_written_total": "Readings written to InfluxDB (HTTP 204).",
    "readings_duplicate_total": "Readings skipped because their message_id was already stored.",
    "rejected_total": "Messages rejected and dead-lettered, by reason.",
    "readings_rejected_total": "Readings in rejected batches, by reason (when the batch decoded).",
    "write_errors_total": "Failed InfluxDB writes, by reason (transient ones are retried).",
    "writes_total": "InfluxDB write requests that succeeded.",
    "status_written_total": "Gateway status points written.",
    "dead_letters_stored": "Rows in the dead-letter store.",
    "dead_letters_evicted_total": "Dead letters evicted to keep the store within max_bytes.",
    "broker_connected": "1 while the MQTT session to the cloud broker is up.",
    "connect_failures_total": "Failed connection attempts to the cloud broker, by cause.",
    "restarts_total": "Ingest loops restarted after a failure, by task.",
    "influx_up": "1 when the last InfluxDB write or ping succeeded.",
    "inflight_messages": "MQTT messages received and not yet acknowledged.",
    "dedup_spools": "Spools tracked by the de-duplication state.",
    "gateways_online": "Gateways whose last status was online (or that sent telemetry since).",
    "gateways_tracked": "Gateways in the fleet table (bounded by fleet.max_gateways).",
    "gateway_online": "1 if the gateway's last status was online.",
    "gateway_last_seen_timestamp_seconds": "Unix time of the gateway's last status or batch.",
    "batch_latency_seconds": "Receive to acknowledge, per telemetry message (includes retries).",
    "write_latency_seconds": "Duration of one InfluxDB write request.",
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect_left(self.buckets, value)] += 1
            self._sum += value

    def count(self) -> int:
        with self._lock:
            return sum(self._counts)

    def render(self, name: str) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        lines, cumulative = [], 0
        for bound, n in zip(self.buckets, counts, strict=False):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        cumulative += counts[-1]
        lines += [
            f'{name}_bucket{{le="+Inf"}} {cumulative}',
            f"{name}_sum {number(total)}",
            f"{name}_count {cumulative}",
        ]
        return lines


class IngestMetrics(Metrics):
    def __init__(self, fleet: Fleet | None = None) -> None:
        super().__init__(PREFIX, HELP)
        self.fleet = fleet or Fleet()
        self.histograms = {"batch_latency_seconds": Histogram(), "write_latency_seconds": Histogram()}

    def observe(self, name: str, value: float) -> None:
        self.histograms[name].observe(value)

    def extra_lines(self) -> list[str]:
        lines: list[str] = []
        for name, hist in sorted(self.histograms.items()):
            lines += self.header(name, "histogram")
            lines += hist.render(PREFIX + name)
        return lines + self._fleet_lines()

    def _fleet_lines(self) -> list[str]:
        gateways = self.fleet.snapshot()
        lines = self.header("gateways_online", "gauge")
        lines.append(f"{PREFIX}gateways_online {sum(1 for s in gateways.values() if s.online)}")
        lines += self.header("gateways_tracked", "gauge")
        lines.append(f"{PREFIX}gateways_tracked {len(gateways)}")
        online = self.header("gateway_online", "gauge")
        seen = self.header("gateway_last_seen_timestamp_seconds", "gauge")
        for (client, site, gateway), state in sorted(gateways.items()):
            labels = f'client_id="{client}",site_id="{site}",gateway_id="{gateway}"'
            online.append(f"{PREFIX}gateway_online{{{labels}}} {1 if state.online else 0}")
            seen.append(
                f"{PREFIX}gateway_last_seen_timestamp_seconds{{{labels}}} {round(state.last_seen, 3)}"
            )
        return lines + online + seen
