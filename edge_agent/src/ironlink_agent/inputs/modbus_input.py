# SPDX-License-Identifier: Apache-2.0
"""Modbus TCP/RTU poller: one asyncio task per device (see DESIGN.md, "Runtime interfaces").

Each TCP device gets its own client, its own poll schedule and its own timeouts, so a dead or slow device
only delays itself. RTU devices on one serial port (an RS-485 line) share one client and take turns on the
line; there a silent unit costs the others at most its timeout per request. Failures never raise out of
:func:`run_device`:

- cannot connect / connection lost -> ``modbus_poll_errors_total{device}`` + a log line, then a reconnect
  after a capped exponential backoff with jitter (nothing was received, so there is nothing to dead-letter);
- a block read fails on a live connection (exception response, timeout, garbage) -> the counter, and one
  :class:`Rejected` per failed block naming every metric it held, so a gap is never silent;
- a value that cannot be decoded (NaN/inf float) -> a :class:`Rejected` carrying the raw register bytes.

The metrics read successfully in a poll are handed to the sink as one :class:`Reading` per device and poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ironlink_contract.model import Reading, Rejected
from ironlink_service.backoff import Backoff

from ironlink_agent.inputs import registers as regs
from ironlink_agent.sink import Sink

if TYPE_CHECKING:
    from ironlink_agent.config import ModbusDeviceConfig, RegisterMap
    from ironlink_agent.normalise import Normaliser

log = logging.getLogger(__name__)

POLL_ERRORS = "modbus_poll_errors_total"
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0


class MetricsLike(Protocol):
    def inc(self, name: str, amount: float = 1, **labels: str) -> None: ...
    def set(self, name: str, value: float, **labels: str) -> None: ...


class ReadFailedError(Exception):
    """A block read failed; ``reason`` is the dead-letter code, ``fatal`` means reconnect."""

    def __init__(self, reason: str, detail: str, *, fatal: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.fatal = fatal


def make_client(device: ModbusDeviceConfig) -> Any:
    """A pymodbus async client with pymodbus' own retries and reconnects off (we do both ourselves)."""
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    if device.protocol == "tcp":
        return AsyncModbusTcpClient(
            device.host, port=device.port, timeout=device.timeout_s, retries=0, reconnect_delay=0
        )
    return AsyncModbusSerialClient(
        device.serial_port,
        baudrate=device.baudrate,
        parity=device.parity,
        stopbits=device.stopbits,
        bytesize=device.bytesize,
        timeout=device.timeout_s,
        retries=0,
        reconnect_delay=0,
    )


def _registers_bytes(values: Sequence[int] | Sequence[bool]) -> bytes:
    return b"".join(int(v).to_bytes(2, "big") for v in values)


class _Link:
    """A client and the lock serialising requests on it.

    TCP devices each get their own link. RTU devices on the same serial port (an RS-485 multidrop line,
    several unit ids) share one: the port can be opened only once, and only one request may be on the
    line at a time. A shared link is closed when its last poller leaves.
    """

    def __init__(self, key: tuple[int, str] | None) -> None:
        self.key = key
        self.client: Any = None
        self.lock = asyncio.Lock()
        self.users = 0

    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self.client = None


_SHARED_LINKS: dict[tuple[int, str], _Link] = {}


def _acquire_link(device: ModbusDeviceConfig) -> _Link:
    if device.protocol != "rtu":
        link = _Link(None)
    else:
        key = (id(asyncio.get_running_loop()), str(device.serial_port))
        link = _SHARED_LINKS.get(key) or _SHARED_LINKS.setdefault(key, _Link(key))
    link.users += 1
    return link


def _release_link(link: _Link) -> None:
    link.users -= 1
    if link.users <= 0:
        link.close()
        if link.key is not None and _SHARED_LINKS.get(link.key) is link:
            del _SHARED_LINKS[link.key]


