# SPDX-License-Identifier: Apache-2.0
"""Bounded dead-letter store (SQLite): rejected batches with reason, detail, topic and payload.

SQLite rather than JSONL: payloads are binary batches, eviction of the oldest rows is one DELETE instead
of file rotation, and ``ironlink-ingest dead-letters`` can list and export them while the worker runs (WAL).
The store is bounded by the total stored payload bytes; each payload is truncated to
``max_payload_bytes`` (its full length is kept in ``payload_len``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload_len INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""
MAX_DETAIL = 2000


@dataclass(frozen=True)
class DeadLetter:
    id: int
    ts_ms: int
    reason: str
    detail: str
    topic: str
    payload_len: int
    payload: bytes


class DeadLetterStore:
    def __init__(self, path: Path, *, max_bytes: int, max_payload_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_payload_bytes = max_payload_bytes
        self.evicted = 0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM dead_letters"
        ).fetchone()
        self.rows, self.bytes = int(row[0]), int(row[1])

    def add(self, reason: str, detail: str, topic: str, payload: bytes) -> None:
        stored = bytes(payload[: self.max_payload_bytes])
        self._db.execute(
            "INSERT INTO dead_letters (ts_ms, reason, detail, topic, payload_len, payload)"
            " VALUES (?,?,?,?,?,?)",
            (int(time.time() * 1000), reason, detail[:MAX_DETAIL], topic[:1024], len(payload), stored),
        )
        self.rows += 1
        self.bytes += len(stored)
        if self.bytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        """Delete the oldest rows until the store is at most 90 % full (not one DELETE per add)."""
        target = self.max_bytes * 9 // 10
        excess = self.bytes - target
        cut, freed, n = None, 0, 0
        for row_id, size in self._db.execute("SELECT id, length(payload) FROM dead_letters ORDER BY id"):
            cut, freed, n = row_id, freed + size, n + 1
            if freed >= excess:
                break
        if cut is not None:
            self._db.execute("DELETE FROM dead_letters WHERE id <= ?", (cut,))
            self.rows -= n
            self.bytes -= freed
            self.evicted += n

    def list(self, limit: int = 100, reason: str | None = None) -> Iterator[DeadLetter]:
        """Newest first."""
        sql = "SELECT id, ts_ms, reason, detail, topic, payload_len, payload FROM dead_letters"
        args: tuple[object, ...] = ()
        if reason is not None:
            sql += " WHERE reason = ?"
            args = (reason,)
        for row in self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)):
            yield DeadLetter(*row)

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason").fetchall())

    def close(self) -> None:
        self._db.close()
