# SPDX-License-Identifier: Apache-2.0
"""A real pymodbus Modbus TCP (or RTU) server whose registers a test can change.

Two ways to use it:

- in-process, inside the test's event loop: ``async with SimServer(port=...) as sim: sim.set(...)``;
- as a subprocess (so a test can stop/kill it like a real device): ``ModbusSimProcess`` starts
  ``python modbus_sim.py --port P --control-port C`` and talks JSON lines to the control port.

Every unit id in ``units`` gets its own four tables (coils, discrete inputs, holding, input registers) of
``size`` addresses starting at 0; reading beyond ``size`` answers "illegal data address" (exception 2).
``delay`` makes every answer late (a slow device).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def _free_port(host: str = "127.0.0.1") -> int:
    # testsupport is imported only in the test process: this file also runs alone as the simulator (in the
    # tests and on Molecule's gateways, where only pymodbus is installed).
    from testsupport.procs import free_port

    return free_port(host)


_TABLE_KEY = {"coil": "c", "discrete": "d", "holding": "h", "input": "i"}


class SimServer:
    """pymodbus server in the running event loop, with direct access to its register memory."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        serial_port: str | None = None,
        units: Sequence[int] = (1,),
        size: int = 512,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.serial_port = serial_port
        self.units = tuple(units)
        self.size = size
        self.delay = 0.0
        self.requests = 0
        self.server: ModbusTcpServer | ModbusSerialServer | None = None
        self._task: asyncio.Task | None = None

    async def _action(self, fc, start, address, count, registers, values) -> None:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)

    def _device(self, unit: int) -> SimDevice:
        bits = SimData(0, count=self.size, values=False, datatype=DataType.BITS)
        words = SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)

        def fresh(d: SimData) -> list[SimData]:
            return [SimData(d.address, count=d.count, values=d.values, datatype=d.datatype)]

        return SimDevice(
            id=unit,
            simdata=(fresh(bits), fresh(bits), fresh(words), fresh(words)),
            action=self._action,
        )

    async def start(self) -> SimServer:
        devices = [self._device(u) for u in self.units]
        if self.serial_port:
            self.server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=self.serial_port, baudrate=115200, timeout=1
            )
        else:
            self.server = ModbusTcpServer(devices, address=(self.host, self.port))
        await self.server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set(self, table: str, address: int, values: Sequence[int] | Sequence[bool], unit: int = 1) -> None:
        """Write raw 16-bit registers (holding/input) or bits (coil/discrete) from ``address``."""
        assert self.server is not None
        runtime = self.server.context.devices[unit]
        start, _n, memory, _flags = runtime.block[_TABLE_KEY[table]]
        for i, value in enumerate(values):
            addr = address + i
            if table in ("coil", "discrete"):
                word, bit = divmod(addr, 16)
                word -= start
                memory[word] = memory[word] | (1 << bit) if value else memory[word] & ~(1 << bit)
            else:
                memory[addr - start] = int(value) & 0xFFFF


# ---------------------------------------------------------------------------------------------------
# Subprocess mode


async def _serve_control(sim: SimServer, control_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            try:
                cmd = json.loads(line)
                if cmd["op"] == "set":
                    sim.set(cmd["table"], cmd["address"], cmd["values"], unit=cmd.get("unit", 1))
                    answer: dict = {"ok": True}
                elif cmd["op"] == "delay":
                    sim.delay = float(cmd["seconds"])
                    answer = {"ok": True}
                elif cmd["op"] == "stats":
                    answer = {"ok": True, "requests": sim.requests}
                else:
                    answer = {"ok": False, "error": "unknown op"}
            except Exception as exc:
                answer = {"ok": False, "error": repr(exc)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", control_port)
    async with server:
        await server.serve_forever()


async def _main_async(args: argparse.Namespace) -> None:
    units = [int(u) for u in args.units.split(",")]
    sim = SimServer(port=args.port, serial_port=args.serial, units=units, size=args.size)
    await sim.start()
    print("READY", flush=True)
    await _serve_control(sim, args.control_port)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--serial")
    p.add_argument("--control-port", type=int, required=True)
    p.add_argument("--units", default="1")
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args()
    asyncio.run(_main_async(args))


class ModbusSimProcess:
    """The simulator as a separate process: can be stopped (device offline) and restarted (same port)."""

    def __init__(self, *, units: Sequence[int] = (1,), size: int = 512, log_dir: Path | None = None) -> None:
        self.port = _free_port()
        self.control_port = _free_port()
        self.units = units
        self.size = size
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._buffer = b""
        self._pending: list[dict] = []  # values to restore after a restart

    def start(self, timeout: float = 15.0) -> ModbusSimProcess:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            str(self.port),
            "--control-port",
            str(self.control_port),
            "--units",
            ",".join(map(str, self.units)),
            "--size",
            str(self.size),
        ]
        log_path = self.log_dir / f"modbus-sim-{self.port}.log" if self.log_dir else Path(os.devnull)
        with open(log_path, "ab") as stderr:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"READY" not in line:
            self.stop()
            raise RuntimeError(f"modbus simulator did not start: {line!r}")
        while True:
            try:
                self._control = socket.create_connection(("127.0.0.1", self.control_port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
        for cmd_ in self._pending:
            self._call(cmd_)
        return self

    def _call(self, cmd: dict) -> dict:
        assert self._control is not None
        self._control.sendall(json.dumps(cmd).encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = self._control.recv(65536)
            if not chunk:
                raise ConnectionError("simulator control connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"simulator refused {cmd}: {answer}")
        return answer

    def set(self, table: str, address: int, values: Sequence[int] | Sequence[bool], unit: int = 1) -> None:
        cmd = {"op": "set", "table": table, "address": address, "values": list(values), "unit": unit}
        self._pending.append(cmd)
        self._call(cmd)

    def set_delay(self, seconds: float) -> None:
        self._call({"op": "delay", "seconds": seconds})

    def requests(self) -> int:
        return self._call({"op": "stats"})["requests"]

    def stop(self) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
            self._control = None
            self._buffer = b""
        if self.proc is not None:
            from testsupport import procs  # not at the top: see _free_port

            procs.kill(self.proc, check=True)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None


if __name__ == "__main__":
    main()
