# SPDX-License-Identifier: Apache-2.0
"""Durable spool: SQLite in WAL mode with ``synchronous=FULL``, group-committed by one writer thread.

Why SQLite rather than an append-only segment log: the uplink deletes rows out of order (newest batch
first after a reconnect, backlog oldest first, live rows in between) and drop_oldest evicts from the
head while the tail grows. A segment log needs its own index, compaction and crash-recovery code for
that; SQLite gives atomic multi-row commits, a B-tree keyed by ``seq``, page reuse after deletes,
crash recovery that is tested on billions of devices, ``PRAGMA quick_check`` for integrity and
concurrent read-only access (``spool stats``/``export`` while the agent runs) for free. Group commit
amortises the one fsync per transaction over everything queued, so throughput is bounded by the
number of fsyncs per second times the batch size, not by per-row fsyncs.

Threading: only the writer thread writes (inserts, deletes after PUBACK, dead letters, eviction), so
there is never lock contention between writers. Readers (the uplink) use their own connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlink_contract.model import Reading, Rejected
from ironlink_contract.wire import pack_reading, unpack_reading
from ironlink_service.logs import RateLimitedLog

from .metrics import Metrics

if TYPE_CHECKING:
    from .config import SpoolConfig

log = logging.getLogger(__name__)

ROW_OVERHEAD = 16
"""Approximate per-row B-tree cost added to ``len(data)`` so ``max_bytes`` tracks the file size."""

RAW_LIMIT = 64 * 1024
GROUP_WAIT_S = 0.002
"""Group-commit gathering: when the writer wakes for a small group it waits this long for more before
committing, so a steady trickle (200 readings/s) shares fsyncs, ack wake-ups and uplink wake-ups. Measured
on the loaded 2-core box at 200 readings/s (README, Benchmark): 0 / 2 / 5 ms gave 11.6 / 10.7 / 9.3 CPU-s
per 10k readings and p99 55 / 60 / 63 ms; 2 ms keeps most of the latency budget."""
GROUP_WAIT_MAX_READINGS = 256
"""Groups at least this large are committed at once (they formed during the previous fsync)."""
DELETE_LINGER_S = 0.5
"""Deletes of delivered rows wait up to this long to ride in the next insert transaction instead of paying
their own commit. Deletes alone are committed with ``synchronous=NORMAL`` (no fsync): losing one to a power
cut only re-sends rows the cloud already has, under the same message ids, which it de-duplicates."""
DELETE_FLUSH_RANGES = 8
"""...but no more than this many delivered batches wait: it keeps the re-sent rows after a crash within the
uplink's usual bound (``max_inflight`` x ``batch_max_readings``) while a backlog drains with no inserts."""
REDELIVERY_KEYS_MAX = 20_000
"""Keys of recently spooled upstream messages kept to recognise redeliveries. Only messages un-acked at a
crash are redelivered (at most the input's receive maximum), and must stay below the 65535 MQTT packet
ids so a key (topic, payload, packet id) cannot recur inside the window."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readings (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS redelivery_keys (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL, source TEXT NOT NULL, raw BLOB NOT NULL);
"""

Ack = Callable[[], None]


class SpoolError(Exception):
    """The spool cannot be opened at all (e.g. its directory is not writable)."""


@dataclass(slots=True)
class _Batch:
    readings: list[Reading]
    ack: Ack | None
    key: bytes | None = None  # identifies the upstream message (see ``submit``)
    redelivered: bool = False


@dataclass(slots=True)
class _DeadLetter:
    rejected: Rejected
    ts_ms: int
    ack: Ack | None


@dataclass(slots=True)
class _Txn:
    """Running totals inside one transaction; copied to the spool only after COMMIT returned."""

    depth: int
    nbytes: int
    dl_rows: int
    evicted: int = 0
    dl_evicted: int = 0
    redelivered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpoolSnapshot:
    depth: int
    bytes: int
    pending: int
    oldest_age_s: float | None
    last_seq: int
    dead_letters: int
    commit_failing: bool
    writer_heartbeat_age_s: float