class DevicePoller:
    """Connect, poll on a fixed schedule, hand readings to the sink, recover from anything."""

    def __init__(
        self,
        device: ModbusDeviceConfig,
        sink: Sink,
        metrics: MetricsLike,
        stop: asyncio.Event,
        *,
        client_factory: Callable[[ModbusDeviceConfig], Any] = make_client,
        backoff: Backoff | None = None,
        normaliser: Normaliser | None = None,
    ) -> None:
        self.device = device
        self.normaliser = normaliser
        self.sink = sink
        self.metrics = metrics
        self.stop = stop
        self.client_factory = client_factory
        self.backoff = backoff or Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        self.blocks = regs.plan_reads(device.registers)
        self.source = f"modbus:{device.name}"
        self._link: _Link | None = None
        self._last_error: str | None = None
        # "connected" is worth an INFO line the first time and after the device was unreachable, not on
        # every reconnect after a read timeout (a slow device would log one per poll).
        self._announce_connect = True
        # A read may not outlive the device timeout by much, whatever pymodbus does inside.
        self._hard_timeout = device.timeout_s * 1.5 + 0.2

    @property
    def client(self) -> Any:
        return self._link.client if self._link is not None else None

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = max(self.device.poll_interval_s, 0.001)
        try:
            while not self.stop.is_set():
                if not await self._ensure_connected():
                    await self._sleep(self.backoff.next_delay())
                    continue
                started = loop.time()
                try:
                    await self.poll_once()
                except Exception:  # a bug must not kill the task: log, count, reconnect
                    log.exception(
                        "modbus poll crashed",
                        extra={"event": "modbus_poll_crashed", "device": self.device.name},
                    )
                    self._count_error()
                    self._close()
                    await self._sleep(self.backoff.next_delay())
                    continue
                await self._sleep(max(0.0, started + interval - loop.time()))
        finally:
            self.release()

    def release(self) -> None:
        """Give the link back (closing it when no other poller shares it)."""
        if self._link is not None:
            _release_link(self._link)
            self._link = None

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self.stop.is_set():
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def _ensure_connected(self) -> bool:
        if self._link is None:
            self._link = _acquire_link(self.device)
        link = self._link
        if link.connected:
            return True
        async with link.lock:
            if link.connected:  # another poller on the same serial line reconnected it meanwhile
                return True
            link.close()
            try:
                link.client = self.client_factory(self.device)
                ok = await asyncio.wait_for(link.client.connect(), timeout=self._hard_timeout + 1.0)
            except Exception as exc:
                ok = False
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = "connect returned false"
        if ok and link.connected:
            if self._announce_connect:  # recovered from "unreachable": the next failure warns again
                self._last_error = None
            log.log(
                logging.INFO if self._announce_connect else logging.DEBUG,
                "modbus device connected",
                extra={"event": "modbus_connected", "device": self.device.name, "endpoint": self._endpoint()},
            )
            self._announce_connect = False
            self.backoff.reset()
            self.metrics.set("modbus_connected", 1, device=self.device.name)
            return True
        self._count_error()
        self.metrics.set("modbus_connected", 0, device=self.device.name)
        self._announce_connect = True
        self._log_error("modbus_connect_failed", "modbus device unreachable", error)
        self._close()
        return False

    def _close(self) -> None:
        """Drop the connection (a shared serial link is reopened by whichever poller needs it next)."""
        if self._link is not None:
            self._link.close()

    def _endpoint(self) -> str:
        d = self.device
        return f"{d.host}:{d.port}" if d.protocol == "tcp" else str(d.serial_port)

    def _count_error(self) -> None:
        self.metrics.inc(POLL_ERRORS, device=self.device.name)

    def _log_error(self, event: str, msg: str, error: str, **fields: object) -> None:
        # Warn on every change of error, debug while the same error repeats (a dead device polled every
        # second must not fill the disk); the counter carries the rate.
        level = logging.DEBUG if error == self._last_error else logging.WARNING
        self._last_error = error
        log.log(
            level,
            msg,
            extra={"event": event, "device": self.device.name, "endpoint": self._endpoint(), "error": error}
            | fields,
        )

    # -- one poll -----------------------------------------------------------------------------------

    async def poll_once(self) -> Reading | None:
        """Read every block once; accept what was read, reject what was not. Returns the reading."""
        ts = int(time.time() * 1000)
        metrics: dict[str, regs.Value] = {}
        broken = False
        for block in self.blocks:
            if broken:
                self._reject_block(block, "modbus_not_read", "not read: connection lost earlier in this poll")
                continue
            try:
                values = await self._read_block(block)
            except ReadFailedError as exc:
                self._count_error()
                self._log_error(
                    "modbus_read_failed", "modbus block read failed", exc.detail, block=block.describe()
                )
                self._reject_block(block, exc.reason, exc.detail)
                if exc.fatal:
                    broken = True
                continue
            for reg in block.registers:
                self._decode_into(metrics, block, reg, values)
        if broken:
            self._close()
        if not metrics:
            return None
        if self.normaliser is None:
            reading = Reading(machine_id=self.device.machine_id, ts=ts, metrics=metrics, quality="good")
        else:  # catalogue types and bounds, exactly as for MQTT input
            result = self.normaliser.normalise(
                self.device.machine_id,
                ts,
                metrics,
                source=self.source,
                raw=json.dumps(metrics, sort_keys=True).encode(),
                quality="good",
            )
            if isinstance(result, Rejected):
                self.sink.reject(result)
                return None
            reading = result
        self.sink.accept([reading])
        return reading

    async def _read_block(self, block: regs.ReadBlock) -> Sequence[int] | Sequence[bool]:
        from pymodbus.exceptions import ConnectionException, ModbusException

        link = self._link
        assert link is not None
        client = link.client
        # On a shared RS-485 line a silent unit must not close the port under the other units' feet.
        fatal_timeout = self.device.protocol != "rtu"
        read = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[block.table]
        try:
            async with link.lock:
                response = await asyncio.wait_for(
                    read(block.address, count=block.count, device_id=self.device.unit_id),
                    timeout=self._hard_timeout,
                )
        except TimeoutError:
            raise ReadFailedError(
                "modbus_timeout", f"no answer within {self._hard_timeout:.1f}s", fatal=fatal_timeout
            ) from None
        except ConnectionException as exc:
            raise ReadFailedError("modbus_connection_lost", str(exc), fatal=True) from None
        except ModbusException as exc:  # includes ModbusIOException: request timed out / bad frame
            raise ReadFailedError("modbus_timeout", str(exc), fatal=fatal_timeout) from None
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise ReadFailedError("modbus_exception", f"device answered exception code {code}")
        values = response.bits if block.table in regs.BIT_TABLES else response.registers
        if len(values) < block.count:
            raise ReadFailedError(
                "modbus_short_response", f"expected {block.count} values, got {len(values)}"
            )
        return values

    def _decode_into(
        self,
        out: dict[str, regs.Value],
        block: regs.ReadBlock,
        reg: RegisterMap,
        values: Sequence[int] | Sequence[bool],
    ) -> None:
        raw = regs.slice_for(block, reg, values)
        try:
            if block.table in regs.BIT_TABLES:
                value: regs.Value = bool(raw[0])
            else:
                value = regs.decode(raw, reg.type, reg.byte_order, reg.word_order)
            out[reg.name] = regs.scale_value(value, reg.scale, reg.offset)
        except (regs.DecodeError, ValueError, OverflowError) as exc:
            self._count_error()
            self.sink.reject(
                Rejected(
                    reason="modbus_decode_error",
                    detail=f"{reg.name} ({reg.table}[{reg.address}] {reg.type}): {exc}",
                    source=self.source,
                    raw=_registers_bytes(raw),
                )
            )

    def _reject_block(self, block: regs.ReadBlock, reason: str, detail: str) -> None:
        names = ", ".join(r.name for r in block.registers)
        self.sink.reject(
            Rejected(
                reason=reason,
                detail=f"{block.describe()} ({names}) on unit {self.device.unit_id}: {detail}",
                source=self.source,
                raw=b"",
            )
        )


