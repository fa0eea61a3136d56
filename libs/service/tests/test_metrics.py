# SPDX-License-Identifier: Apache-2.0
"""Metrics: thread-safe counters/gauges, Prometheus text exposition."""

from __future__ import annotations

import threading

from ironlink_service.metrics import Metrics


def test_counters_gauges_and_labels_render():
    m = Metrics("ironlink_test_", {"readings_received_total": "Readings received."})
    m.inc("readings_received_total", 3, source="mqtt")
    m.inc("readings_received_total", source="modbus")
    m.set("spool_depth_readings", 42)
    m.set("spool_oldest_age_seconds", 1.5)
    m.inc("readings_dropped_total", reason='we"ird\\')
    text = m.render()
    assert "# HELP ironlink_test_readings_received_total Readings received." in text
    assert "# TYPE ironlink_test_readings_received_total counter" in text
    assert 'ironlink_test_readings_received_total{source="mqtt"} 3' in text
    assert 'ironlink_test_readings_received_total{source="modbus"} 1' in text
    assert "# TYPE ironlink_test_spool_depth_readings gauge" in text
    assert "ironlink_test_spool_depth_readings 42" in text
    assert "ironlink_test_spool_oldest_age_seconds 1.5" in text
    assert 'reason="we\\"ird\\\\"' in text
    assert text.endswith("\n")
    assert m.total("readings_received_total") == 4
    assert m.get("readings_received_total", source="mqtt") == 3


def test_concurrent_increments_are_not_lost():
    m = Metrics("ironlink_test_", {"readings_received_total": "Readings received."})

    def work() -> None:
        for _ in range(10_000):
            m.inc("readings_accepted_total")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.get("readings_accepted_total") == 40_000
