# SPDX-License-Identifier: Apache-2.0
"""Messages in, InfluxDB writes out, MQTT acks only after the write: the ingest's one hot loop.

Each cycle takes everything that is waiting (up to ``max_batch_lines`` lines), groups it by client
database, writes each group in one ``/write`` and then acknowledges its messages. While a write is in
flight the next messages queue up, so batches grow with load and stay small (low latency) when idle.

Failure rules:
- transient (InfluxDB down, 5xx, auth, database missing): retry the same body with bounded exponential
  backoff until it succeeds or the worker stops; nothing is acknowledged meanwhile, and the broker stops
  sending at ``receive_maximum`` unacked messages (back-pressure). On stop the flush is abandoned
  unacknowledged: the broker redelivers it to the session later.
- permanent (400 bad data, 413): the group is split per message; a message InfluxDB still refuses is
  dead-lettered and acknowledged.
- a message that is not a clean, authentic batch is dead-lettered and acknowledged at once.
- a message whose readings are all duplicates is acknowledged after the flush (its originals may be in it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ironlink_service.backoff import Backoff
from ironlink_service.logs import RateLimitedLog
from ironlink_service.supervisor import wait_any as _wait_any

from ironlink_ingest import messages
from ironlink_ingest.config import ClientCredentials, IngestConfig
from ironlink_ingest.consumer import Message
from ironlink_ingest.deadletter import DeadLetterStore
from ironlink_ingest.dedup import Dedup
from ironlink_ingest.influx import InfluxClient, WriteOutcome
from ironlink_ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One message's contribution to a write."""

    msg: Message
    lines: list[str]
    spool_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    telemetry: bool = True


@dataclass
class Group:
    creds: ClientCredentials
    parts: list[Part] = field(default_factory=list)


@dataclass
class Flush:
    id: int
    groups: dict[str, Group] = field(default_factory=dict)
    after: list[Message] = field(default_factory=list)  # ack once the whole flush is stored
    lines: int = 0


