# SPDX-License-Identifier: Apache-2.0
"""``ironlink-ingest run``: wire the parts together and run them under one TaskGroup until SIGTERM.

Tasks: the pipeline (decode, write, ack), the MQTT consumer, the health/metrics HTTP server, an InfluxDB
ping probe and the systemd watchdog (and, retiring, the drain watch). Each runs under the service library's
``supervise``, as the agent's loops do: one loop's bug is logged, counted in ``restarts_total{task}`` and
restarts that loop, not the process. The consumer has its own stop, set last, so a stop first finishes (or
abandons, unacknowledged) the flush in progress and then disconnects: the broker keeps the session and
redelivers anything unacknowledged to the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from ironlink_service.health import HealthServer
from ironlink_service.sdnotify import SdNotifier
from ironlink_service.supervisor import supervise, wait_any

from ironlink_ingest import __version__
from ironlink_ingest.config import IngestConfig
from ironlink_ingest.consumer import Consumer, Message
from ironlink_ingest.deadletter import DeadLetterStore
from ironlink_ingest.dedup import Dedup
from ironlink_ingest.fleet import Fleet
from ironlink_ingest.influx import InfluxClient
from ironlink_ingest.metrics import IngestMetrics
from ironlink_ingest.pipeline import Pipeline

log = logging.getLogger(__name__)
PING_INTERVAL_S = 10.0
STOP_GRACE_S = 10.0


def state_paths(config: IngestConfig, instance: str) -> tuple[Path, Path]:
    d = config.state_dir / instance
    return d / "dedup.sqlite", d / "dead_letters.sqlite"


class Service:
    def __init__(
        self, config: IngestConfig, instance: str = "1", *, retire_idle_s: float | None = None
    ) -> None:
        self.config = config
        self.retire_idle_s = retire_idle_s
        self.instance = instance
        self.started = time.monotonic()
        self.metrics = IngestMetrics(Fleet(config.fleet_max_gateways))
        dedup_path, dead_path = state_paths(config, instance)
        self.dedup = Dedup(
            dedup_path,
            max_spools=config.dedup_max_spools,
            max_ranges_per_spool=config.dedup_max_ranges_per_spool,
        )
        self.dead = DeadLetterStore(
            dead_path,
            max_bytes=config.dead_letter_max_bytes,
            max_payload_bytes=config.dead_letter_max_payload_bytes,
        )
        self.influx = InfluxClient(config.influxdb)
        self.consumer = Consumer(
            config.broker,
            f"{config.broker.client_id_prefix}-{instance}",
            self._deliver,
            self.metrics,
            retire=retire_idle_s is not None,
        )
        self.pipeline = Pipeline(
            config=config,
            dedup=self.dedup,
            dead=self.dead,
            influx=self.influx,
            metrics=self.metrics,
            ack=self.consumer.ack,
        )
        self.health = HealthServer(config.http_host, config.http_port, self.report, self.metrics.render)
        self.stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_message = 0.0
        self._connect_seen: float | None = None

    def _deliver(self, msg: Message) -> None:  # paho thread
        assert self._loop is not None
        self._last_message = time.monotonic()
        self._loop.call_soon_threadsafe(self.pipeline.submit, msg)

    async def _retire(self, idle_s: float) -> None:
        """Drain the session's queue (no new messages come after the unsubscribe), then stop."""
        while not self.stop.is_set():
            await wait_any(self.stop, timeout=0.2)
            if not self.consumer.connected.is_set():
                continue
            idle = time.monotonic() - max(self._last_message, self._connected_at())
            if self.pipeline.unacked == 0 and idle >= idle_s:
                log.info(
                    "session drained",
                    extra={
                        "event": "retire_drained",
                        "written": self.metrics.total("readings_written_total"),
                    },
                )
                self.stop.set()

    def _connected_at(self) -> float:
        if self._connect_seen is None and self.consumer.connected.is_set():
            self._connect_seen = time.monotonic()
        return self._connect_seen or time.monotonic()

    def report(self) -> tuple[bool, dict[str, Any]]:
        problems = []
        if not self.consumer.connected.is_set():
            problems.append(f"broker not connected ({self.consumer.last_error or 'connecting'})")
        if self.pipeline.last_write_error:
            problems.append(f"influxdb writes failing: {self.pipeline.last_write_error}")
        m = self.metrics
        doc = {
            "status": "ok" if not problems else "degraded",
            "version": __version__,
            "pid": os.getpid(),
            "instance": self.instance,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "broker_connected": self.consumer.connected.is_set(),
            "influx_up": bool(m.get("influx_up")),
            "unacked_messages": self.pipeline.unacked,
            "gateways_online": m.fleet.online_count(),
            "dead_letters": self.dead.rows,
            "counters": {
                name: m.total(name)
                for name in (
                    "readings_received_total",
                    "readings_written_total",
                    "readings_duplicate_total",
                    "rejected_total",
                    "write_errors_total",
                )
            },
            "problems": problems,
        }
        return not problems, doc

    async def _probe(self) -> None:
        while not self.stop.is_set():
            up = await asyncio.to_thread(self.influx.ping)
            if not up or self.pipeline.influx_ok is None:
                self.metrics.set("influx_up", 1 if up else 0)
            await wait_any(self.stop, timeout=PING_INTERVAL_S)

    async def _watchdog(self, sd: SdNotifier) -> None:
        interval = sd.watchdog_interval_s()
        while interval and not self.stop.is_set():
            sd.watchdog()
            ok, doc = self.report()
            written = doc["counters"]["readings_written_total"]
            unacked = doc["unacked_messages"]
            sd.status(f"{'ok' if ok else 'degraded'}: {unacked} unacked, {written:.0f} written")
            await wait_any(self.stop, timeout=interval)

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.stop.set)
        sd = SdNotifier()
        log.info(
            "ingest starting",
            extra={
                "event": "ingest_starting",
                "version": __version__,
                "instance": self.instance,
                "clients": sorted(self.config.clients),
                "dedup_spools": self.dedup.spools,
                "dedup_load_s": round(self.dedup.load_seconds, 3),
            },
        )
        self.metrics.set("dedup_spools", self.dedup.spools)
        self.metrics.set("dead_letters_stored", self.dead.rows)
        self.metrics.set("broker_connected", 0)
        await self.health.start()
        stop, m = self.stop, self.metrics
        consumer_stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(supervise("health", lambda: self.health.serve(stop), stop, m))
                tg.create_task(supervise("influx_probe", self._probe, stop, m))
                tg.create_task(supervise("watchdog", lambda: self._watchdog(sd), stop, m))
                pipeline = tg.create_task(supervise("pipeline", lambda: self.pipeline.run(stop), stop, m))
                if self.retire_idle_s is not None:
                    idle_s = self.retire_idle_s
                    tg.create_task(supervise("retire", lambda: self._retire(idle_s), stop, m))
                consumer = tg.create_task(
                    supervise("consumer", lambda: self.consumer.run(consumer_stop), consumer_stop, m)
                )
                sd.ready()
                await stop.wait()
                sd.stopping()
                log.info("stopping", extra={"event": "ingest_stopping", "unacked": self.pipeline.unacked})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pipeline), STOP_GRACE_S)
                pipeline.cancel()
                consumer_stop.set()  # last: the flush above could still ack on this connection
                await asyncio.wait([consumer], timeout=STOP_GRACE_S)
                consumer.cancel()
        finally:
            self.influx.close()
            self.dedup.close()
            self.dead.close()
            sd.close()
        log.info("ingest stopped", extra={"event": "ingest_stopped", "unacked": self.pipeline.unacked})
        return 0
