# SPDX-License-Identifier: Apache-2.0
"""Dead-letter store bounds, fleet tracking and the ingest's Prometheus text."""

from __future__ import annotations

from pathlib import Path

from ironlink_ingest.deadletter import DeadLetterStore
from ironlink_ingest.fleet import Fleet
from ironlink_ingest.metrics import IngestMetrics


def test_dead_letters_are_bounded_oldest_first(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", max_bytes=10_000, max_payload_bytes=2_000)
    for i in range(30):
        store.add("spoofed" if i % 2 else "malformed", f"#{i}", "ironlink/A/B/C/telemetry", bytes(5_000))
    assert store.bytes <= 10_000 and store.rows < 30 and store.evicted == 30 - store.rows
    newest = next(store.list(1))
    assert newest.detail == "#29" and newest.payload_len == 5_000 and len(newest.payload) == 2_000
    assert set(store.counts()) == {"spoofed", "malformed"}
    store.close()
    reopened = DeadLetterStore(tmp_path / "dl.sqlite", max_bytes=10_000, max_payload_bytes=2_000)
    assert reopened.rows == store.rows and reopened.bytes == store.bytes


def test_fleet_is_bounded_by_last_seen() -> None:
    fleet = Fleet(max_gateways=2)
    fleet.status(("A", "S", "G1"), True, now=1)
    fleet.seen(("A", "S", "G2"), now=2)
    fleet.status(("A", "S", "G1"), False, now=3)  # G1 is the most recent now
    fleet.seen(("A", "S", "G3"), now=4)
    snap = fleet.snapshot()
    assert set(snap) == {("A", "S", "G1"), ("A", "S", "G3")}
    assert snap[("A", "S", "G1")].online is False and fleet.online_count() == 1


def test_render() -> None:
    m = IngestMetrics(Fleet())
    m.inc("rejected_total", reason="spoofed")
    m.inc("readings_written_total", 500)
    m.set("broker_connected", 1)
    m.observe("batch_latency_seconds", 0.02)
    m.observe("batch_latency_seconds", 7)
    m.fleet.status(("ACME", "PLANT1", "GW01"), True, now=1_700_000_000.5)
    text = m.render()
    assert "# TYPE ironlink_ingest_rejected_total counter" in text
    assert 'ironlink_ingest_rejected_total{reason="spoofed"} 1' in text
    assert "ironlink_ingest_readings_written_total 500" in text
    assert "# TYPE ironlink_ingest_batch_latency_seconds histogram" in text
    assert 'ironlink_ingest_batch_latency_seconds_bucket{le="0.025"} 1' in text
    assert 'ironlink_ingest_batch_latency_seconds_bucket{le="+Inf"} 2' in text
    assert "ironlink_ingest_batch_latency_seconds_count 2" in text
    assert "ironlink_ingest_gateways_online 1" in text
    assert (
        'ironlink_ingest_gateway_last_seen_timestamp_seconds{client_id="ACME",site_id="PLANT1",gateway_id="GW01"}'
        " 1700000000.5"
    ) in text
    assert "ironlink_agent_" not in text
