"""``ironlink-ingest run``: wire the parts together and run them under one TaskGroup until SIGTERM.

Tasks: the pipeline (decode, write, ack), the health/metrics HTTP server, an InfluxDB ping probe and the
systemd watchdog. The paho network thread is started after the tasks and stopped last, so a stop first
finishes (or abandons, unacknowledged) the flush in progress and then disconnects: the broker keeps the
session and redelivers anything unacknowledged to the next run.
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

from ironlink_agent import __version__
from ironlink_agent.health import HealthServer
from ironlink_agent.ingest.config import IngestConfig
from ironlink_agent.ingest.consumer import Consumer, Message
from ironlink_agent.ingest.deadletter import DeadLetterStore
from ironlink_agent.ingest.dedup import Dedup
from ironlink_agent.ingest.fleet import Fleet
from ironlink_agent.ingest.influx import InfluxClient
from ironlink_agent.ingest.metrics import IngestMetrics
from ironlink_agent.ingest.pipeline import Pipeline, _wait_any
from ironlink_agent.sdnotify import SdNotifier

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
            await _wait_any(self.stop, timeout=0.2)
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
            await _wait_any(self.stop, timeout=PING_INTERVAL_S)

    async def _watchdog(self, sd: SdNotifier) -> None:
        interval = sd.watchdog_interval_s()
        while interval and not self.stop.is_set():
            sd.watchdog()
            ok, doc = self.report()
            written = doc["counters"]["readings_written_total"]
            unacked = doc["unacked_messages"]
            sd.status(f"{'ok' if ok else 'degraded'}: {unacked} unacked, {written:.0f} written")
            await _wait_any(self.stop, timeout=interval)

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
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.health.serve(self.stop))
                tg.create_task(self._probe())
                tg.create_task(self._watchdog(sd))
                pipeline = tg.create_task(self.pipeline.run(self.stop))
                if self.retire_idle_s is not None:
                    tg.create_task(self._retire(self.retire_idle_s))
                self.consumer.start()
                sd.ready()
                await self.stop.wait()
                sd.stopping()
                log.info("stopping", extra={"event": "ingest_stopping", "unacked": self.pipeline.unacked})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pipeline), STOP_GRACE_S)
                pipeline.cancel()
        finally:
            self.consumer.stop()
            self.influx.close()
            self.dedup.close()
            self.dead.close()
            sd.close()
        log.info("ingest stopped", extra={"event": "ingest_stopped", "unacked": self.pipeline.unacked})
        return 0