async def run_device(
    device: ModbusDeviceConfig,
    sink: Sink,
    metrics: MetricsLike,
    stop: asyncio.Event,
    *,
    normaliser: Normaliser | None = None,
) -> None:
    """Poll ``device`` until ``stop`` is set. Never raises (cancellation aside).

    ``normaliser`` (``Normaliser.from_config(config)``) applies the metric catalogue's types and bounds;
    without it readings go to the sink as decoded.
    """
    backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
    while not stop.is_set():
        try:
            await _run_poller(device, sink, metrics, stop, normaliser)
        except Exception:  # belt and braces: the poller already contains its own failures
            log.exception(
                "modbus poller failed", extra={"event": "modbus_poller_failed", "device": device.name}
            )
            with contextlib.suppress(Exception):
                metrics.inc(POLL_ERRORS, device=device.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff.next_delay())


async def _run_poller(
    device: ModbusDeviceConfig,
    sink: Sink,
    metrics: MetricsLike,
    stop: asyncio.Event,
    normaliser: Normaliser | None,
) -> None:
    poller = DevicePoller(device, sink, metrics, stop, normaliser=normaliser)
    log.info(
        "modbus poller started",
        extra={
            "event": "modbus_poller_started",
            "device": device.name,
            "blocks": [b.describe() for b in poller.blocks],
            "poll_interval_s": device.poll_interval_s,
        },
    )
    await poller.run()
