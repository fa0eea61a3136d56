# SPDX-License-Identifier: Apache-2.0
"""The Modbus poller against a real pymodbus server (in the test's event loop, or over a pty pair for RTU)."""

from __future__ import annotations

import asyncio
import math
import random
import time

import pytest
from ironlink_agent.config import ModbusDeviceConfig, RegisterMap
from ironlink_agent.inputs import modbus_input
from ironlink_agent.inputs import registers as regs
from ironlink_agent.metrics import AgentMetrics, Metrics
from ironlink_contract.model import Reading, Rejected
from support.modbus_sim import SimServer
from support.ptypair import PtyPair
from testsupport.procs import free_port


class Sink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.rejected: list[Rejected] = []

    def accept(self, readings, ack=None) -> None:
        self.readings.extend(readings)
        if ack:
            ack()

    def reject(self, rejected) -> None:
        self.rejected.append(rejected)


def reg(name, table, address, type_="uint16", **kw) -> RegisterMap:
    fields = {"byte_order": "big", "word_order": "big", "scale": 1.0, "offset": 0.0, "unit": None} | kw
    return RegisterMap(name=name, table=table, address=address, type=type_, **fields)


def device(name="plc1", port=502, registers=(), **kw) -> ModbusDeviceConfig:
    fields = {
        "machine_id": f"M-{name}",
        "protocol": "tcp",
        "host": "127.0.0.1",
        "port": port,
        "serial_port": None,
        "baudrate": 19200,
        "parity": "N",
        "stopbits": 1,
        "bytesize": 8,
        "unit_id": 1,
        "poll_interval_s": 0.1,
        "timeout_s": 0.5,
    } | kw
    return ModbusDeviceConfig(name=name, registers=tuple(registers), **fields)


ALL_TYPES = [
    # name, table, address, type, byte order, word order, value, scale, offset, expected
    ("t_int16", "holding", 0, "int16", "big", "big", -1234, 1.0, 0.0, -1234),
    ("t_uint16", "holding", 1, "uint16", "little", "big", 0xBEEF, 1.0, 0.0, 0xBEEF),
    ("t_int32", "holding", 2, "int32", "big", "little", -7_000_000, 1.0, 0.0, -7_000_000),
    ("t_uint32", "holding", 4, "uint32", "little", "little", 4_000_000_000, 1.0, 0.0, 4_000_000_000),
    ("t_float32", "holding", 6, "float32", "little", "big", 21.5, 1.0, 0.0, 21.5),
    ("t_float64", "holding", 8, "float64", "big", "big", -1234.5678, 1.0, 0.0, -1234.5678),
    ("t_scaled", "input", 10, "int16", "big", "big", 235, 0.1, -3.0, 20.5),
    ("t_input32", "input", 11, "float32", "big", "little", 0.25, 2.0, 0.0, 0.5),
    ("t_coil", "coil", 3, "bool", "big", "big", True, 1.0, 0.0, True),
    ("t_coil_off", "coil", 4, "bool", "big", "big", False, 1.0, 0.0, False),
    ("t_discrete", "discrete", 17, "bool", "big", "big", True, 1.0, 0.0, True),
    ("t_reg_bool", "holding", 12, "bool", "big", "big", True, 1.0, 0.0, True),
]


def _load(sim: SimServer, rows) -> list[RegisterMap]:
    maps = []
    for name, table, address, type_, bo, wo, value, scale, offset, _expected in rows:
        if table in ("coil", "discrete"):
            sim.set(table, address, [value])
        else:
            sim.set(table, address, regs.encode(value, type_, bo, wo))
        maps.append(
            reg(name, table, address, type_, byte_order=bo, word_order=wo, scale=scale, offset=offset)
        )
    return maps


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def poll_one(dev: ModbusDeviceConfig, **kw) -> tuple[Reading | None, Sink, Metrics]:
    """One poll as the poller's loop does it (connect, poll, release), with its sink and metrics."""
    sink, metrics = Sink(), AgentMetrics()
    poller = modbus_input.DevicePoller(dev, sink, metrics, asyncio.Event(), **kw)
    assert await poller._ensure_connected()
    reading = await poller.poll_once()
    poller.release()
    return reading, sink, metrics


def test_poll_decodes_every_type_in_coalesced_blocks():
    async def scenario():
        async with SimServer() as sim:
            maps = _load(sim, ALL_TYPES)
            sink, metrics = Sink(), AgentMetrics()
            poller = modbus_input.DevicePoller(
                device(port=sim.port, registers=maps), sink, metrics, asyncio.Event()
            )
            assert await poller._ensure_connected()
            before = sim.requests
            reading = await poller.poll_once()
            requests = sim.requests - before
            poller.release()
            return reading, sink, requests, poller.blocks

    reading, sink, requests, blocks = run(scenario())
    # holding 0..12 is one block, input 10..12 one, coils 3..4 one, discrete 17 one
    assert [b.describe() for b in blocks] == [
        "coil[3..4]",
        "discrete[17..17]",
        "holding[0..12]",
        "input[10..12]",
    ]
    assert requests == 4
    assert sink.rejected == []
    assert sink.readings == [reading]
    assert reading.machine_id == "M-plc1"
    assert reading.quality == "good"
    assert abs(reading.ts - time.time() * 1000) < 5000
    for name, *_rest, expected in ALL_TYPES:
        got = reading.metrics[name]
        assert type(got) is type(expected) or isinstance(expected, float), name
        assert got == pytest.approx(expected, rel=1e-6), name


