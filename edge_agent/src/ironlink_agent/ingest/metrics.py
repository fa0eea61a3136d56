"""The ingest's Prometheus metrics: the agent's thread-safe ``Metrics`` store with the ``ironlink_ingest_``
prefix, plus histograms and per-gateway gauges rendered from the fleet tracker (bounded label sets).

``metrics.Metrics.render`` hard-codes the agent's prefix and help table, so ``render`` is overridden here
(a ``prefix``/``help`` constructor argument upstream would remove the override).
"""

from __future__ import annotations

import threading
from bisect import bisect_left

from ironlink_agent.ingest.fleet import Fleet
from ironlink_agent.metrics import Metrics

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


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
            f"{name}_sum {_num(total)}",
            f"{name}_count {cumulative}",
        ]
        return lines


class IngestMetrics(Metrics):
    def __init__(self, fleet: Fleet | None = None) -> None:
        super().__init__()
        self.fleet = fleet or Fleet()
        self.histograms = {"batch_latency_seconds": Histogram(), "write_latency_seconds": Histogram()}

    def observe(self, name: str, value: float) -> None:
        self.histograms[name].observe(value)

    def _header(self, name: str, kind: str) -> list[str]:
        return [
            f"# HELP {PREFIX}{name} {HELP.get(name, name.replace('_', ' '))}",
            f"# TYPE {PREFIX}{name} {kind}",
        ]

    def render(self) -> str:
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        lines: list[str] = []
        for name in sorted(snapshot):
            lines += self._header(name, "counter" if name.endswith("_total") else "gauge")
            for key, value in sorted(snapshot[name].items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                series = f"{PREFIX}{name}{{{label_text}}}" if label_text else f"{PREFIX}{name}"
                lines.append(f"{series} {_num(value)}")
        for name, hist in sorted(self.histograms.items()):
            lines += self._header(name, "histogram")
            lines += hist.render(PREFIX + name)
        lines += self._fleet_lines()
        return "\n".join(lines) + "\n"

    def _fleet_lines(self) -> list[str]:
        gateways = self.fleet.snapshot()
        lines = self._header("gateways_online", "gauge")
        lines.append(f"{PREFIX}gateways_online {sum(1 for s in gateways.values() if s.online)}")
        lines += self._header("gateways_tracked", "gauge")
        lines.append(f"{PREFIX}gateways_tracked {len(gateways)}")
        online = self._header("gateway_online", "gauge")
        seen = self._header("gateway_last_seen_timestamp_seconds", "gauge")
        for (client, site, gateway), state in sorted(gateways.items()):
            labels = f'client_id="{client}",site_id="{site}",gateway_id="{gateway}"'
            online.append(f"{PREFIX}gateway_online{{{labels}}} {1 if state.online else 0}")
            seen.append(
                f"{PREFIX}gateway_last_seen_timestamp_seconds{{{labels}}} {round(state.last_seen, 3)}"
            )
        return lines + online + seen