class Pipeline:
    def __init__(
        self,
        *,
        config: IngestConfig,
        dedup: Dedup,
        dead: DeadLetterStore,
        influx: InfluxClient,
        metrics: IngestMetrics,
        ack: Callable[[Message], bool],
    ) -> None:
        self.config = config
        self.dedup = dedup
        self.dead = dead
        self.influx = influx
        self.metrics = metrics
        self._ack = ack
        self._inbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._rate_log = RateLimitedLog(log)
        self.last_write_error: str | None = None
        self.influx_ok: bool | None = None
        self.unacked = 0
        self._backoff = 0.5

    # -- input (event loop thread; the consumer hands over with call_soon_threadsafe) ----------------

    def submit(self, msg: Message) -> None:
        self._inbox.append(msg)
        self.unacked += 1
        self.metrics.set("inflight_messages", self.unacked)
        self._wake.set()

    # -- main loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop``. Two stages overlap: while flush N is written (in a thread), flush N+1 is
        decoded; N+1 is written only after N is acknowledged, so acks and dedup commits stay in order.
        An unexpected error abandons a flush; its unacknowledged messages are processed again."""
        writing: asyncio.Task[bool] | None = None
        in_write: list[Message] = []
        self._backoff = 0.5
        try:
            while not stop.is_set():
                if not self._inbox and not await self._idle(writing, stop):
                    continue
                if self._inbox and self.config.influxdb.flush_interval_ms and writing is None:
                    await _wait_any(stop, timeout=self.config.influxdb.flush_interval_ms / 1000)
                flush, taken = await self._build_or_back_off(stop)
                if writing is not None:
                    ok = await self._settle(writing, in_write)
                    writing = None
                    if not ok:
                        self._requeue(taken, flush)
                        await self._back_off(stop)
                        continue
                    self._backoff = 0.5
                if flush is not None:
                    writing = asyncio.create_task(self._finish(flush, stop))
                    in_write = taken
        finally:
            if writing is not None:
                await self._settle(writing, in_write)

    async def _idle(self, writing: asyncio.Task[bool] | None, stop: asyncio.Event) -> bool:
        """Wait for a message, the stop or the end of the write in flight; True if there is work."""
        self._wake.clear()
        if writing is None:
            await _wait_any(self._wake, stop)
            return bool(self._inbox)
        waiter = asyncio.ensure_future(_wait_any(self._wake, stop))
        try:
            await asyncio.wait([writing, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return bool(self._inbox) or writing.done()

    async def _back_off(self, stop: asyncio.Event) -> None:
        await _wait_any(stop, timeout=self._backoff)
        self._backoff = min(self._backoff * 2, 30.0)

    async def _build_or_back_off(self, stop: asyncio.Event) -> tuple[Flush | None, list[Message]]:
        if not self._inbox:
            return None, []
        taken: list[Message] = []
        try:
            return self._build(taken)
        except Exception:  # e.g. the dead-letter store's disk is full: retry later, never crash
            log.exception("ingest cycle failed", extra={"event": "cycle_failed"})
            self.metrics.inc("restarts_total", task="pipeline")
            self._requeue(taken, None)
            await self._back_off(stop)
            return None, []

    def _build(self, taken: list[Message]) -> tuple[Flush, list[Message]]:
        flush = Flush(next(self._ids))
        limit = self.config.influxdb.max_batch_lines
        while self._inbox and flush.lines < limit:
            msg = self._inbox.popleft()
            taken.append(msg)
            try:
                self._add(flush, msg)
            except BaseException:
                self.dedup.release(flush.id)
                raise
        return flush, taken

    async def _finish(self, flush: Flush, stop: asyncio.Event) -> bool:
        try:
            if not await self._write(flush, stop):
                return True  # stopped: left unacknowledged for redelivery, not an error
            for msg in flush.after:
                self._done(msg)
            return True
        finally:
            self.dedup.release(flush.id)

    async def _settle(self, writing: asyncio.Task[bool], taken: list[Message]) -> bool:
        try:
            return await writing
        except Exception:
            log.exception("ingest flush failed; retrying its messages", extra={"event": "flush_failed"})
            self.metrics.inc("restarts_total", task="pipeline")
            self._requeue(taken, None)
            return False

    def _requeue(self, taken: list[Message], flush: Flush | None) -> None:
        if flush is not None:
            self.dedup.release(flush.id)
        self._inbox.extendleft(reversed([m for m in taken if not m.done]))

    # -- classify one message -----------------------------------------------------------------------

    def _add(self, flush: Flush, msg: Message) -> None:
        kind = "telemetry" if msg.topic.endswith("/telemetry") else "status"
        self.metrics.inc("messages_received_total", kind=kind)
        try:
            topic = messages.parse_topic(msg.topic)
            creds = self.config.clients.get(topic.client_id)
            if creds is None:
                raise messages.Reject("unknown_client", f"no write credentials for client {topic.client_id}")
            if topic.kind == "status":
                st = messages.status(topic, msg.payload)
                if st is None:
                    self._done(msg)
                    return
                self.metrics.fleet.status(topic.gateway, st.state == "online")
                part = Part(msg, [st.line], telemetry=False)
            else:
                tm = messages.telemetry(topic, msg.payload, self.dedup, flush.id)
                self.metrics.fleet.seen(topic.gateway)
                self.metrics.inc("readings_received_total", tm.readings)
                if tm.duplicates:
                    self.metrics.inc("readings_duplicate_total", tm.duplicates)
                if not tm.lines:
                    flush.after.append(msg)
                    return
                part = Part(msg, tm.lines, tm.spool_id, tm.seqs)
        except messages.Reject as rej:
            self._reject(msg, rej.reason, rej.detail)
            return
        except Exception as exc:  # a bug must not lose the message: keep it as a dead letter
            log.exception("cannot process message", extra={"event": "process_error", "topic": msg.topic})
            self._reject(msg, "internal_error", f"{type(exc).__name__}: {exc}")
            return
        flush.groups.setdefault(creds.client_id, Group(creds)).parts.append(part)
        flush.lines += len(part.lines)

    def _reject(self, msg: Message, reason: str, detail: str) -> None:
        self.dead.add(reason, detail, msg.topic, msg.payload)
        self.metrics.inc("rejected_total", reason=reason)
        self.metrics.set("dead_letters_stored", self.dead.rows)
        self.metrics.set("dead_letters_evicted_total", self.dead.evicted)
        self._rate_log.log(
            logging.WARNING,
            f"rejected_{reason}",
            "message rejected",
            reason=reason,
            detail=detail[:300],
            topic=msg.topic,
        )
        self._done(msg, latency=False)

    def _done(self, msg: Message, *, latency: bool = True) -> None:
        msg.done = True
        self._ack(msg)
        self.unacked -= 1
        self.metrics.set("inflight_messages", self.unacked)
        if latency and msg.topic.endswith("/telemetry"):
            self.metrics.observe("batch_latency_seconds", time.monotonic() - msg.received)

    # -- write --------------------------------------------------------------------------------------

    async def _write(self, flush: Flush, stop: asyncio.Event) -> bool:
        """Write every group; False if stopped before all of them were stored."""
        for group in flush.groups.values():
            body = "\n".join(line for part in group.parts for line in part.lines).encode()
            outcome = await self._write_retrying(group.creds, body, stop)
            if outcome is None:
                return False
            if outcome.ok:
                self._stored(flush, group.parts)
                continue
            # permanent: isolate the message(s) InfluxDB refuses
            for part in group.parts:
                single = await self._write_retrying(group.creds, "\n".join(part.lines).encode(), stop)
                if single is None:
                    return False
                if single.ok:
                    self._stored(flush, [part])
                else:
                    reason = "influx_" + single.reason
                    self.metrics.inc("readings_rejected_total", len(part.lines), reason=reason)
                    self._reject(part.msg, reason, f"HTTP {single.status}: {single.error}")
        return True

    def _stored(self, flush: Flush, parts: list[Part]) -> None:
        stored: dict[str, list[int]] = {}
        for part in parts:
            if part.spool_id is not None:
                stored.setdefault(part.spool_id, []).extend(part.seqs)
        self.dedup.commit(stored)
        self.metrics.set("dedup_spools", self.dedup.spools)
        for part in parts:
            if part.telemetry:
                self.metrics.inc("readings_written_total", len(part.lines))
            else:
                self.metrics.inc("status_written_total")
            self._done(part.msg)

    async def _write_retrying(
        self, creds: ClientCredentials, body: bytes, stop: asyncio.Event
    ) -> WriteOutcome | None:
        cfg = self.config.influxdb
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        while True:
            outcome = await asyncio.to_thread(self.influx.write, creds, body)
            self.metrics.observe("write_latency_seconds", outcome.seconds)
            if outcome.ok or outcome.permanent:
                self._influx_state(True, None)
                if outcome.ok:
                    self.metrics.inc("writes_total")
                else:
                    self.metrics.inc("write_errors_total", reason=outcome.reason)
                return outcome
            self.metrics.inc("write_errors_total", reason=outcome.reason)
            self._influx_state(outcome.reason not in ("unavailable", "server_error"), outcome)
            if stop.is_set() or await _wait_any(stop, timeout=backoff.next_delay()):
                return None

    def _influx_state(self, up: bool, outcome: WriteOutcome | None) -> None:
        self.metrics.set("influx_up", 1 if up else 0)
        self.influx_ok = up
        if outcome is None:
            if self.last_write_error is not None:
                log.info("influxdb writes succeed again", extra={"event": "influx_recovered"})
            self.last_write_error = None
            return
        self.last_write_error = f"{outcome.reason}: HTTP {outcome.status}: {outcome.error}"[:300]
        self._rate_log.log(
            logging.WARNING,
            "influx_write_failed",
            "influxdb write failed; retrying",
            reason=outcome.reason,
            status=outcome.status,
            error=outcome.error[:200],
        )