def test_failed_block_is_rejected_and_counted_other_blocks_delivered():
    async def scenario():
        async with SimServer(size=100) as sim:
            sim.set("holding", 0, [42])
            maps = [
                reg("ok_value", "holding", 0),
                reg("beyond_a", "holding", 200),
                reg("beyond_b", "holding", 201),
            ]
            return await poll_one(device(port=sim.port, registers=maps))

    reading, sink, metrics = run(scenario())
    assert reading.metrics == {"ok_value": 42}
    [rejected] = sink.rejected
    assert rejected.reason == "modbus_exception"
    assert rejected.source == "modbus:plc1"
    assert "beyond_a" in rejected.detail and "beyond_b" in rejected.detail
    assert "holding[200..201]" in rejected.detail
    assert metrics.get("modbus_poll_errors_total", device="plc1") == 1


def test_non_finite_value_is_dead_lettered_with_raw_registers():
    async def scenario():
        async with SimServer() as sim:
            sim.set("holding", 0, [0x7FC0, 0x0000, 7])  # float32 NaN, then a good uint16
            maps = [reg("temp", "holding", 0, "float32"), reg("count", "holding", 2)]
            return await poll_one(device(port=sim.port, registers=maps))

    reading, sink, _ = run(scenario())
    assert reading.metrics == {"count": 7}
    [rejected] = sink.rejected
    assert rejected.reason == "modbus_decode_error"
    assert rejected.raw == bytes.fromhex("7fc00000")
    assert "temp" in rejected.detail


def test_unreachable_device_backs_off_counts_and_stops_promptly():
    port = free_port()  # nothing listens here

    async def scenario():
        sink, metrics, stop = Sink(), AgentMetrics(), asyncio.Event()
        dev = device(port=port, registers=[reg("x", "holding", 0)], timeout_s=0.2)
        task = asyncio.create_task(modbus_input.run_device(dev, sink, metrics, stop))
        await asyncio.sleep(2.5)
        stop.set()
        t0 = time.monotonic()
        await asyncio.wait_for(task, 2)
        return sink, metrics, time.monotonic() - t0

    sink, metrics, stop_latency = run(scenario())
    errors = metrics.get("modbus_poll_errors_total", device="plc1")
    # backoff 0.5-1 s, then 1-2 s: 2 or 3 attempts in 2.5 s, not one per poll interval (25)
    assert 2 <= errors <= 4
    assert sink.readings == [] and sink.rejected == []
    assert stop_latency < 1.0
    assert metrics.get("modbus_connected", device="plc1") == 0


def test_slow_device_does_not_stall_another_device():
    async def scenario():
        async with SimServer() as fast, SimServer() as slow:
            fast.set("holding", 0, [1])
            slow.set("holding", 0, [2])
            slow.delay = 5.0  # answers far beyond its 0.3 s timeout
            sink, metrics, stop = Sink(), AgentMetrics(), asyncio.Event()
            devs = [
                device("fast", port=fast.port, registers=[reg("v", "holding", 0)], poll_interval_s=0.1),
                device("slow", port=slow.port, registers=[reg("v", "holding", 0)], timeout_s=0.3),
            ]
            tasks = [asyncio.create_task(modbus_input.run_device(d, sink, metrics, stop)) for d in devs]
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 3)
            return sink, metrics

    sink, metrics = run(scenario())
    fast = [r for r in sink.readings if r.machine_id == "M-fast"]
    slow = [r for r in sink.readings if r.machine_id == "M-slow"]
    assert len(fast) >= 12, len(fast)  # ~20 at 10/s; the slow device costs it nothing
    assert slow == []
    assert metrics.get("modbus_poll_errors_total", device="slow") >= 2
    assert metrics.get("modbus_poll_errors_total", device="fast") == 0
    timeouts = [r for r in sink.rejected if r.source == "modbus:slow"]
    assert timeouts and all(r.reason == "modbus_timeout" for r in timeouts)


def test_reconnects_after_the_device_comes_back():
    port = free_port()

    async def scenario():
        sink, metrics, stop = Sink(), AgentMetrics(), asyncio.Event()
        dev = device(port=port, registers=[reg("v", "holding", 0)], poll_interval_s=0.1, timeout_s=0.3)
        task = asyncio.create_task(modbus_input.run_device(dev, sink, metrics, stop))
        async with SimServer(port=port) as sim:
            sim.set("holding", 0, [10])
            await _until(lambda: len(sink.readings) >= 3)
        n_before = len(sink.readings)
        await asyncio.sleep(1.0)  # device gone
        assert len(sink.readings) <= n_before + 1
        async with SimServer(port=port) as sim:
            sim.set("holding", 0, [11])
            await _until(lambda: any(r.metrics["v"] == 11 for r in sink.readings), timeout=8)
        stop.set()
        await asyncio.wait_for(task, 3)
        return metrics

    metrics = run(scenario(), timeout=30)
    assert metrics.get("modbus_poll_errors_total", device="plc1") >= 1
    assert metrics.get("modbus_connected", device="plc1") == 1


