# SPDX-License-Identifier: Apache-2.0
"""Thread-safe counters and gauges rendered as Prometheus text exposition.

A daemon's hot paths (paho threads, the agent's spool writer thread, asyncio tasks) all update metrics, so
a single lock guards one flat dict. That is cheaper than a client library and keeps both daemons
dependency-free beyond paho/PyYAML. Each daemon names its own metrics: a ``prefix`` and the help texts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

_LabelKey = tuple[tuple[str, str], ...]


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: integers without a decimal point."""
    return str(int(value)) if value == int(value) else repr(value)


class Metrics:
    """Counters (names ending in ``_total``) and gauges (everything else)."""

    def __init__(self, prefix: str, help_texts: Mapping[str, str]) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[_LabelKey, float]] = {}
        self.prefix = prefix
        self._help = help_texts

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
