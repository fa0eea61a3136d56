# SPDX-License-Identifier: Apache-2.0
"""Spool: group commit, acks after commit, bounds and policies, low disk, SQLITE_FULL, quarantine."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from ironlink_agent.metrics import AgentMetrics, Metrics
from ironlink_agent.spool import Spool, quarantine_if_corrupt
from ironlink_agent.status import export, spool_stats
from ironlink_contract.model import Reading, Rejected
from testsupport.polling import wait_until

BASE_TS = 1_763_800_000_000


def readings(n: int, start: int = 0) -> list[Reading]:
    return [
        Reading("M1", BASE_TS + (start + i) * 100, {"temp": 20.0 + (start + i) % 7, "run": True})
        for i in range(n)
    ]


def make(tmp_path: Path, **kw) -> tuple[Spool, Metrics]:
    metrics = AgentMetrics()
    kw.setdefault("min_free_bytes", 0)
    spool = Spool(tmp_path / "spool.db", metrics, **kw)
    spool.open()
    return spool, metrics


def test_ack_runs_after_commit_and_rows_survive_reopen(tmp_path):
    spool, metrics = make(tmp_path)
    seen = []

    def ack() -> None:
        # Another connection sees the row: the commit containing it returned before the ack.
        conn = sqlite3.connect(tmp_path / "spool.db")
        seen.append(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        conn.close()

    spool.submit(readings(5), ack)
    assert spool.wait_idle(5)
    assert seen == [5]
    assert metrics.get("readings_accepted_total") == 5
    spool_id = spool.spool_id
    spool.close()
    again, _ = make(tmp_path)
    assert again.spool_id == spool_id
    assert again.snapshot().depth == 5
    assert [s for s, _ in again.read_after(0, 10, 10**6)] == [1, 2, 3, 4, 5]
    again.close()


def test_group_commit_many_producers(tmp_path):
    spool, _metrics = make(tmp_path)
    acks = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(500):
            spool.submit(readings(1, k * 1000 + i), lambda: (lock.acquire(), acks.append(1), lock.release()))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spool.wait_idle(10)
    assert len(acks) == 2000
    assert spool.snapshot().depth == 2000
    assert spool.last_seq == 2000
    spool.close()


def test_seq_never_reused_after_the_spool_empties(tmp_path):
    """message_id = spool_id:seq must stay unique even when every row was delivered and deleted."""
    spool, _ = make(tmp_path)
    spool.submit(readings(3))
    assert spool.wait_idle(5)
    spool.delete_range(1, 3)
    assert spool.wait_idle(5)
    assert spool.snapshot().depth == 0
    spool.close()
    again, _ = make(tmp_path)
    again.submit(readings(1))
    assert again.wait_idle(5)
    assert again.read_after(0, 10, 10**6)[0][0] == 4
    again.close()


def test_delete_range_updates_running_totals(tmp_path):
    spool, _ = make(tmp_path)
    spool.submit(readings(10))
    assert spool.wait_idle(5)
    before = spool.snapshot()
    spool.delete_range(1, 4)
    spool.delete_range(1, 4)  # idempotent: a redelivered PUBACK must not corrupt the totals
    assert spool.wait_idle(5)
    after = spool.snapshot()
    assert after.depth == 6
    conn = sqlite3.connect(tmp_path / "spool.db")
    real = conn.execute("SELECT SUM(length(data)) + 16 * COUNT(*) FROM readings").fetchone()[0]
    conn.close()
    assert after.bytes == real < before.bytes
    spool.close()


def test_newest_and_bounded_reads(tmp_path):
    spool, _ = make(tmp_path)
    spool.submit(readings(50))
    assert spool.wait_idle(5)
    assert [s for s, _ in spool.read_newest(50, 5, 10**6)] == [46, 47, 48, 49, 50]
    assert [s for s, _ in spool.read_after(10, 5, 10**6, upto=12)] == [11, 12]
    one_row = len(spool.read_after(0, 1, 10**6)[0][1])
    assert len(spool.read_after(0, 50, one_row * 3)) == 3
    spool.close()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_max_bytes_policy_is_counted(tmp_path, policy):
    spool, metrics = make(tmp_path, max_bytes=20_000, full_policy=policy)
    for i in range(20):
        spool.submit(readings(50, i * 50))
        assert spool.wait_idle(5)
    snap = spool.snapshot()
    assert snap.bytes <= 20_000
    dropped = metrics.get("readings_dropped_total", reason="spool_full")
    assert dropped > 0
    assert snap.depth + dropped == 1000
    seqs = [s for s, _ in spool.read_after(0, 10_000, 10**9)]
    if policy == "drop_oldest":
        assert seqs[-1] == spool.last_seq == 1000 - 0  # newest kept
        assert seqs[0] > 1
    else:
        assert seqs[0] == 1  # oldest kept, newest refused
    spool.close()


def test_low_disk_guard_sheds_and_refuses(tmp_path, monkeypatch, caplog):
    spool, metrics = make(tmp_path, min_free_bytes=10**6)
    spool.submit(readings(100))
    assert spool.wait_idle(5)
    monkeypatch.setattr(spool, "_free_bytes", lambda: 1000)  # the filesystem is nearly full
    with caplog.at_level(logging.WARNING):
        spool.submit(readings(10, 100))
        assert spool.wait_idle(5)
    assert metrics.get("readings_dropped_total", reason="low_disk") >= 10
    assert spool.snapshot().depth <= 100  # the spool did not grow
    assert any(getattr(r, "event", "") == "spool_low_disk" for r in caplog.records)
    spool.close()


def test_sqlite_full_keeps_readings_queued_and_retries(tmp_path, caplog):
    """SQLITE_FULL (here via max_page_count) never kills the writer; acks wait until the retry commits."""
    spool, metrics = make(tmp_path)
    assert spool._conn is not None
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count={pages}")
    acks = []
    with caplog.at_level(logging.ERROR):
        spool.submit(readings(2000), lambda: acks.append(1))
        wait_until(
            lambda: metrics.get("spool_commit_errors_total") >= 2, 5, "two failed commits", interval=0.01
        )
    assert acks == []
    assert spool.snapshot().commit_failing
    assert spool.writer_alive()
    assert any("full" in str(getattr(r, "error", "")) for r in caplog.records)
    spool._conn.execute("PRAGMA max_page_count=1073741823")  # space is back
    assert spool.wait_idle(10)
    assert acks == [1]
    assert spool.snapshot().depth == 2000
    assert not spool.snapshot().commit_failing
    spool.close()


def test_memory_bound_drops_unacked_readings_only(tmp_path):
    spool, metrics = make(tmp_path, max_pending_readings=100)
    assert spool._conn is not None
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count={pages}")
    for i in range(5):
        spool.submit(readings(50, i * 50))  # Modbus-style: no upstream ack to hold back
    acked = []
    spool.submit(readings(50, 1000), lambda: acked.append(1))  # MQTT-style: always queued
    time.sleep(0.3)
    assert metrics.get("readings_dropped_total", reason="buffer_full") >= 100
    spool._conn.execute("PRAGMA max_page_count=1073741823")
    assert spool.wait_idle(10)
    assert acked == [1]
    spool.close()


def test_dead_letters_are_bounded_and_exported(tmp_path):
    spool, metrics = make(tmp_path, dead_letter_max_rows=3)
    for i in range(5):
        spool.dead_letter(
            Rejected.of("out_of_bounds", f"metrics.temp: {i}", "mqtt:plant/M1/temp", b"\xff" * i)
        )
    spool.submit(readings(2))
    assert spool.wait_idle(5)
    assert metrics.get("readings_dead_lettered_total", reason="out_of_bounds") == 5
    assert metrics.get("dead_letters_evicted_total") == 2
    stats = spool_stats(tmp_path / "spool.db")  # read-only while the writer runs
    assert stats["dead_letters"] == 3
    assert stats["readings"] == 2
    out = io.StringIO()
    assert export(tmp_path / "spool.db", "all", out) == 5
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["kind"] for d in docs] == ["reading", "reading", "dead_letter", "dead_letter", "dead_letter"]
    assert docs[0]["message_id"] == f"{spool.spool_id}:1"
    assert docs[-1]["detail"] == "metrics.temp: 4"
    assert docs[-1]["raw_b64"] is not None
    spool.close()


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b""])
def test_corrupt_spool_is_quarantined(tmp_path, content, caplog):
    path = tmp_path / "spool.db"
    if content:
        path.write_bytes(content)
        (tmp_path / "spool.db-wal").write_bytes(b"junk")
    else:  # a real database with a damaged page
        spool, _ = make(tmp_path)
        spool.submit(readings(2000))
        assert spool.wait_idle(5)
        spool.close()
        data = bytearray(path.read_bytes())
        data[4096 * 2 : 4096 * 2 + 200] = b"\x07" * 200
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR):
        spool, metrics = make(tmp_path)
    assert spool.quarantined_to is not None
    assert spool.quarantined_to.name.startswith("spool.db.quarantine-")
    assert spool.quarantined_to.exists()
    if content:
        assert Path(f"{spool.quarantined_to}-wal").exists()
    assert metrics.get("spool_quarantined_total") == 1
    assert any(getattr(r, "event", "") == "spool_quarantined" for r in caplog.records)
    assert spool.snapshot().depth == 0
    spool.submit(readings(1))
    assert spool.wait_idle(5)
    spool.close()


def test_healthy_spool_is_not_quarantined(tmp_path):
    spool, _ = make(tmp_path)
    spool.submit(readings(3))
    assert spool.wait_idle(5)
    spool.close()
    assert quarantine_if_corrupt(tmp_path / "spool.db") is None


def test_redelivered_message_already_spooled_is_acked_not_spooled_again(tmp_path):
    """Crash between commit and the local PUBACK: the broker redelivers (DUP); no second copy, new ids."""
    spool, metrics = make(tmp_path)
    acks = []
    spool.submit(readings(3), lambda: acks.append("first"), key=b"k1")
    assert spool.wait_idle(5)
    spool.submit(readings(3), lambda: acks.append("dup"), key=b"k1", redelivered=True)
    spool.submit(readings(2), lambda: acks.append("new-dup"), key=b"k2", redelivered=True)  # never spooled
    spool.submit(readings(1), lambda: acks.append("same-key-not-dup"), key=b"k1")
    assert spool.wait_idle(5)
    assert acks == ["first", "dup", "new-dup", "same-key-not-dup"]
    assert spool.snapshot().depth == 3 + 2 + 1
    assert metrics.get("redelivered_readings_skipped_total") == 3
    spool.close()