async def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_backoff_is_capped_exponential_with_jitter():
    b = modbus_input.Backoff(initial=1.0, cap=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered, not a fixed 8
    b.reset()
    assert b.next_delay() <= 1.0
    assert not any(math.isnan(d) for d in delays)


def test_poller_survives_a_crash_inside_poll(monkeypatch):
    async def scenario():
        async with SimServer() as sim:
            sim.set("holding", 0, [5])
            sink, metrics, stop = Sink(), AgentMetrics(), asyncio.Event()
            calls = {"n": 0}
            original = modbus_input.DevicePoller.poll_once

            async def flaky(self):
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("bug")
                return await original(self)

            monkeypatch.setattr(modbus_input.DevicePoller, "poll_once", flaky)
            monkeypatch.setattr(modbus_input, "BACKOFF_INITIAL_S", 0.1)
            dev = device(port=sim.port, registers=[reg("v", "holding", 0)])
            poller = modbus_input.DevicePoller(
                dev, sink, metrics, stop, backoff=modbus_input.Backoff(initial=0.1)
            )
            task = asyncio.create_task(poller.run())
            await _until(lambda: len(sink.readings) >= 2)
            stop.set()
            await asyncio.wait_for(task, 2)
            return metrics

    metrics = run(scenario())
    assert metrics.get("modbus_poll_errors_total", device="plc1") == 1


def test_rtu_over_a_pty_pair():
    with PtyPair() as pair:

        async def scenario():
            async with SimServer(serial_port=pair.b, units=(3,)) as sim:
                sim.set("holding", 0, regs.encode(-2.5, "float32"), unit=3)
                sim.set("coil", 1, [True], unit=3)
                maps = [reg("temp", "holding", 0, "float32"), reg("run", "coil", 1, "bool")]
                dev = device(
                    "rtu1",
                    protocol="rtu",
                    host=None,
                    port=None,
                    serial_port=pair.a,
                    baudrate=115200,
                    unit_id=3,
                    registers=maps,
                    timeout_s=1.0,
                )
                return await poll_one(dev)

        reading, sink, _ = run(scenario())
    assert sink.rejected == []
    assert reading.metrics == {"temp": -2.5, "run": True}


def test_catalogue_types_and_bounds_apply_through_the_normaliser():
    from ironlink_agent.config import MetricSpec
    from ironlink_agent.normalise import Normaliser

    normaliser = Normaliser([MetricSpec("rpm", "int"), MetricSpec("temperature", "float", min=-50, max=500)])

    async def scenario(temp_raw):
        async with SimServer() as sim:
            sim.set("holding", 0, [1500, temp_raw])
            maps = [reg("rpm", "holding", 0, scale=1.0), reg("temperature", "holding", 1, "int16", scale=0.1)]
            _, sink, _ = await poll_one(device(port=sim.port, registers=maps), normaliser=normaliser)
            return sink

    ok = run(scenario(215))
    assert [r.metrics for r in ok.readings] == [{"rpm": 1500, "temperature": pytest.approx(21.5)}]
    bad = run(scenario(6000))  # 600.0 degC: above max 500
    assert bad.readings == []
    [rejected] = bad.rejected
    assert rejected.reason == "out_of_bounds"
    assert rejected.source == "modbus:plc1"
    assert b'"temperature"' in rejected.raw


def test_rtu_units_on_one_serial_line_share_the_port():
    """Two devices (unit 1 and 2) on one RS-485 line: one port open, requests serialised, both polled."""
    with PtyPair() as pair:

        async def scenario():
            async with SimServer(serial_port=pair.b, units=(1, 2)) as sim:
                sim.set("holding", 0, [11], unit=1)
                sim.set("holding", 0, [22], unit=2)
                sink, metrics, stop = Sink(), AgentMetrics(), asyncio.Event()
                devs = [
                    device(
                        f"rtu{u}",
                        protocol="rtu",
                        host=None,
                        serial_port=pair.a,
                        baudrate=115200,
                        unit_id=u,
                        registers=[reg("count", "holding", 0)],
                        poll_interval_s=0.05,
                    )
                    for u in (1, 2)
                ]
                tasks = [asyncio.create_task(modbus_input.run_device(d, sink, metrics, stop)) for d in devs]
                await _until(lambda: {r.machine_id for r in sink.readings} == {"M-rtu1", "M-rtu2"}, timeout=8)
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 5)
                assert not modbus_input._SHARED_LINKS, "the shared link is closed with its last poller"
                return sink, metrics

        sink, metrics = run(scenario())
    values = {r.machine_id: r.metrics["count"] for r in sink.readings}
    assert values == {"M-rtu1": 11, "M-rtu2": 22}
    assert metrics.total("modbus_poll_errors_total") == 0
    assert sink.rejected == []
