# SPDX-License-Identifier: Apache-2.0
"""De-duplication of readings by ``message_id`` (``<spool_id>:<seq>``), in memory and on disk.

Two range sets per spool: ``durable`` (written to InfluxDB and recorded in the state db) and ``pending``
(in a flush that is being written). A reading is a duplicate if either holds its seq. The pipeline's
writer calls ``commit`` after InfluxDB accepted a flush: the flush's ranges go to SQLite (WAL) and into
``durable``; only then are the MQTT messages acknowledged, so after a crash everything unacknowledged is
redelivered and everything recorded was stored. The state db is bounded like memory (``max_spools`` spools
by last use, ``max_ranges`` per spool) and compacted when its row count outgrows the in-memory state.

Message ids that are not ``<spool_id>:<int>`` (migrated legacy ids) fall back to an LRU of recent ids.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from ironlink_ingest.ranges import RangeSet, to_ranges

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (spool_id TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_spool ON seen (spool_id);
"""
LEGACY_WINDOW = 100_000

Key = tuple[str, int]  # (spool_id, seq)


class Dedup:
    def __init__(
        self, path: Path | None, *, max_spools: int = 100_000, max_ranges_per_spool: int = 256
    ) -> None:
        self.max_spools = max_spools
        self.max_ranges = max_ranges_per_spool
        self._durable: OrderedDict[str, RangeSet] = OrderedDict()  # LRU by last use
        self._pending: dict[int, dict[str, RangeSet]] = {}  # flush id -> spool -> seqs
        self._legacy: OrderedDict[str, None] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self._rows = 0
        self.load_seconds = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._load()

    # -- queries -----------------------------------------------------------------------------------

    def is_duplicate(self, spool_id: str, seq: int) -> bool:
        durable = self._durable.get(spool_id)
        if durable is not None and seq in durable:
            return True
        for flush in self._pending.values():
            pending = flush.get(spool_id)
            if pending is not None and seq in pending:
                return True
        return False

    def is_duplicate_legacy(self, message_id: str) -> bool:
        return message_id in self._legacy

    @property
    def spools(self) -> int:
        return len(self._durable)

    # -- updates -----------------------------------------------------------------------------------

    def mark_pending(self, flush_id: int, spool_id: str, seqs: Iterable[int]) -> None:
        """Seqs about to be written by flush ``flush_id``: later copies count as duplicates already."""
        flush = self._pending.setdefault(flush_id, {})
        pending = flush.get(spool_id)
        if pending is None:
            pending = flush[spool_id] = RangeSet(1 << 30)
        pending.add(seqs)

    def mark_legacy(self, message_id: str) -> None:
        self._legacy[message_id] = None
        self._legacy.move_to_end(message_id)
        while len(self._legacy) > LEGACY_WINDOW:
            self._legacy.popitem(last=False)

    def commit(self, stored: dict[str, list[int]]) -> None:
        """Part of a flush is in InfluxDB: ``stored`` (spool -> seqs) becomes durable, on disk first."""
        rows = [(spool, lo, hi) for spool, seqs in stored.items() for lo, hi in to_ranges(seqs)]
        if rows:
            if self._db is not None:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._rows += len(rows)
            for spool, lo, hi in rows:
                self._durable_set(spool).add_range(lo, hi)
            self._evict()

    def release(self, flush_id: int) -> None:
        """Flush ``flush_id`` is over (stored, dead-lettered or abandoned): drop its pending marks."""
        self._pending.pop(flush_id, None)

    def _durable_set(self, spool: str) -> RangeSet:
        rs = self._durable.get(spool)
        if rs is None:
            rs = self._durable[spool] = RangeSet(self.max_ranges)
        else:
            self._durable.move_to_end(spool)
        return rs

    def _evict(self) -> None:
        while len(self._durable) > self.max_spools:
            self._durable.popitem(last=False)
        live = sum(len(rs) for rs in self._durable.values())
        if self._db is not None and self._rows > max(10_000, 4 * live):
            self.compact()

    # -- persistence -------------------------------------------------------------------------------

    def _load(self) -> None:
        assert self._db is not None
        t0 = time.monotonic()
        for spool, lo, hi in self._db.execute("SELECT spool_id, lo, hi FROM seen ORDER BY rowid"):
            self._durable_set(spool).add_range(lo, hi)
        self._evict()
        self.compact()
        self.load_seconds = time.monotonic() - t0

    def compact(self) -> None:
        """Rewrite the table from the in-memory durable state (drops merged and evicted ranges)."""
        if self._db is None:
            return
        rows = [(spool, lo, hi) for spool, rs in self._durable.items() for lo, hi in rs]
        self._db.execute("BEGIN")
        try:
            self._db.execute("DELETE FROM seen")
            self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._rows = len(rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
