# SPDX-License-Identifier: Apache-2.0
"""The running agent: one asyncio loop supervising isolated tasks around the spool.

Task layout (one ``TaskGroup``): the uplink, the MQTT input, one task per Modbus device, the health
server and the housekeeping loop (systemd watchdog, STATUS=, health file). Each runs under the service
library's ``supervise`` (the ingest's loops too): an exception is logged, counted in
``restarts_total{task}`` and the task restarts after a jittered backoff, so one loop's failure never takes
another down (nor the TaskGroup).

Shutdown (SIGTERM/SIGINT or ``request_stop()``): inputs stop first and the spool commits what they
queued (releasing the local broker's acks), then the uplink waits up to ``shutdown_timeout_s`` for
in-flight PUBACKs, then the spool writer drains and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from ironlink_contract.model import Reading, Rejected
from ironlink_service.health import HealthServer, write_health_file
from ironlink_service.sdnotify import SdNotifier
from ironlink_service.supervisor import supervise

from . import __version__
from .metrics import AgentMetrics, Metrics
from .sink import Ack
from .spool import Spool
from .uplink import Uplink

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
__all__ = ["AgentSink", "Runtime", "run_agent", "supervise"]  # supervise: re-exported for the agent's tests


class AgentSink:
    """The spool behind the inputs' :class:`~ironlink_agent.sink.Sink` (DESIGN.md ``Sink``). Counts
    ``readings_received_total{source}``."""

    def __init__(self, spool: Spool, metrics: Metrics, source: str) -> None:
        self._spool = spool
        self._metrics = metrics
        self._source = source
        self._received = metrics.counter("readings_received_total", source=source)

    def accept(
        self,
        readings: list[Reading],
        ack: Ack | None = None,
        *,
        key: bytes | None = None,
        redelivered: bool = False,
    ) -> None:
        self._received(len(readings))
        self._spool.submit(readings, ack, key=key, redelivered=redelivered)

    def reject(self, rejected: Rejected, ack: Ack | None = None) -> None:
        self._spool.dead_letter(rejected, ack)


class Runtime:
    """``await Runtime(config).run()`` runs the agent until ``request_stop()`` or SIGTERM/SIGINT."""

    def __init__(
        self,
        config: Any,
        *,
        environ: Mapping[str, str] = os.environ,
        notifier: SdNotifier | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        self.config = config
        self.metrics = AgentMetrics()
        self.notifier = notifier or SdNotifier(environ)
        self.shutdown_timeout_s = float(getattr(config, "shutdown_timeout_s", DEFAULT_SHUTDOWN_TIMEOUT_S))
        self.spool = Spool.from_config(config.spool, self.metrics)
        self.uplink = Uplink(
            config.uplink,
            config.identity,
            self.spool,
            self.metrics,
            shutdown_timeout_s=self.shutdown_timeout_s,
        )
        self.spool.on_commit = self.uplink.notify_committed
        self.health_server: HealthServer | None = None
        self.mqtt_input: Any = None
        self.ready = threading.Event()
        self.started = time.monotonic()
        self._install_signals = install_signal_handlers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False

    def sink(self, source: str) -> AgentSink:
        return AgentSink(self.spool, self.metrics, source)

    def request_stop(self) -> None:
        """Begin a graceful shutdown. Safe from any thread and from signal handlers."""
        self._stop_requested = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    # -- health ----------------------------------------------------------------------------------

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, document). Unhealthy means the agent cannot make progress by itself — the spool
        writer died or is stuck — so systemd's watchdog should restart it. An unreachable cloud broker
        or a full disk is *degraded*: store-and-forward is doing its job."""
        snap = self.spool.snapshot()
        stall_s = max(30.0, 5 * self.config.spool.commit_window_ms / 1000)
        problems: list[str] = []
        warnings: list[str] = []
        if not self.spool.writer_alive():
            problems.append("spool writer thread is not running")
        elif snap.writer_heartbeat_age_s > stall_s:
            problems.append(f"spool writer stuck for {snap.writer_heartbeat_age_s:.0f}s")
        if snap.commit_failing:
            warnings.append("spool commits failing (disk full or I/O error); retrying")
        if not self.uplink.connected:
            warnings.append("cloud broker not connected")
        if self.mqtt_input is not None and not self.mqtt_input.connected.is_set():
            warnings.append("local MQTT broker not connected")
        if self.spool.quarantined_to is not None:
            warnings.append(f"corrupt spool quarantined to {self.spool.quarantined_to}")
        doc: dict[str, Any] = {
            "status": "unhealthy" if problems else ("degraded" if warnings else "ok"),
            "problems": problems,
            "warnings": warnings,
            "version": __version__,
            "ts": int(time.time() * 1000),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "gateway": self.config.identity.topic_prefix,
            "spool": {
                "path": str(self.spool.path),
                "spool_id": self.spool.spool_id,
                "depth": snap.depth,
                "bytes": snap.bytes,
                "pending": snap.pending,
                "oldest_age_s": None if snap.oldest_age_s is None else round(snap.oldest_age_s, 1),
                "dead_letters": snap.dead_letters,
                "commit_failing": snap.commit_failing,
                "quarantined_to": str(self.spool.quarantined_to) if self.spool.quarantined_to else None,
            },
            "uplink": {
                "connected": self.uplink.connected,
                "host": self.config.uplink.host,
                "last_error": self.uplink.last_error,
                "last_success_ts": self.uplink.last_success,
            },
            "counters": {
                "received": self.metrics.total("readings_received_total"),
                "accepted": self.metrics.total("readings_accepted_total"),
                "forwarded": self.metrics.total("readings_forwarded_total"),
                "dropped": self.metrics.total("readings_dropped_total"),
                "dead_lettered": self.metrics.total("readings_dead_lettered_total"),
                "restarts": self.metrics.total("restarts_total"),
            },
        }
        return not problems, doc

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """systemd watchdog (only while healthy), STATUS= line, health file."""
        wd = self.notifier.watchdog_interval_s()
        interval = min(HOUSEKEEPING_S, wd) if wd else HOUSEKEEPING_S
        health_file = self.config.health.health_file
        while not stop.is_set():
            healthy, doc = self.health_report()
            if healthy:
                self.notifier.watchdog()
            else:
                log.error("agent unhealthy", extra={"event": "unhealthy", "problems": doc["problems"]})
            spool = doc["spool"]
            self.notifier.status(
                f"{doc['status']}; uplink {'up' if doc['uplink']['connected'] else 'down'}; "
                f"spool {spool['depth']} readings"
            )
            if health_file is not None:
                try:
                    await asyncio.to_thread(write_health_file, health_file, doc)
                except OSError as exc:
                    log.warning(
                        "cannot write health file", extra={"event": "health_file_error", "error": str(exc)}
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # -- main ------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = stop = asyncio.Event()
        if self._stop_requested:
            stop.set()
        input_stop, uplink_stop, aux_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        if self._install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        await asyncio.to_thread(self.spool.open)
        cfg = self.config
        hc = cfg.health
        self.health_server = HealthServer(hc.http_host, hc.http_port, self.health_report, self.metrics.render)
        try:
            await self.health_server.start()
        except OSError as exc:  # the agent still forwards data without its health port
            log.error(
                "health server cannot listen",
                extra={"event": "health_listen_failed", "port": hc.http_port, "error": str(exc)},
            )
        try:
            async with asyncio.TaskGroup() as tg:
                inputs = self._start_inputs(tg, input_stop)
                uplink_task = tg.create_task(
                    supervise("uplink", lambda: self.uplink.run(uplink_stop), uplink_stop, self.metrics)
                )
                tg.create_task(
                    supervise("housekeeping", lambda: self._housekeeping(aux_stop), aux_stop, self.metrics)
                )
                self.ready.set()
                self.notifier.ready()
                log.info("agent running", extra={"event": "agent_started", "version": __version__})
                await stop.wait()
                log.info("shutting down", extra={"event": "agent_stopping"})
                self.notifier.stopping()
                input_stop.set()
                if inputs:
                    await asyncio.wait(inputs, timeout=self.shutdown_timeout_s + 2)
                uplink_stop.set()
                await asyncio.wait([uplink_task], timeout=self.shutdown_timeout_s + 2)
                aux_stop.set()
                for task in [*inputs, uplink_task]:
                    task.cancel()
        finally:
            if self.health_server is not None:
                await self.health_server.close()
            drained = await asyncio.to_thread(self.spool.close, self.shutdown_timeout_s + 5)
            self.notifier.close()
            log.info("agent stopped", extra={"event": "agent_stopped", "spool_drained": drained})

    def _start_inputs(self, tg: asyncio.TaskGroup, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        cfg = self.config
        tasks: list[asyncio.Task[None]] = []
        if cfg.mqtt is not None:
            from .inputs.mqtt_input import MqttInput
            from .normalise import Normaliser

            mqtt_in = MqttInput(
                cfg.mqtt,
                f"ironlink-agent-{cfg.identity.gateway_id}",
                self.sink("mqtt"),
                self.metrics,
                catalogue=Normaliser.from_config(cfg),
            )
            self.mqtt_input = mqtt_in
            tasks.append(
                tg.create_task(
                    supervise(
                        "mqtt_input",
                        lambda: mqtt_in.run(stop, self.spool.wait_idle, self.shutdown_timeout_s),
                        stop,
                        self.metrics,
                    )
                )
            )
        if cfg.modbus:
            from .inputs.modbus_input import run_device  # pymodbus is imported only when needed
            from .normalise import Normaliser

            sink = self.sink("modbus")
            normaliser = Normaliser.from_config(cfg)
            for device in cfg.modbus:
                tasks.append(
                    tg.create_task(
                        supervise(
                            f"modbus:{device.name}",
                            lambda d=device: run_device(d, sink, self.metrics, stop, normaliser=normaliser),  # type: ignore[misc]
                            stop,
                            self.metrics,
                        )
                    )
                )
        return tasks


def run_agent(config: Any) -> int:
    """Blocking entry point used by ``ironlink-agent run``: 0 on a clean stop."""
    from .spool import SpoolError

    try:
        asyncio.run(Runtime(config).run())
    except SpoolError as exc:
        log.error("cannot open the spool: %s", exc, extra={"event": "spool_open_failed"})
        return 1
    return 0