def integrity_problem(path: Path) -> str | None:
    """None when ``path`` is a sound SQLite database (``PRAGMA quick_check``), else what is wrong."""
    with open(path, "rb") as fh:
        header = fh.read(16)
    if header and header != b"SQLite format 3\x00":
        # Not a database: do not let SQLite open it, it could discard the -wal kept for forensics.
        return "file is not a database (bad header)"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])


def quarantine_if_corrupt(path: Path, metrics: Metrics | None = None) -> Path | None:
    """Move a spool that fails ``integrity_problem`` aside, with its -wal/-shm.

    Returns the quarantine path, or None when the spool is fine or does not exist yet. The file is
    kept for forensics rather than deleted: it may still hold readings recoverable by hand.
    """
    if not path.exists():
        return None
    problem = integrity_problem(path)
    if problem is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.quarantine-{stamp}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    log.error(
        "spool failed its integrity check and was quarantined; starting a fresh spool",
        extra={
            "event": "spool_quarantined",
            "path": str(path),
            "quarantined_to": str(target),
            "error": problem,
        },
    )
    if metrics is not None:
        metrics.inc("spool_quarantined_total")
    return target


class Spool:
    """The agent's durable queue. ``submit`` from any thread; ``ack`` runs after the commit returned."""

    def __init__(
        self,
        path: Path,
        metrics: Metrics,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        full_policy: str = "drop_oldest",
        commit_window_ms: int = 1000,
        min_free_bytes: int = 64 * 1024 * 1024,
        dead_letter_max_rows: int = 10_000,
        max_pending_readings: int = 100_000,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._drop_oldest = full_policy != "drop_newest"
        self._window_s = commit_window_ms / 1000
        self._min_free = min_free_bytes
        self._dl_max = dead_letter_max_rows
        self._max_pending = max_pending_readings
        self.on_commit = on_commit
        self._cond = threading.Condition()
        self._queue: deque[_Batch] = deque()
        self._dead: list[_DeadLetter] = []
        self._deletes: list[tuple[int, int]] = []
        self._pending = 0
        self._stopping = False
        self._busy = False
        self._writer_waiting = False
        self._busy_deletes = False  # the transaction in progress holds deletes
        self._flush_deletes = False
        self._deletes_since = 0.0
        self._keys_added = 0
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._ratelog = RateLimitedLog(log)
        self.spool_id = ""
        self.quarantined_to: Path | None = None
        self._depth = 0
        self._bytes = 0
        self._dl_rows = 0
        self._next_seq = 1
        self._last_seq = 0
        self._oldest_ts: int | None = None
        self._oldest_stale = False
        self._commit_failing = False
        self._heartbeat = time.monotonic()

    @classmethod
    def from_config(cls, cfg: SpoolConfig, metrics: Metrics, **kwargs: Any) -> Spool:
        """Build from a ``config.SpoolConfig``."""
        return cls(
            cfg.path,
            metrics,
            max_bytes=cfg.max_bytes,
            full_policy=cfg.full_policy,
            commit_window_ms=cfg.commit_window_ms,
            min_free_bytes=cfg.min_free_bytes,
            dead_letter_max_rows=cfg.dead_letter_max_rows,
            **kwargs,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Check integrity (quarantining a corrupt file), create the schema, start the writer thread."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.path.parent}: {exc}") from exc
        self.quarantined_to = quarantine_if_corrupt(self.path, self._metrics)
        self._metrics.inc("spool_quarantined_total", 0)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        row = conn.execute("SELECT value FROM meta WHERE key='spool_id'").fetchone()
        if row is None:
            self.spool_id = secrets.token_hex(8)
            conn.execute("INSERT INTO meta(key, value) VALUES ('spool_id', ?)", (self.spool_id,))
        else:
            self.spool_id = row[0]
        hwm = conn.execute("SELECT value FROM meta WHERE key='seq_hwm'").fetchone()
        count, total, max_seq = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(data)), 0), COALESCE(MAX(seq), 0) FROM readings"
        ).fetchone()
        self._depth = count
        self._bytes = total + ROW_OVERHEAD * count
        self._last_seq = max(max_seq, int(hwm[0]) if hwm else 0)
        self._next_seq = self._last_seq + 1
        self._dl_rows = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        self._conn = conn
        self._refresh_oldest()
        self._publish_gauges()
        self._stopping = False
        self._thread = threading.Thread(target=self._writer_main, name="spool-writer", daemon=True)
        self._thread.start()
        log.info(
            "spool open",
            extra={"event": "spool_open", "path": str(self.path), "spool_id": self.spool_id, "depth": count},
        )

    def close(self, timeout_s: float = 10.0) -> bool:
        """Commit everything queued, stop the writer, close connections. True when fully drained."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        drained = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            drained = not self._thread.is_alive()
            if not drained:
                log.error("spool writer did not finish in time", extra={"event": "spool_close_timeout"})
        if drained and self._conn is not None:
            self._conn.close()
            self._conn = None
        with self._cond:
            readers, self._readers = self._readers, []
        for reader in readers:  # opened by other threads; nobody reads once the agent is closing
            with contextlib.suppress(sqlite3.Error):
                reader.close()
        self._local = threading.local()
        return drained

    # -- producers -------------------------------------------------------------------------------

    def submit(
        self,
        readings: list[Reading],
        ack: Ack | None = None,
        *,
        key: bytes | None = None,
        redelivered: bool = False,
    ) -> None:
        """Queue readings for the next group commit. Never blocks.

        ``key`` identifies the upstream message; it is stored in the same transaction as the readings.
        A message the local broker redelivers (``redelivered``: MQTT DUP flag) whose key is already
        stored was committed before a crash that lost only its ack: it is acked, not spooled twice
        (which would give its readings new message ids the cloud could not de-duplicate).

        Memory is bounded by ``max_pending_readings`` for readings without an upstream ack (Modbus);
        beyond it they are dropped and counted. Readings with an ack (MQTT) are always queued: their
        number is bounded upstream, because the local broker stops sending once its receive-maximum
        window of un-acked messages is full — that is the back-pressure path.
        """
        with self._cond:
            if ack is None and self._pending >= self._max_pending:
                dropped = True
            else:
                dropped = False
                self._queue.append(_Batch(readings, ack, key, redelivered))
                self._pending += len(readings)
                if self._writer_waiting:
                    self._cond.notify_all()  # all: a wait_idle caller may be waiting on it too
        if dropped:
            self._metrics.inc("readings_dropped_total", len(readings), reason="buffer_full")
            self._ratelog.log(
                logging.WARNING,
                "spool_buffer_full",
                "memory buffer full while the spool cannot commit; dropping new readings",
                count=len(readings),
            )

    def dead_letter(self, rejected: Rejected, ack: Ack | None = None) -> None:
        with self._cond:
            self._dead.append(_DeadLetter(rejected, int(time.time() * 1000), ack))
            self._cond.notify_all()

    def delete_range(self, lo: int, hi: int) -> None:
        """Remove delivered rows ``lo..hi`` (inclusive) in the next commit (within ``DELETE_LINGER_S``, at
        once after ``flush_deletes`` or when ``DELETE_FLUSH_RANGES`` are queued). Idempotent."""
        with self._cond:
            if not self._deletes:
                self._deletes_since = time.monotonic()
            self._deletes.append((lo, hi))
            if len(self._deletes) >= DELETE_FLUSH_RANGES and self._writer_waiting:
                self._flush_deletes = True
                self._cond.notify_all()

    def flush_deletes(self, timeout_s: float = 0.0) -> bool:
        """Commit queued deletes now rather than after ``DELETE_LINGER_S``, waiting up to ``timeout_s``
        for them (e.g. before re-reading the spool after a reconnect, so delivered rows are not sent
        again). True when none are left queued."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self._deletes:
                self._flush_deletes = True
                self._cond.notify_all()
            while self._deletes or self._busy_deletes:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.writer_alive():
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    # -- readers (uplink thread / asyncio loop) --------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._cond:
                self._readers.append(conn)
        return conn

    def read_after(
        self, after: int, limit: int, max_bytes: int, upto: int | None = None
    ) -> list[tuple[int, bytes]]:
        """Rows with ``after < seq <= upto``, ascending, at most ``limit`` rows / about ``max_bytes``."""
        if upto is None:
            cur = self._reader().execute(
                "SELECT seq, data FROM readings WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            )
        else:
            cur = self._reader().execute(
                "SELECT seq, data FROM readings WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after, upto, limit),
            )
        return _cap_bytes(cur, max_bytes)

    def read_newest(self, upto: int, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The newest rows with ``seq <= upto``, returned ascending."""
        cur = self._reader().execute(
            "SELECT seq, data FROM readings WHERE seq <= ? ORDER BY seq DESC LIMIT ?", (upto, limit)
        )
        rows = _cap_bytes(cur, max_bytes)
        rows.reverse()
        return rows

    def avg_row_bytes(self) -> int:
        """Mean stored row size (running totals); the uplink sizes batches with it without reading."""
        return max(1, self._bytes // self._depth) if self._depth else 64

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def snapshot(self) -> SpoolSnapshot:
        oldest = self._oldest_ts
        return SpoolSnapshot(
            depth=self._depth,
            bytes=self._bytes,
            pending=self._pending,
            oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest / 1000),
            last_seq=self._last_seq,
            dead_letters=self._dl_rows,
            commit_failing=self._commit_failing,
            writer_heartbeat_age_s=time.monotonic() - self._heartbeat,
        )

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until everything queued so far is committed (and its acks sent); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_deletes = True
            self._cond.notify_all()
            while self._pending or self._queue or self._dead or self._deletes or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.writer_alive():
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def writer_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- writer thread ---------------------------------------------------------------------------

    def _wait_for_work(self) -> None:
        """Block (lock held) until there is something to commit, or about a second passed (gauge tick)."""
        while not (self._queue or self._dead or self._stopping or (self._deletes and self._flush_deletes)):
            timeout = 1.0
            if self._deletes:
                timeout = self._deletes_since + DELETE_LINGER_S - time.monotonic()
                if timeout <= 0:
                    return
            self._heartbeat = time.monotonic()
            self._writer_waiting = True
            try:
                woke = self._cond.wait(min(timeout, 1.0))
            finally:
                self._writer_waiting = False
            if not woke and not self._deletes:
                return

    def _writer_main(self) -> None:
        backoff = 0.05
        last_gauges = 0.0
        while True:
            with self._cond:
                self._wait_for_work()
                gather = bool(self._queue) and not self._stopping and self._pending < GROUP_WAIT_MAX_READINGS
            if gather and GROUP_WAIT_S > 0:
                time.sleep(GROUP_WAIT_S)  # let a small group grow; producers do not wake us meanwhile
            with self._cond:
                batches = list(self._queue)
                self._queue.clear()
                dead, self._dead = self._dead, []
                deletes, self._deletes = self._deletes, []
                self._flush_deletes = False
                stopping = self._stopping
                self._busy = bool(batches or dead or deletes)
                self._busy_deletes = bool(deletes)
            self._heartbeat = time.monotonic()
            if batches or dead or deletes:
                try:
                    self._commit(batches, dead, deletes)
                except (sqlite3.Error, OSError) as exc:
                    self._on_commit_error(exc, batches, dead, deletes)
                    if stopping:
                        log.error(
                            "spool closing with uncommitted readings",
                            extra={"event": "spool_close_uncommitted", "pending": self._pending},
                        )
                        return
                    time.sleep(min(backoff, self._window_s or 0.05))
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.05
            with self._cond:
                self._busy = self._busy_deletes = False
                self._cond.notify_all()
            now = time.monotonic()
            if now - last_gauges >= 1.0:
                last_gauges = now
                if self._oldest_stale:
                    with contextlib.suppress(sqlite3.Error):
                        self._refresh_oldest()
                self._publish_gauges()
            if stopping and not (self._queue or self._dead or self._deletes):
                return

    def _on_commit_error(
        self,
        exc: Exception,
        batches: list[_Batch],
        dead: list[_DeadLetter],
        deletes: list[tuple[int, int]],
    ) -> None:
        """Keep everything queued (ordered before newer work) and retry; never raise out of the writer."""
        assert self._conn is not None
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        self._commit_failing = True
        self._metrics.inc("spool_commit_errors_total")
        self._ratelog.log(
            logging.ERROR,
            "spool_commit_failed",
            "spool commit failed; readings stay queued in memory and the commit is retried",
            error=str(exc),
            pending=self._pending,
        )
        with self._cond:
            self._queue.extendleft(reversed(batches))
            self._dead[:0] = dead
            self._deletes[:0] = deletes
            # Enforce the memory bound on readings nobody upstream will redeliver (no ack).
            excess = self._pending - self._max_pending
            if excess > 0:
                kept: deque[_Batch] = deque()
                dropped = 0
                for batch in self._queue:
                    if excess > 0 and batch.ack is None:
                        excess -= len(batch.readings)
                        dropped += len(batch.readings)
                    else:
                        kept.append(batch)
                self._queue = kept
                self._pending -= dropped
                if dropped:
                    self._metrics.inc("readings_dropped_total", dropped, reason="buffer_full")

    def _free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _commit(self, batches: list[_Batch], dead: list[_DeadLetter], deletes: list[tuple[int, int]]) -> None:
        """One transaction: delivered-row deletes, space policy, inserts, dead letters; then acks."""
        conn = self._conn
        assert conn is not None
        n_in = sum(len(b.readings) for b in batches)
        t = _Txn(self._depth, self._bytes, self._dl_rows)
        if not (batches or dead):
            self._commit_deletes(conn, t, deletes)
            return
        conn.execute("BEGIN IMMEDIATE")
        fresh = self._skip_redelivered(conn, t, batches)
        packed = [pack_reading(r) for b in fresh for r in b.readings]
        self._delete_rows(conn, t, deletes)
        if packed:
            packed = self._make_room(conn, t, packed)
            first = self._next_seq
            conn.executemany(
                "INSERT INTO readings(seq, data) VALUES (?, ?)",
                zip(range(first, first + len(packed)), packed, strict=True),
            )
            t.depth += len(packed)
            t.nbytes += sum(len(p) for p in packed) + ROW_OVERHEAD * len(packed)
        if dead:
            self._insert_dead(conn, t, dead)
        last_seq = self._next_seq + len(packed) - 1
        if deletes or t.evicted:
            # MAX(seq) is the high-water mark unless the newest rows were deleted: record it then only
            # (one page less per commit in the common insert-only transaction).
            self._write_hwm(conn, last_seq)
        conn.execute("COMMIT")
        # Durable from here on: publish the new state, then release upstream acks.
        self._commit_failing = False
        if packed:
            self._next_seq = last_seq + 1
            self._last_seq = last_seq
        self._depth, self._bytes, self._dl_rows = t.depth, t.nbytes, t.dl_rows
        self._update_oldest(t, fresh, bool(deletes))
        with self._cond:
            self._pending -= n_in
        self._publish_gauges()
        self._count(t, len(packed), dead)
        for ack in [b.ack for b in batches] + [d.ack for d in dead]:
            if ack is not None:
                try:
                    ack()
                except Exception:
                    log.exception("upstream ack failed", extra={"event": "ack_failed"})
        if packed and self.on_commit is not None:
            self.on_commit(self._last_seq)

    def _commit_deletes(self, conn: sqlite3.Connection, t: _Txn, deletes: list[tuple[int, int]]) -> None:
        """Deletes alone: no fsync (``synchronous=NORMAL``); the next FULL commit makes them durable."""
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._delete_rows(conn, t, deletes)
            self._write_hwm(conn, self._last_seq)
            conn.execute("COMMIT")
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        self._commit_failing = False
        self._depth, self._bytes = t.depth, t.nbytes
        self._update_oldest(t, [], True)
        self._publish_gauges()

    @staticmethod
    def _write_hwm(conn: sqlite3.Connection, last_seq: int) -> None:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq_hwm', ?)", (str(last_seq),))

    def _delete_rows(self, conn: sqlite3.Connection, t: _Txn, deletes: list[tuple[int, int]]) -> None:
        for lo, hi in deletes:
            rows = conn.execute(
                "DELETE FROM readings WHERE seq BETWEEN ? AND ? RETURNING length(data)", (lo, hi)
            )
            for (length,) in rows:
                t.depth -= 1
                t.nbytes -= length + ROW_OVERHEAD

    def _update_oldest(self, t: _Txn, fresh: list[_Batch], deleted: bool) -> None:
        """Keep ``_oldest_ts`` (the age gauge) right without a query per commit."""
        if t.depth == 0:
            self._oldest_ts = None
        elif deleted or t.evicted:
            self._oldest_stale = True  # re-read on the next gauge tick (~1 s); until then it errs older
        elif self._oldest_ts is None and fresh:
            self._oldest_ts = min(r.ts for b in fresh for r in b.readings)

    def _skip_redelivered(self, conn: sqlite3.Connection, t: _Txn, batches: list[_Batch]) -> list[_Batch]:
        """Drop redelivered messages already spooled; record the keys of the others."""
        fresh = []
        for b in batches:
            if (
                b.key is not None
                and b.redelivered
                and conn.execute("SELECT 1 FROM redelivery_keys WHERE key = ?", (b.key,)).fetchone()
            ):
                t.redelivered += len(b.readings)
                continue
            fresh.append(b)
        keys = [(b.key,) for b in fresh if b.key is not None]
        if keys:
            conn.executemany("INSERT OR IGNORE INTO redelivery_keys(key) VALUES (?)", keys)
            self._keys_added += len(keys)
            if self._keys_added >= 1000:  # prune now and then, not per commit
                self._keys_added = 0
                conn.execute(
                    "DELETE FROM redelivery_keys WHERE id <= (SELECT MAX(id) FROM redelivery_keys) - ?",
                    (REDELIVERY_KEYS_MAX,),
                )
        return fresh

    def _make_room(self, conn: sqlite3.Connection, t: _Txn, packed: list[bytes]) -> list[bytes]:
        """Apply ``max_bytes``, the low-disk guard and ``full_policy``; return the rows to insert."""
        new_bytes = sum(len(p) for p in packed) + ROW_OVERHEAD * len(packed)
        low_disk = self._free_bytes() < self._min_free
        reason = "low_disk" if low_disk else "spool_full"
        # Space to make: the overshoot over max_bytes; on low disk at least what we are about to add, so
        # the file stops growing (SQLite reuses the pages freed by the deletes).
        need = max(t.nbytes + new_bytes - self._max_bytes, new_bytes if low_disk else 0)
        if need > 0 and self._drop_oldest:
            freed, removed = self._evict_oldest(conn, need, t.depth, t.nbytes)
            t.depth -= removed
            t.nbytes -= freed
            t.evicted += removed
            need -= freed
            if removed:
                t.dropped[reason] = t.dropped.get(reason, 0) + removed
        if need <= 0:
            return packed
        # Still short (drop_newest, or nothing old left): refuse incoming readings, the oldest of them
        # under drop_oldest, the newest under drop_newest.
        refused = 0
        while refused < len(packed) and need > 0:
            idx = refused if self._drop_oldest else len(packed) - 1 - refused
            need -= len(packed[idx]) + ROW_OVERHEAD
            refused += 1
        t.dropped[reason] = t.dropped.get(reason, 0) + refused
        return packed[refused:] if self._drop_oldest else packed[: len(packed) - refused]

    def _insert_dead(self, conn: sqlite3.Connection, t: _Txn, dead: list[_DeadLetter]) -> None:
        conn.executemany(
            "INSERT INTO dead_letters(ts_ms, reason, detail, source, raw) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    d.ts_ms,
                    d.rejected.reason,
                    d.rejected.detail,
                    d.rejected.source,
                    bytes(d.rejected.raw[:RAW_LIMIT]),
                )
                for d in dead
            ],
        )
        t.dl_rows += len(dead)
        if t.dl_rows > self._dl_max:
            t.dl_evicted = t.dl_rows - self._dl_max
            conn.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT ?)",
                (t.dl_evicted,),
            )
            t.dl_rows = self._dl_max

    def _count(self, t: _Txn, accepted: int, dead: list[_DeadLetter]) -> None:
        """Metrics and rate-limited logs for one committed transaction."""
        if accepted:
            self._metrics.inc("readings_accepted_total", accepted)
        if t.redelivered:
            self._metrics.inc("redelivered_readings_skipped_total", t.redelivered)
            log.info(
                "redelivered messages were already in the spool; acked without spooling again",
                extra={"event": "redelivery_skipped", "readings": t.redelivered},
            )
        policy = "drop_oldest" if self._drop_oldest else "drop_newest"
        for reason, count in t.dropped.items():
            self._metrics.inc("readings_dropped_total", count, reason=reason)
            what = "spool full" if reason == "spool_full" else "low disk space (min_free_bytes)"
            self._ratelog.log(
                logging.WARNING, f"spool_{reason}", f"{what}: dropping readings", count=count, policy=policy
            )
        for d in dead:
            self._metrics.inc("readings_dead_lettered_total", reason=d.rejected.reason)
        if t.dl_evicted:
            self._metrics.inc("dead_letters_evicted_total", t.dl_evicted)
        if dead:
            last = dead[-1].rejected
            self._ratelog.log(
                logging.WARNING,
                "dead_letter",
                "input rejected into the dead-letter table",
                count=len(dead),
                reason=last.reason,
                detail=last.detail,
                source=last.source,
            )

    def _evict_oldest(self, conn: sqlite3.Connection, need: int, depth: int, nbytes: int) -> tuple[int, int]:
        freed = removed = 0
        while need > freed and depth - removed > 0:
            avg = max(1, (nbytes - freed) // max(1, depth - removed))
            chunk = min(depth - removed, need // avg + 16)
            lengths = conn.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?) "
                "RETURNING length(data)",
                (chunk,),
            ).fetchall()
            if not lengths:
                break
            removed += len(lengths)
            freed += sum(length for (length,) in lengths) + ROW_OVERHEAD * len(lengths)
        return freed, removed

    def _refresh_oldest(self) -> None:
        assert self._conn is not None
        row = self._conn.execute("SELECT data FROM readings ORDER BY seq LIMIT 1").fetchone()
        self._oldest_stale = False
        self._oldest_ts = unpack_reading(row[0]).ts if row else None

    def _publish_gauges(self) -> None:
        snap = self.snapshot()
        self._metrics.set("spool_depth_readings", snap.depth)
        self._metrics.set("spool_bytes", snap.bytes)
        self._metrics.set("spool_pending_readings", snap.pending)
        self._metrics.set("spool_oldest_age_seconds", snap.oldest_age_s or 0.0)


def _cap_bytes(rows: Iterator[tuple[int, bytes]] | sqlite3.Cursor, max_bytes: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    total = 0
    for seq, data in rows:
        if out and total + len(data) > max_bytes:
            break
        out.append((seq, data))
        total += len(data)
    return out


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection for ``spool stats``/``export``; safe while the agent writes (WAL)."""
    if not Path(path).exists():
        raise SpoolError(f"no spool at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA query_only=1")
    return conn


def iter_rows(conn: sqlite3.Connection, table: str, batch: int = 1000) -> Iterator[Sequence[object]]:
    """Stream a table in key order without holding a read transaction for the whole export."""
    key = "seq" if table == "readings" else "id"
    cols = "seq, data" if table == "readings" else "id, ts_ms, reason, detail, source, raw"
    last = -1
    while True:
        rows = conn.execute(
            f"SELECT {cols} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",  # noqa: S608 - fixed names
            (last, batch),
        ).fetchall()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
