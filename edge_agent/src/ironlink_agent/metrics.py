"""Thread-safe counters and gauges rendered as Prometheus text exposition.

The agent's hot paths (paho threads, the spool writer thread, asyncio tasks) all update metrics, so a
single lock guards one flat dict. That is cheaper than a client library and keeps the agent
dependency-free beyond paho/pymodbus/PyYAML.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PREFIX = "ironlink_agent_"

HELP: dict[str, str] = {
    "readings_received_total": "Readings received from an input, before spooling.",
    "readings_accepted_total": "Readings durably committed to the spool.",
    "readings_forwarded_total": "Readings acknowledged by the cloud broker (PUBACK), then deleted.",
    "readings_dropped_total": "Readings dropped, by reason.",
    "readings_dead_lettered_total": "Inputs rejected into the dead-letter table, by reason.",
    "dead_letters_evicted_total": "Dead letters evicted because the table reached dead_letter_max_rows.",
    "spool_depth_readings": "Readings currently in the spool.",
    "spool_bytes": "Bytes of reading data currently in the spool (running total).",
    "spool_oldest_age_seconds": "Age of the oldest reading in the spool.",
    "redelivered_readings_skipped_total": "Readings in redelivered MQTT messages that were already spooled.",
    "mqtt_input_connected": "1 when the local MQTT broker connection is up.",
    "modbus_connected": "1 when the Modbus device connection is up, by device.",
    "uplink_disconnects_total": "Cloud broker connections lost.",
    "spool_commit_errors_total": "Spool commits that failed (disk full, I/O error) and were retried.",
    "spool_pending_readings": "Readings queued in memory waiting for a spool commit.",
    "spool_quarantined_total": "Corrupt spool databases moved aside at start.",
    "uplink_connected": "1 when the cloud MQTT connection is up.",
    "uplink_last_success_timestamp_seconds": "Unix time of the last PUBACK from the cloud broker.",
    "uplink_publish_failures_total": "Batches the cloud broker refused (PUBACK reason >= 0x80), by reason.",
    "uplink_connect_failures_total": "Failed connection attempts to the cloud broker, by cause.",
    "uplink_inflight_batches": "Batches published and not yet acknowledged.",
    "restarts_total": "Agent loops restarted after a failure, by task.",
    "modbus_poll_errors_total": "Modbus polls that failed, by device.",
}

_LabelKey = tuple[tuple[str, str], ...]


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: integers without a decimal point."""
    return str(int(value)) if value == int(value) else repr(value)


class Metrics:
    """Counters (names ending in ``_total``) and gauges (everything else)."""

    def __init__(self, prefix: str = PREFIX, help_texts: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[_LabelKey, float]] = {}
        self.prefix = prefix
        self._help = HELP if help_texts is None else help_texts

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def counter(self, name: str, **labels: str) -> Callable[[float], None]:
        """A bound ``inc`` for one label set, for per-message hot paths (no label sorting per call)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series.setdefault(key, 0.0)
        lock = self._lock

        def add(amount: float = 1) -> None:
            with lock:
                series[key] += amount

        return add

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = float(value)

    def get(self, name: str, **labels: str) -> float:
        """Current value (0 when never set); used by health checks and tests."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._values.get(name, {}).get(key, 0.0)

    def total(self, name: str) -> float:
        """Sum over all label sets of one metric."""
        with self._lock:
            return sum(self._values.get(name, {}).values())

    def header(self, name: str, kind: str) -> list[str]:
        """The ``# HELP`` and ``# TYPE`` lines of one metric."""
        full = self.prefix + name
        return [f"# HELP {full} {self._help.get(name, name.replace('_', ' '))}", f"# TYPE {full} {kind}"]

    def render(self) -> str:
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        lines: list[str] = []
        for name in sorted(snapshot):
            full = self.prefix + name
            lines += self.header(name, "counter" if name.endswith("_total") else "gauge")
            for key, value in sorted(snapshot[name].items()):
                label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in key)
                series = f"{full}{{{label_text}}}" if label_text else full
                lines.append(f"{series} {number(value)}")
        lines += self.extra_lines()
        return "\n".join(lines) + "\n"

    def extra_lines(self) -> list[str]:
        """Series a subclass renders itself (histograms, tables), after the counters and gauges."""
        return []
